// Unit tests for the tokenizers: the protobuf reader's bounds, SentencePiece behaviour on small
// hand-built models (expected values checked against Python sentencepiece 0.2.2), robustness on
// damaged model files, the Step and BERT framing edge cases, and decode/encode round trips.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isStepVideoError } from '../../lib/errors.js';
import { requireGolden, tinyModelDir } from '../helpers/golden.js';
import {
  BertTokenizer,
  ProtoReader,
  SentencePieceProcessor,
  StepTokenizer,
  WireType,
  loadTokenizer,
  parseBertConfig,
} from '../../lib/tokenizers/index.js';

// ---- a tiny protobuf writer for building test models ----------------------------------------

const utf8 = new TextEncoder();

function varint(value: number | bigint): number[] {
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) byte |= 0x80;
    out.push(byte);
  } while (v !== 0n);
  return out;
}
const key = (field: number, wire: number): number[] => varint((field << 3) | wire);
const varintField = (field: number, value: number | bigint): number[] => [...key(field, 0), ...varint(value)];
const bytesField = (field: number, bytes: number[]): number[] => [...key(field, 2), ...varint(bytes.length), ...bytes];
const stringField = (field: number, s: string): number[] => bytesField(field, [...utf8.encode(s)]);
const floatField = (field: number, x: number): number[] => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setFloat32(0, x, true);
  return [...key(field, 5), ...b];
};

type PieceSpec = [piece: string, score: number, type: number];

function buildModel(opts: { modelType: number; pieces: PieceSpec[]; byteFallback?: boolean; normalizer?: number[] }): Uint8Array {
  const out: number[] = [];
  for (const [piece, score, type] of opts.pieces) {
    out.push(...bytesField(1, [...stringField(1, piece), ...floatField(2, score), ...varintField(3, type)]));
  }
  out.push(...bytesField(2, [...varintField(3, opts.modelType), ...varintField(35, opts.byteFallback ? 1 : 0), ...varintField(43, -1)]));
  out.push(...bytesField(3, [...stringField(1, 'identity'), ...(opts.normalizer ?? [])]));
  return Uint8Array.from(out);
}

const BASE: PieceSpec[] = [['<unk>', 0, 2], ['<s>', 0, 3], ['</s>', 0, 3], ['<X>', 0, 4]];
const BYTES: PieceSpec[] = Array.from({ length: 256 }, (_, i) => [`<0x${i.toString(16).toUpperCase().padStart(2, '0')}>`, 0, 6]);
// ids: 4 ▁, 5 a, 6 b, 7 ab, 8 ▁ab, 9 ba (unused), 10 c, 11 abc, 12 ▁abc
const UNIGRAM = buildModel({
  modelType: 1,
  pieces: [...BASE, ['▁', -2, 1], ['a', -3, 1], ['b', -3, 1], ['ab', -4, 1], ['▁ab', -5, 1], ['ba', -1, 5], ['c', -3, 1], ['abc', -5.5, 1], ['▁abc', -6, 1]],
});
// ids: 4..259 bytes, 260 ▁, 261 a, 262 b, 263 c, 264 bc (unused), 265 abc, 266 ab, 267 ▁a, 268 ▁ab
const BPE = buildModel({
  modelType: 2,
  byteFallback: true,
  pieces: [...BASE, ...BYTES, ['▁', -1, 1], ['a', -1, 1], ['b', -1, 1], ['c', -1, 1], ['bc', 0, 5], ['abc', -0.5, 1], ['ab', -3, 1], ['▁a', -2, 1], ['▁ab', -2, 1]],
});

function expectCode(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (error) {
    expect(isStepVideoError(error), `expected a StepVideoError, got ${String(error)}`).toBe(true);
    expect((error as { code: string }).code).toBe(code);
    return;
  }
  expect.unreachable(`expected ${code}`);
}

// Seeded PRNG (mulberry32) so fuzz failures reproduce.
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- protobuf reader ------------------------------------------------------------------------

describe('ProtoReader', () => {
  it('reads varints (including 10-byte negative int32), fixed, float, double and strings', () => {
    const bytes = Uint8Array.from([
      ...varintField(1, 300),
      ...varintField(2, -1),
      ...key(3, 5), 0x78, 0x56, 0x34, 0x12,
      ...floatField(4, 1.5),
      ...key(5, 1), ...new Uint8Array(new Float64Array([-2.25]).buffer),
      ...stringField(6, 'héllo'),
      ...varintField(7, 2n ** 63n + 5n),
    ]);
    const r = new ProtoReader(bytes, 'mem');
    expect(r.readTag()).toEqual({ field: 1, wireType: WireType.Varint });
    expect(r.readUint32()).toBe(300);
    expect(r.readTag().field).toBe(2);
    expect(r.readInt32()).toBe(-1);
    expect(r.readTag()).toEqual({ field: 3, wireType: WireType.Fixed32 });
    expect(r.readFixed32()).toBe(0x12345678);
    r.readTag();
    expect(r.readFloat()).toBe(1.5);
    expect(r.readTag()).toEqual({ field: 5, wireType: WireType.Fixed64 });
    expect(r.readDouble()).toBe(-2.25);
    r.readTag();
    expect(r.readString()).toBe('héllo');
    r.readTag();
    expect(r.readVarint64()).toBe(2n ** 63n + 5n);
    expect(r.done).toBe(true);
  });

  it('skips unknown fields of every wire type, nested groups included', () => {
    const bytes = Uint8Array.from([
      ...varintField(9, 123456789),
      ...key(10, 1), 1, 2, 3, 4, 5, 6, 7, 8,
      ...stringField(11, 'skip me'),
      ...key(12, 5), 1, 2, 3, 4,
      ...key(13, 3), ...varintField(1, 5), ...key(14, 3), ...key(14, 4), ...key(13, 4),
      ...varintField(1, 42),
    ]);
    const r = new ProtoReader(bytes);
    for (;;) {
      const tag = r.readTag();
      if (tag.field === 1) break;
      r.skip(tag);
    }
    expect(r.readUint32()).toBe(42);
    expect(r.done).toBe(true);
  });

  it('reads a nested message without running past it', () => {
    const bytes = Uint8Array.from([...bytesField(1, varintField(2, 7)), ...varintField(3, 9)]);
    const r = new ProtoReader(bytes);
    r.readTag();
    const inner = r.readMessage();
    expect(inner.readTag().field).toBe(2);
    expect(inner.readUint32()).toBe(7);
    expect(inner.done).toBe(true);
    expect(r.readTag().field).toBe(3);
  });

  const corrupt: Array<[string, number[], (r: ProtoReader) => unknown]> = [
    ['a truncated varint', [0x80, 0x80], (r) => r.readUint32()],
    ['a varint over 10 bytes', new Array<number>(11).fill(0xff), (r) => r.readUint32()],
    ['a length past the end', [...key(1, 2), 5, 1, 2], (r) => { r.readTag(); return r.readBytes(); }],
    ['a huge length', [...key(1, 2), ...varint(2n ** 40n)], (r) => { r.readTag(); return r.readBytes(); }],
    ['a truncated fixed32', [1, 2, 3], (r) => r.readFixed32()],
    ['a truncated fixed64', [1, 2, 3, 4, 5, 6, 7], (r) => r.readDouble()],
    ['field number 0', [0x00], (r) => r.readTag()],
    ['wire type 6', [...key(1, 6)], (r) => r.readTag()],
    ['wire type 7', [...key(1, 7)], (r) => r.readTag()],
    ['a stray end-group', [...key(1, 4)], (r) => r.skip(r.readTag())],
    ['an unterminated group', [...key(1, 3), ...varintField(2, 1)], (r) => r.skip(r.readTag())],
    ['a mismatched end-group', [...key(1, 3), ...key(2, 4)], (r) => r.skip(r.readTag())],
  ];
  for (const [name, bytes, read] of corrupt) {
    it(`rejects ${name} with ERR_TOKENIZER naming the file`, () => {
      try {
        read(new ProtoReader(Uint8Array.from(bytes), 'broken.model'));
        expect.unreachable();
      } catch (error) {
        expect(isStepVideoError(error, 'ERR_TOKENIZER')).toBe(true);
        expect((error as Error).message).toContain("file 'broken.model'");
      }
    });
  }
});

// ---- SentencePiece on hand-built models -------------------------------------------------------

describe('SentencePiece unigram (hand-built model)', () => {
  const sp = new SentencePieceProcessor(UNIGRAM, 'unigram.model');
  const cases: Array<[string, number[], string[], string]> = [
    ['ab  ab', [8, 8], ['▁ab', '▁ab'], 'ab ab'],
    ['  ab ab  ', [8, 8], ['▁ab', '▁ab'], 'ab ab'],
    ['xyz ab', [4, 0, 8], ['▁', 'xyz', '▁ab'], ' ⁇  ab'], // a run of unknowns is one <unk>
    ['a<X>b', [4, 5, 3, 6], ['▁', 'a', '<X>', 'b'], 'a<X>b'], // user-defined symbol kept whole
    ['abab', [8, 7], ['▁ab', 'ab'], 'abab'],
    ['abc', [12], ['▁abc'], 'abc'],
    ['ba', [4, 6, 5], ['▁', 'b', 'a'], 'ba'], // UNUSED 'ba' never chosen
    ['abc\tbc', [12, 0, 6, 10], ['▁abc', '\t', 'b', 'c'], 'abc ⁇ bc'], // identity normalizer keeps \t
    ['c<X><X>zz', [4, 10, 3, 3, 0], ['▁', 'c', '<X>', '<X>', 'zz'], 'c<X><X> ⁇ '],
    ['', [], [], ''],
    [' ', [], [], ''],
  ];
  for (const [text, ids, pieces, decoded] of cases) {
    it(`encodes ${JSON.stringify(text)}`, () => {
      expect(sp.encode(text)).toEqual(ids);
      expect(sp.encodeAsPieces(text)).toEqual(pieces);
      expect(sp.decode(ids)).toBe(decoded);
    });
  }

  it('answers piece and id lookups as SentencePiece does', () => {
    expect(sp.modelType).toBe('unigram');
    expect(sp.vocabSize).toBe(13);
    expect([sp.unkId, sp.bosId, sp.eosId, sp.padId]).toEqual([0, 1, 2, -1]);
    expect(sp.pieceToId('▁ab')).toBe(8);
    expect(sp.pieceToId('not a piece')).toBe(0);
    expect(sp.hasPiece('not a piece')).toBe(false);
    expect(sp.idToPiece(3)).toBe('<X>');
    expect([sp.isControl(1), sp.isUnknown(0), sp.isUserDefined(3), sp.isUnused(9), sp.isByte(5)]).toEqual([true, true, true, true, false]);
    expect(sp.score(7)).toBe(-4);
    expect(sp.normalize('  a  b ')).toBe('▁a▁b');
  });

  it('rejects out-of-range ids with ERR_ARGUMENT', () => {
    expectCode(() => sp.decode([13]), 'ERR_ARGUMENT');
    expectCode(() => sp.decode([-1]), 'ERR_ARGUMENT');
    expectCode(() => sp.decode([1.5]), 'ERR_ARGUMENT');
    expectCode(() => sp.idToPiece(99), 'ERR_ARGUMENT');
  });
});

describe('SentencePiece BPE with byte fallback (hand-built model)', () => {
  const sp = new SentencePieceProcessor(BPE, 'bpe.model');
  const cases: Array<[string, number[], string[]]> = [
    ['ab  ab', [268, 268], ['▁ab', '▁ab']],
    ['xyz ab', [260, 124, 125, 126, 268], ['▁', '<0x78>', '<0x79>', '<0x7A>', '▁ab']], // unknown chars -> bytes
    ['a<X>b', [267, 3, 262], ['▁a', '<X>', 'b']], // user-defined symbols are frozen
    ['abab', [268, 266], ['▁ab', 'ab']], // leftmost pair first on equal scores
    ['abc', [260, 265], ['▁', 'abc']], // merged through the UNUSED 'bc'
    ['abc\tbc', [260, 265, 13, 262, 263], ['▁', 'abc', '<0x09>', 'b', 'c']], // lone 'bc' resegmented
    ['é ab', [260, 199, 173, 268], ['▁', '<0xC3>', '<0xA9>', '▁ab']],
  ];
  for (const [text, ids, pieces] of cases) {
    it(`encodes ${JSON.stringify(text)} and decodes it back`, () => {
      expect(sp.encode(text)).toEqual(ids);
      expect(sp.encodeAsPieces(text)).toEqual(pieces);
      expect(sp.decode(ids)).toBe(text.replace(/ +/g, ' ').trim());
    });
  }

  it('reassembles byte pieces, maps broken UTF-8 to U+FFFD and drops the leading spaces', () => {
    expect(sp.decode([199, 173])).toBe('é');
    expect(sp.decode([199])).toBe('\ufffd');
    expect(sp.decode([173, 260, 69])).toBe('\ufffd A');
    expect(sp.decode([260, 260, 261])).toBe('a');
    expect(sp.decode([1, 260, 2, 0, 0])).toBe(' ⁇  ⁇ ');
    expect(sp.decode([230, 154, 133, 261])).toBe('▁a'); // a '▁' spelled in bytes stays
  });
});

describe('SentencePiece model validation', () => {
  const bad: Array<[string, Uint8Array]> = [
    ['no pieces', buildModel({ modelType: 1, pieces: [] })],
    ['no unknown piece', buildModel({ modelType: 1, pieces: [['a', 0, 1]] })],
    ['two unknown pieces', buildModel({ modelType: 1, pieces: [['<unk>', 0, 2], ['<unk2>', 0, 2]] })],
    ['a duplicate piece', buildModel({ modelType: 1, pieces: [['<unk>', 0, 2], ['a', 0, 1], ['a', 0, 1]] })],
    ['an empty piece', buildModel({ modelType: 1, pieces: [['<unk>', 0, 2], ['', 0, 1]] })],
    ['a byte piece without byte_fallback', buildModel({ modelType: 2, pieces: [['<unk>', 0, 2], ['<0x41>', 0, 6]] })],
    ['byte_fallback with missing byte pieces', buildModel({ modelType: 2, byteFallback: true, pieces: [['<unk>', 0, 2], ['<0x41>', 0, 6]] })],
    ['a malformed byte piece', buildModel({ modelType: 2, byteFallback: true, pieces: [['<unk>', 0, 2], ['<0x4g>', 0, 6]] })],
    ['the word model type', buildModel({ modelType: 3, pieces: [['<unk>', 0, 2]] })],
    ['a charsmap shorter than its header', buildModel({ modelType: 1, pieces: [['<unk>', 0, 2]], normalizer: bytesField(2, [1, 0]) })],
    ['a charsmap whose trie overruns it', buildModel({ modelType: 1, pieces: [['<unk>', 0, 2]], normalizer: bytesField(2, [100, 0, 0, 0, 1, 2]) })],
  ];
  for (const [name, bytes] of bad) {
    it(`rejects ${name} with ERR_TOKENIZER naming the file`, () => {
      try {
        new SentencePieceProcessor(bytes, 'bad.model');
        expect.unreachable();
      } catch (error) {
        expect(isStepVideoError(error, 'ERR_TOKENIZER')).toBe(true);
        expect((error as Error).message).toContain("file 'bad.model'");
      }
    });
  }

  it('reports a missing file as ERR_IO', () => {
    expectCode(() => SentencePieceProcessor.fromFile('/nonexistent/tokenizer.model'), 'ERR_IO');
    expectCode(() => loadTokenizer('step-llm', '/nonexistent/tokenizer.model'), 'ERR_IO');
  });

  it('rejects an unknown tokenizer kind', () => {
    expectCode(() => loadTokenizer('gpt' as 'clip', '.'), 'ERR_ARGUMENT');
  });
});

// ---- damaged model files ----------------------------------------------------------------------

/** Loading (and using) damaged bytes may succeed or raise ERR_TOKENIZER; nothing else. */
function expectOnlyTokenizerErrors(bytes: Uint8Array, label: string): void {
  try {
    const sp = new SentencePieceProcessor(bytes, label);
    const ids = sp.encode('Hello  wörld, 你好！ ｆｕｌｌ 🚀 <|MASK_1e69f|>\t123');
    sp.decode(ids);
  } catch (error) {
    if (!isStepVideoError(error, 'ERR_TOKENIZER')) {
      throw new Error(`${label}: expected ERR_TOKENIZER or success, got ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
    }
    expect((error as Error).message).toContain(label);
  }
}

function fuzz(original: Uint8Array, name: string, seed: number, rounds: number): void {
  const random = prng(seed);
  const pick = (n: number): number => Math.floor(random() * n);
  for (let i = 0; i < rounds; i++) {
    const cut = i < 16 ? i : pick(original.length);
    expectOnlyTokenizerErrors(original.subarray(0, cut), `${name}[truncated to ${cut}]`);
  }
  for (let i = 0; i < rounds; i++) {
    const copy = original.slice();
    const flips = 1 + pick(4);
    const where: number[] = [];
    for (let k = 0; k < flips; k++) {
      // Half the flips land in the first 40 KB: pieces and specs, where structure lives.
      const at = random() < 0.5 ? pick(Math.min(original.length, 40_000)) : pick(original.length);
      copy[at]! ^= 1 + pick(255);
      where.push(at);
    }
    expectOnlyTokenizerErrors(copy, `${name}[flipped at ${where.join(',')}]`);
  }
}

describe('damaged models give ERR_TOKENIZER, never another error or a hang', () => {
  it('hand-built models: every truncation and random byte flips', () => {
    for (const [name, model] of [['unigram.model', UNIGRAM], ['bpe.model', BPE]] as const) {
      for (let cut = 0; cut < model.length; cut++) expectOnlyTokenizerErrors(model.subarray(0, cut), `${name}[truncated to ${cut}]`);
      fuzz(model, name, 7, 300);
    }
  });

  const run = requireGolden();
  for (const kind of ['bpe', 'unigram'] as const) {
    it.skipIf(!run)(`the golden sp_${kind}.model: random truncations and byte flips`, () => {
      const bytes = readFileSync(path.join(tinyModelDir, 'step_llm', `sp_${kind}.model`));
      fuzz(bytes, `sp_${kind}.model`, kind === 'bpe' ? 1 : 2, 200);
    });
  }
});

// ---- Step wrapper -------------------------------------------------------------------------------

describe('StepTokenizer framing', () => {
  const sp = new SentencePieceProcessor(BPE, 'bpe.model');
  const step = new StepTokenizer(sp, { requireSpecialPieces: false });

  it('frames an empty text as BOS EOS then PAD, mask on BOS..EOS', () => {
    const { inputIds, attentionMask } = step.encodeOne('');
    expect(inputIds).toHaveLength(320);
    expect(inputIds.slice(0, 3)).toEqual([1, 2, 2]);
    expect(inputIds.every((id, i) => (i === 0 ? id === 1 : id === 2))).toBe(true);
    expect(attentionMask.slice(0, 3)).toEqual([1, 1, 0]);
    expect(attentionMask.reduce((a, b) => a + b, 0)).toBe(2);
  });

  it('truncates to maxLength - 2 ids and keeps EOS last', () => {
    const text = 'ab '.repeat(400); // 400 '▁ab' ids
    expect(sp.encode(text)).toHaveLength(400);
    const { inputIds, attentionMask } = step.encodeOne(text);
    expect(inputIds).toEqual([1, ...new Array<number>(318).fill(268), 2]);
    expect(attentionMask).toEqual(new Array<number>(320).fill(1));
  });

  it('fills exactly when the ids fit to the last slot', () => {
    const { inputIds, attentionMask } = step.encodeOne('ab '.repeat(318));
    expect(inputIds).toEqual([1, ...new Array<number>(318).fill(268), 2]);
    expect(attentionMask.every((m) => m === 1)).toBe(true);
    const shorter = step.encodeOne('ab '.repeat(317));
    expect(shorter.inputIds.slice(-2)).toEqual([2, 2]);
    expect(shorter.attentionMask.slice(-2)).toEqual([1, 0]);
  });

  it('honours small and custom maxLength values', () => {
    expect(step.encodeOne('ab ab', 2)).toEqual({ inputIds: [1, 2], attentionMask: [1, 1] });
    expect(step.encodeOne('ab ab', 3)).toEqual({ inputIds: [1, 268, 2], attentionMask: [1, 1, 1] });
    expect(step.encodeOne('ab', 6)).toEqual({ inputIds: [1, 268, 2, 2, 2, 2], attentionMask: [1, 1, 1, 0, 0, 0] });
    for (const bad of [1, 0, -5, 2.5, Number.NaN]) expectCode(() => step.encode(['x'], bad), 'ERR_ARGUMENT');
  });

  it('encodes a batch row by row, and an empty batch as empty arrays', () => {
    const batch = step.encode(['ab', '', 'xyz'], 8);
    expect(batch.inputIds).toEqual([
      [1, 268, 2, 2, 2, 2, 2, 2],
      [1, 2, 2, 2, 2, 2, 2, 2],
      [1, 260, 124, 125, 126, 2, 2, 2],
    ]);
    expect(batch.attentionMask.map((row) => row.reduce((a, b) => a + b, 0))).toEqual([3, 2, 6]);
    expect(step.encode([])).toEqual({ inputIds: [], attentionMask: [] });
  });

  it('requires the Step special pieces by default', () => {
    expectCode(() => new StepTokenizer(sp), 'ERR_TOKENIZER');
  });

  const run = requireGolden();
  it.skipIf(!run)('checks that the special pieces exist and that <|BOT|>..<|THINK_END|> are control symbols', () => {
    const file = path.join(tinyModelDir, 'step_llm', 'sp_bpe.model');
    const bytes = readFileSync(file);
    expect(() => StepTokenizer.fromFile(file)).not.toThrow();
    // Rename <|BOT|> in place (same length, so the protobuf framing stays valid).
    const renamed = Buffer.from(bytes.toString('latin1').replaceAll('<|BOT|>', '<|BXT|>'), 'latin1');
    expectCode(() => new StepTokenizer(new SentencePieceProcessor(renamed, file)), 'ERR_TOKENIZER');
    expect(() => new StepTokenizer(new SentencePieceProcessor(renamed, file), { requireSpecialPieces: false })).not.toThrow();
    // Turn <|BOT|> into a NORMAL piece: its message ends with type = 3 (CONTROL); make it 1.
    const entry = Buffer.from([0x0a, 0x07, ...Buffer.from('<|BOT|>'), 0x15, 0, 0, 0, 0, 0x18, 0x03]);
    const at = bytes.indexOf(entry);
    expect(at).toBeGreaterThan(0);
    const retyped = Buffer.from(bytes);
    retyped[at + entry.length - 1] = 0x01;
    expectCode(() => new StepTokenizer(new SentencePieceProcessor(retyped, file)), 'ERR_TOKENIZER');
  });

  it.skipIf(!run)('round-trips plain text through encode and decode', () => {
    const bpe = StepTokenizer.fromFile(path.join(tinyModelDir, 'step_llm', 'sp_bpe.model'));
    const unigram = StepTokenizer.fromFile(path.join(tinyModelDir, 'step_llm', 'sp_unigram.model'));
    const plain = [
      'A golden retriever runs along the beach at sunset, waves crashing behind it.',
      '一个平静的早晨镜头从街道的一端缓慢地移动。',
      'emoji 🚀 and bytes é ü ß',
      'MiXeD CaSe 中英文 2026!',
    ];
    // Byte fallback makes BPE lossless on text that is already in normalized (NFKC) form...
    for (const text of plain) expect(bpe.decode(bpe.tokenize(text))).toBe(text);
    // ...and otherwise it gives back the normalized text: nmt_nfkc folds full-width forms.
    expect(bpe.decode(bpe.tokenize('早晨，ＡＢＣ１２３  x'))).toBe('早晨,ABC123 x');
    // Unigram has no byte fallback: lossless only where every character is in its vocabulary.
    const known = 'Close-up of a chef slicing fresh salmon; slow motion, shallow depth of field, 4K HDR.';
    expect(unigram.tokenize(known)).not.toContain(0);
    expect(unigram.decode(unigram.tokenize(known))).toBe(known);
    // Framed ids decode the same: BOS, EOS and PAD are control pieces and vanish.
    expect(bpe.decode(bpe.encodeOne(plain[0]!).inputIds)).toBe(plain[0]);
  });
});

// ---- BERT / WordPiece ----------------------------------------------------------------------------

describe('BertTokenizer', () => {
  const vocab = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'hello', 'world', ',', '!', 'un', '##aff', '##able', 'cafe', '中', '文', '$', 'a'];
  const bert = new BertTokenizer(vocab, {}, 'vocab.txt');

  it('applies BasicTokenizer then greedy WordPiece', () => {
    expect(bert.tokenize('Hello, WORLD!')).toEqual(['hello', ',', 'world', '!']);
    expect(bert.tokenize('unaffable')).toEqual(['un', '##aff', '##able']);
    expect(bert.tokenize('unaffablex')).toEqual(['[UNK]']); // one unmatched tail makes the word [UNK]
    expect(bert.tokenize('Café')).toEqual(['cafe']); // lower-cased, accents stripped
    expect(bert.tokenize('cafe\u0301')).toEqual(['cafe']);
    expect(bert.tokenize('中文a')).toEqual(['中', '文', 'a']); // CJK ideographs stand alone
    expect(bert.tokenize('a$a')).toEqual(['a', '$', 'a']); // ASCII symbols count as punctuation
    expect(bert.tokenize('a\u0000b\ufffd\u0007 hello\t\n\u3000world')).toEqual(['[UNK]', 'hello', 'world']);
    expect(bert.tokenize('hello\u2028world')).toEqual(['hello', 'world']); // Python's split() whitespace
    expect(bert.tokenize('a'.repeat(101))).toEqual(['[UNK]']);
  });

  it('keeps special tokens whole', () => {
    expect(bert.tokenize('hello[MASK]world [SEP]')).toEqual(['hello', '[MASK]', 'world', '[SEP]']);
    expect(bert.tokenize('[mask]')).toEqual(['[UNK]', '[UNK]', '[UNK]']); // lower case is not special
  });

  it('frames, truncates and pads', () => {
    expect(bert.encode([''], 5)).toEqual({ inputIds: [[2, 3, 0, 0, 0]], attentionMask: [[1, 1, 0, 0, 0]] });
    expect(bert.encode(['hello world'], 4)).toEqual({ inputIds: [[2, 5, 6, 3]], attentionMask: [[1, 1, 1, 1]] });
    expect(bert.encode(['hello world hello'], 4)).toEqual({ inputIds: [[2, 5, 6, 3]], attentionMask: [[1, 1, 1, 1]] });
    expect(bert.encode(['hello world'], 2)).toEqual({ inputIds: [[2, 3]], attentionMask: [[1, 1]] });
    const long = bert.encode(['a '.repeat(200)]);
    expect(long.inputIds[0]).toHaveLength(77);
    expect(long.inputIds[0]![76]).toBe(3);
    expect(bert.encode([])).toEqual({ inputIds: [], attentionMask: [] });
    for (const bad of [1, 0, 3.5]) expectCode(() => bert.encode(['x'], bad), 'ERR_ARGUMENT');
  });

  it('honours tokenizer_config.json options', () => {
    const cased = new BertTokenizer(vocab.concat(['Hello']), parseBertConfig('{"do_lower_case": false, "tokenize_chinese_chars": false}'));
    expect(cased.tokenize('Hello 中文')).toEqual(['Hello', '[UNK]']);
    const keepAccents = new BertTokenizer(vocab.concat(['café']), parseBertConfig('{"strip_accents": false}'));
    expect(keepAccents.tokenize('CAFÉ')).toEqual(['café']);
    const custom = parseBertConfig('{"unk_token": {"content": "[UNK]", "lstrip": false}, "never_split": ["x.y"], "model_max_length": 77}');
    expect(custom).toMatchObject({ unkToken: '[UNK]', neverSplit: ['x.y'], modelMaxLength: 77 });
  });

  it('reports a broken config, a vocabulary without special tokens, or a missing file', () => {
    expectCode(() => parseBertConfig('{not json', 'tokenizer_config.json'), 'ERR_TOKENIZER');
    expectCode(() => parseBertConfig('{"do_lower_case": "yes"}', 'tokenizer_config.json'), 'ERR_TOKENIZER');
    expectCode(() => parseBertConfig('[]', 'tokenizer_config.json'), 'ERR_TOKENIZER');
    expectCode(() => new BertTokenizer(['[PAD]', '[UNK]', '[SEP]'], {}, 'vocab.txt'), 'ERR_TOKENIZER');
    expectCode(() => BertTokenizer.fromPath('/nonexistent/tokenizer'), 'ERR_IO');
    expectCode(() => loadTokenizer('clip', '/nonexistent/tokenizer'), 'ERR_IO');
  });
});
