// The two text tokenizers behind one shape: `encodeBatch` returns the CLI's JSON contract,
// `{ "input_ids": [[...]], "attention_mask": [[...]] }`.
import { StepVideoError } from '../errors.js';
import { StepTokenizer, type StepTokenizerOptions } from './step-tokenizer.js';
import { BertTokenizer } from './wordpiece.js';

export { ProtoReader, WireType, type ProtoTag } from './protobuf.js';
export { CLIP_TOKENS, LLM_TOKENS } from './caption-lengths.js';
export {
  SentencePieceProcessor,
  PieceType,
  ModelType,
  parseModelProto,
  type ModelProto,
  type NormalizerSpec,
  type TrainerSpec,
  type SentencePieceEntry,
} from './sentencepiece.js';
export { StepTokenizer, STEP_CONTROL_PIECES, STEP_MASK_PIECES, type StepTokenizerOptions, type TokenBatch } from './step-tokenizer.js';
export { BertTokenizer, DEFAULT_BERT_CONFIG, parseBertConfig, type BertTokenizerConfig, type BertBatch } from './wordpiece.js';

export type TokenizerKind = 'step-llm' | 'clip';

export interface EncodedBatch {
  input_ids: number[][];
  attention_mask: number[][];
}

export interface TextTokenizer {
  readonly kind: TokenizerKind;
  /** Rows padded to `maxLength` (default: the caption lengths, LLM_TOKENS for step-llm and CLIP_TOKENS for clip). */
  encodeBatch(texts: readonly string[], maxLength?: number): EncodedBatch;
}

/**
 * Loads a tokenizer: for 'step-llm' `location` is the SentencePiece `.model` file; for 'clip' it is
 * the tokenizer folder (or its vocab.txt).
 */
export function loadTokenizer(kind: TokenizerKind, location: string, options: StepTokenizerOptions = {}): TextTokenizer {
  if (kind === 'step-llm') {
    const tokenizer = StepTokenizer.fromFile(location, options);
    return {
      kind,
      encodeBatch: (texts, maxLength) => {
        const batch = tokenizer.encode(texts, maxLength);
        return { input_ids: batch.inputIds, attention_mask: batch.attentionMask };
      },
    };
  }
  if (kind === 'clip') {
    const tokenizer = BertTokenizer.fromPath(location);
    return {
      kind,
      encodeBatch: (texts, maxLength) => {
        const batch = tokenizer.encode(texts, maxLength);
        return { input_ids: batch.inputIds, attention_mask: batch.attentionMask };
      },
    };
  }
  throw new StepVideoError('ERR_ARGUMENT', 'unknown tokenizer kind', { expected: "'step-llm' or 'clip'", got: kind });
}
