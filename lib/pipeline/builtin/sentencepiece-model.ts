// A SentencePiece `.model` file made in code for the built-in test model: a BPE model with byte
// fallback, the special pieces the Step tokenizer wrapper asserts, and merges learnt from a small
// fixed word list (a few hundred steps of plain BPE training). It is read back by the same
// SentencePieceProcessor that reads the released step1_chat_tokenizer.model.
//
// Piece order follows what spm_train writes: <unk> <s> </s>, control and user-defined symbols,
// the 256 byte pieces, then the merged pieces (best first) and the single characters.
import { ModelType, PieceType } from '../../tokenizers/sentencepiece.js';
import { STEP_CONTROL_PIECES, STEP_MASK_PIECES } from '../../tokenizers/step-tokenizer.js';

const SPACE = '\u2581';

/** Protobuf wire-format writer: just the field kinds ModelProto needs. */
class ProtoWriter {
  readonly #bytes: number[] = [];

  #varint(value: number): void {
    let v = value;
    while (v >= 0x80) {
      this.#bytes.push((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    this.#bytes.push(v);
  }

  #key(field: number, wireType: number): void {
    this.#varint(field * 8 + wireType);
  }

  /** A non-negative int32, bool or enum. */
  uint(field: number, value: number | boolean): this {
    this.#key(field, 0);
    this.#varint(typeof value === 'boolean' ? Number(value) : value);
    return this;
  }

  float(field: number, value: number): this {
    this.#key(field, 5);
    const buffer = new DataView(new ArrayBuffer(4));
    buffer.setFloat32(0, value, true);
    for (let i = 0; i < 4; i++) this.#bytes.push(buffer.getUint8(i));
    return this;
  }

  bytes(field: number, data: Uint8Array): this {
    this.#key(field, 2);
    this.#varint(data.length);
    for (const byte of data) this.#bytes.push(byte);
    return this;
  }

  string(field: number, text: string): this {
    return this.bytes(field, new TextEncoder().encode(text));
  }

  message(field: number, inner: ProtoWriter): this {
    return this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.#bytes);
  }
}

/** Words the merges are learnt from: the vocabulary of typical video prompts. */
const TRAINING_WORDS = `
a an the of and in on with at to from by is are over under through into near above across
video scene camera shot close wide slow motion light sunset sunrise night day sky cloud rain snow
sea ocean wave beach river lake mountain forest tree flower grass field city street road car train
man woman child girl boy people dog cat bird horse fish running walking dancing flying swimming
playing standing sitting looking smiling red blue green yellow white black golden bright dark soft
warm cold big small old young beautiful calm quiet busy moving turning holding wearing
`;

/**
 * Learns up to `merges` BPE merges from the training words (fewer once every word is one symbol) (each word starts with '▁', as SentencePiece
 * escapes the space before it). Pairs are counted over the word list, the most frequent pair is
 * merged (ties broken by the pair's text, so the result is deterministic), and so on.
 */
export function learnMerges(merges: number): string[] {
  const words = TRAINING_WORDS.split(/\s+/).filter((w) => w.length > 0).map((w) => [...(SPACE + w)]);
  const learnt: string[] = [];
  for (let round = 0; round < merges; round++) {
    const counts = new Map<string, number>();
    for (const symbols of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const pair = `${symbols[i]}\u0000${symbols[i + 1]}`;
        counts.set(pair, (counts.get(pair) ?? 0) + 1);
      }
    }
    let best: string | undefined;
    let bestCount = 0;
    for (const [pair, count] of counts) {
      if (count > bestCount || (count === bestCount && best !== undefined && pair < best)) {
        best = pair;
        bestCount = count;
      }
    }
    if (best === undefined) break;
    const [left, right] = best.split('\u0000') as [string, string];
    const merged = left + right;
    // The same text can arise from two different splits; a piece is listed once.
    if (!learnt.includes(merged)) learnt.push(merged);
    for (const symbols of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        if (symbols[i] === left && symbols[i + 1] === right) symbols.splice(i, 2, merged);
      }
    }
  }
  return learnt;
}

export interface SentencePieceModelSummary {
  bytes: Uint8Array;
  /** Number of pieces (ids 0 .. vocabSize - 1). */
  vocabSize: number;
}

/**
 * The serialized ModelProto of the built-in Step tokenizer: ids 0/1/2 are <unk>/<s>/</s> (the
 * wrapper hard-codes BOS 1 and EOS/PAD 2), then the Step special pieces, <0x00>..<0xFF>, the
 * merges and the printable ASCII characters plus '▁'. Anything else (Chinese text, for instance)
 * falls back to its UTF-8 bytes.
 */
export function buildStepSentencePieceModel(merges = 300): SentencePieceModelSummary {
  const pieces: Array<{ piece: string; score: number; type: number }> = [
    { piece: '<unk>', score: 0, type: PieceType.Unknown },
    { piece: '<s>', score: 0, type: PieceType.Control },
    { piece: '</s>', score: 0, type: PieceType.Control },
    ...STEP_CONTROL_PIECES.map((piece) => ({ piece, score: 0, type: PieceType.Control })),
    ...STEP_MASK_PIECES.map((piece) => ({ piece, score: 0, type: PieceType.UserDefined })),
  ];
  for (let byte = 0; byte < 256; byte++) {
    pieces.push({ piece: `<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`, score: 0, type: PieceType.Byte });
  }
  // Scores rank the merges (earlier = higher); single characters score below every merge.
  const learnt = learnMerges(merges);
  learnt.forEach((piece, i) => pieces.push({ piece, score: -i, type: PieceType.Normal }));
  const characters = [SPACE];
  for (let code = 0x21; code <= 0x7e; code++) characters.push(String.fromCharCode(code));
  characters.forEach((piece, i) => pieces.push({ piece, score: -(learnt.length + i), type: PieceType.Normal }));

  const model = new ProtoWriter();
  for (const p of pieces) model.message(1, new ProtoWriter().string(1, p.piece).float(2, p.score).uint(3, p.type));
  const trainer = new ProtoWriter()
    .uint(3, ModelType.Bpe)
    .uint(4, pieces.length)
    .uint(35, true) // byte_fallback
    .uint(40, 0) // unk_id
    .uint(41, 1) // bos_id
    .uint(42, 2); // eos_id
  model.message(2, trainer);
  // The identity normalizer: no charsmap; a dummy prefix and whitespace escaping as spm's defaults.
  const normalizer = new ProtoWriter().string(1, 'identity').uint(3, true).uint(4, true).uint(5, true);
  model.message(3, normalizer);
  return { bytes: model.finish(), vocabSize: pieces.length };
}
