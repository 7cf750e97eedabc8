// The Step-LLM tokenizer wrapper (stepvideo/text_encoder/tokenizer.py, Wrapped_StepChatTokenizer):
// plain SentencePiece `encode_as_ids`, truncated to maxLength - 2, framed as [BOS] ids [EOS] and
// right-padded with PAD. BOS/EOS/PAD are hard-coded there (1, 2, 2), not read from the model.
import { StepVideoError } from '../errors.js';
import { LLM_TOKENS } from './caption-lengths.js';
import { PieceType, SentencePieceProcessor } from './sentencepiece.js';

/** Pieces StepChatTokenizer asserts are present and special (control or unknown). */
export const STEP_CONTROL_PIECES = ['<|BOT|>', '<|EOT|>', '<|CALL_START|>', '<|CALL_END|>', '<|THINK_START|>', '<|THINK_END|>'] as const;
/** Pieces StepChatTokenizer asserts are present (they are user-defined in the released model). */
export const STEP_MASK_PIECES = ['<|MASK_1e69f|>', '<|UNMASK_1e69f|>'] as const;

export interface StepTokenizerOptions {
  /** Refuse a model that lacks the special pieces the official constructor asserts. Default true. */
  requireSpecialPieces?: boolean;
}

export interface TokenBatch {
  inputIds: number[][];
  attentionMask: number[][];
}

export class StepTokenizer {
  static readonly BOS = 1;
  static readonly EOS = 2;
  static readonly PAD = 2;

  constructor(
    readonly sentencePiece: SentencePieceProcessor,
    options: StepTokenizerOptions = {},
  ) {
    if (options.requireSpecialPieces ?? true) StepTokenizer.checkSpecialPieces(sentencePiece);
  }

  static fromFile(file: string, options: StepTokenizerOptions = {}): StepTokenizer {
    return new StepTokenizer(SentencePieceProcessor.fromFile(file), options);
  }

  static async load(file: string, options: StepTokenizerOptions = {}): Promise<StepTokenizer> {
    return new StepTokenizer(await SentencePieceProcessor.load(file), options);
  }

  /** The official constructor's assertions, as ERR_TOKENIZER naming the model file. */
  static checkSpecialPieces(sp: SentencePieceProcessor): void {
    const where = sp.file !== undefined ? { file: sp.file } : {};
    for (const piece of [...STEP_CONTROL_PIECES, ...STEP_MASK_PIECES]) {
      if (!sp.hasPiece(piece)) throw new StepVideoError('ERR_TOKENIZER', `Step tokenizer model lacks the special piece '${piece}'`, where);
    }
    for (const piece of STEP_CONTROL_PIECES) {
      const type = sp.pieceType(sp.pieceToId(piece));
      if (type !== PieceType.Control && type !== PieceType.Unknown) {
        throw new StepVideoError('ERR_TOKENIZER', `Step tokenizer piece '${piece}' is not a control symbol`, { ...where, expected: PieceType.Control, got: type });
      }
    }
  }

  /** Raw SentencePiece ids, no framing. */
  tokenize(text: string): number[] {
    return this.sentencePiece.encode(text);
  }

  /** One framed, padded row. */
  encodeOne(text: string, maxLength = LLM_TOKENS): { inputIds: number[]; attentionMask: number[] } {
    checkMaxLength(maxLength);
    const ids = [StepTokenizer.BOS, ...this.tokenize(text).slice(0, maxLength - 2), StepTokenizer.EOS];
    const valid = ids.length;
    const inputIds = ids.concat(new Array<number>(maxLength - valid).fill(StepTokenizer.PAD));
    const attentionMask = new Array<number>(maxLength).fill(0).fill(1, 0, valid);
    return { inputIds, attentionMask };
  }

  /**
   * A batch of framed rows, each exactly `maxLength` long. (The official wrapper turns an empty
   * list into one empty-text row; here an empty list gives an empty batch.)
   */
  encode(texts: readonly string[], maxLength = LLM_TOKENS): TokenBatch {
    if (!Array.isArray(texts)) throw new StepVideoError('ERR_ARGUMENT', 'texts must be an array of strings', { got: typeof texts });
    checkMaxLength(maxLength);
    const batch: TokenBatch = { inputIds: [], attentionMask: [] };
    for (const text of texts) {
      const row = this.encodeOne(text, maxLength);
      batch.inputIds.push(row.inputIds);
      batch.attentionMask.push(row.attentionMask);
    }
    return batch;
  }

  /** SentencePiece `decode_ids`; BOS/EOS/PAD are control pieces and vanish. */
  decode(ids: readonly number[]): string {
    return this.sentencePiece.decode(ids);
  }
}

function checkMaxLength(maxLength: number): void {
  if (!Number.isInteger(maxLength) || maxLength < 2) {
    throw new StepVideoError('ERR_ARGUMENT', 'maxLength must leave room for BOS and EOS', { expected: 'an integer >= 2', got: maxLength });
  }
}
