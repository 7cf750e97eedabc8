// Both tokenizers against the ids the official Python tokenizers produced (sentencepiece for Step-LLM,
// transformers' BertTokenizer for Hunyuan-CLIP): every text, ids and masks identical.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { casePath, requireGolden, tinyModelDir } from '../helpers/golden.js';
import { BertTokenizer, SentencePieceProcessor, StepTokenizer, loadTokenizer } from '../../lib/tokenizers/index.js';

interface SentencePieceCase {
  texts: string[];
  models: Record<'bpe' | 'unigram', {
    model: string;
    byte_fallback: boolean;
    vocab_size: number;
    raw_ids: number[][];
    input_ids: number[][];
    attention_mask: number[][];
    decoded: string[];
  }>;
}

interface BertCase {
  texts: string[];
  max_length: number;
  tokens: string[][];
  input_ids: number[][];
  attention_mask: number[][];
}

/** Null when equal, else where the first difference is, for a readable failure. */
function firstMismatch<T>(what: string, texts: readonly string[], got: readonly (readonly T[])[], want: readonly (readonly T[])[]): string | null {
  if (got.length !== want.length) return `${what}: ${got.length} rows, expected ${want.length}`;
  for (let row = 0; row < want.length; row++) {
    const a = got[row]!;
    const b = want[row]!;
    const n = Math.max(a.length, b.length);
    for (let i = 0; i < n; i++) {
      if (a[i] !== b[i]) {
        const text = JSON.stringify(texts[row]!.length > 60 ? `${texts[row]!.slice(0, 60)}...` : texts[row]);
        return `${what}: text #${row} ${text} differs at position ${i}: got ${JSON.stringify(a[i])}, expected ${JSON.stringify(b[i])} (lengths ${a.length} vs ${b.length})`;
      }
    }
  }
  return null;
}

/**
 * CPU time (user + system, ms) the process spent in `work`. The tokenizers' cost is what the bounds
 * below are about; unlike wall time, it does not grow when a busy runner leaves the process waiting.
 */
function cpuMs(work: () => void): number {
  const start = process.cpuUsage();
  work();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

const run = requireGolden();

describe.skipIf(!run)('SentencePiece golden cases (Step-LLM tokenizer)', () => {
  const data = run ? (JSON.parse(readFileSync(casePath('sentencepiece_case.json'), 'utf8')) as SentencePieceCase) : undefined;

  for (const kind of ['bpe', 'unigram'] as const) {
    describe(kind, () => {
      const expected = () => data!.models[kind];
      const modelFile = () => path.join(tinyModelDir, 'step_llm', expected().model);

      it('loads, with the model type, vocabulary size and byte fallback the case records', () => {
        const sp = SentencePieceProcessor.fromFile(modelFile());
        expect(sp.modelType).toBe(kind);
        expect(sp.vocabSize).toBe(expected().vocab_size);
        expect(sp.byteFallback).toBe(expected().byte_fallback);
      });

      it('encode_as_ids matches raw_ids for every text', () => {
        const sp = SentencePieceProcessor.fromFile(modelFile());
        const got = data!.texts.map((t) => sp.encode(t));
        expect(firstMismatch('raw_ids', data!.texts, got, expected().raw_ids)).toBeNull();
      });

      it('decode_ids(raw_ids) matches decoded for every text', () => {
        const sp = SentencePieceProcessor.fromFile(modelFile());
        const got = expected().raw_ids.map((ids) => [sp.decode(ids)]);
        expect(firstMismatch('decoded', data!.texts, got, expected().decoded.map((d) => [d]))).toBeNull();
      });

      it('the Step wrapper gives input_ids and attention_mask for every text (special pieces present)', () => {
        const tokenizer = StepTokenizer.fromFile(modelFile(), { requireSpecialPieces: true });
        const batch = tokenizer.encode(data!.texts);
        expect(firstMismatch('input_ids', data!.texts, batch.inputIds, expected().input_ids)).toBeNull();
        expect(firstMismatch('attention_mask', data!.texts, batch.attentionMask, expected().attention_mask)).toBeNull();
      });

      it('loadTokenizer("step-llm") returns the JSON contract', () => {
        const batch = loadTokenizer('step-llm', modelFile()).encodeBatch(data!.texts);
        expect(firstMismatch('input_ids', data!.texts, batch.input_ids, expected().input_ids)).toBeNull();
        expect(firstMismatch('attention_mask', data!.texts, batch.attention_mask, expected().attention_mask)).toBeNull();
      });

      it('tokenizes all texts in well under a second of CPU time', () => {
        const tokenizer = StepTokenizer.fromFile(modelFile());
        expect(cpuMs(() => tokenizer.encode(data!.texts))).toBeLessThan(250);
      });
    });
  }
});

describe.skipIf(!run)('BertTokenizer golden cases (Hunyuan-CLIP tokenizer)', () => {
  const data = run ? (JSON.parse(readFileSync(casePath('bert_tokenizer_case.json'), 'utf8')) as BertCase) : undefined;
  const folder = path.join(tinyModelDir, 'hunyuan_clip', 'tokenizer');

  it('tokenize matches tokens for every text', () => {
    const bert = BertTokenizer.fromPath(folder);
    const got = data!.texts.map((t) => bert.tokenize(t));
    expect(firstMismatch('tokens', data!.texts, got, data!.tokens)).toBeNull();
  });

  it('encode gives input_ids and attention_mask for every text', () => {
    const bert = BertTokenizer.fromPath(folder);
    const batch = bert.encode(data!.texts, data!.max_length);
    expect(firstMismatch('input_ids', data!.texts, batch.inputIds, data!.input_ids)).toBeNull();
    expect(firstMismatch('attention_mask', data!.texts, batch.attentionMask, data!.attention_mask)).toBeNull();
  });

  it('loadTokenizer("clip") accepts the folder or its vocab.txt and defaults to 77', () => {
    for (const location of [folder, path.join(folder, 'vocab.txt')]) {
      const batch = loadTokenizer('clip', location).encodeBatch(data!.texts);
      expect(firstMismatch('input_ids', data!.texts, batch.input_ids, data!.input_ids)).toBeNull();
      expect(firstMismatch('attention_mask', data!.texts, batch.attention_mask, data!.attention_mask)).toBeNull();
    }
  });

  it('tokenizes all texts in well under a second of CPU time', () => {
    const bert = BertTokenizer.fromPath(folder);
    expect(cpuMs(() => bert.encode(data!.texts, data!.max_length))).toBeLessThan(250);
  });
});
