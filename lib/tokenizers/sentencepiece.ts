// SentencePiece in pure TypeScript: loads a `.model` file (a serialized ModelProto) and encodes and
// decodes exactly as the C++ library (and so the Python `sentencepiece` package) does. All work is
// done on UTF-8 bytes, like the original, so positions, lengths and tie-breaks agree byte for byte:
//   normalize (precompiled charsmap + whitespace rules) -> unigram Viterbi or BPE merges ->
//   unknown handling (merge runs of <unk>, or byte fallback) -> ids.
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { StepVideoError, asStepVideoError } from '../errors.js';
import { ProtoReader, WireType, type ProtoTag } from './protobuf.js';

/** ModelProto.SentencePiece.Type. */
export const PieceType = {
  Normal: 1,
  Unknown: 2,
  Control: 3,
  UserDefined: 4,
  Unused: 5,
  Byte: 6,
} as const;

/** TrainerSpec.ModelType. */
export const ModelType = {
  Unigram: 1,
  Bpe: 2,
  Word: 3,
  Char: 4,
} as const;

export interface SentencePieceEntry {
  /** The piece as text. */
  piece: string;
  /** The piece's raw bytes as stored (what matching uses). */
  bytes: Uint8Array;
  score: number;
  /** One of PieceType. */
  type: number;
}

export interface TrainerSpec {
  /** One of ModelType. */
  modelType: number;
  vocabSize: number;
  byteFallback: boolean;
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
  unkPiece: string;
  bosPiece: string;
  eosPiece: string;
  padPiece: string;
  /** What decode prints for <unk>; undefined = the default " ⁇ ". */
  unkSurface: string | undefined;
  treatWhitespaceAsSuffix: boolean;
  allowWhitespaceOnlyPieces: boolean;
  // The split_* rules shape training only; encoding never re-splits. Kept for inspection.
  splitByUnicodeScript: boolean;
  splitByNumber: boolean;
  splitByWhitespace: boolean;
  splitDigits: boolean;
  controlSymbols: string[];
  userDefinedSymbols: string[];
}

export interface NormalizerSpec {
  name: string;
  /** <trie size: u32 LE><Darts-clone double array><NUL-separated replacement strings>. */
  precompiledCharsmap: Uint8Array;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
  normalizationRuleTsv: string;
}

export interface ModelProto {
  pieces: SentencePieceEntry[];
  trainerSpec: TrainerSpec;
  normalizerSpec: NormalizerSpec;
  /** Present only when the model ships a denormalizer with a non-empty charsmap. */
  denormalizerSpec: NormalizerSpec | undefined;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: false });

// ---------------------------------------------------------------------------------------------
// ModelProto parsing

function defaultTrainerSpec(): TrainerSpec {
  return {
    modelType: ModelType.Unigram,
    vocabSize: 8000,
    byteFallback: false,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    unkPiece: '<unk>',
    bosPiece: '<s>',
    eosPiece: '</s>',
    padPiece: '<pad>',
    unkSurface: undefined,
    treatWhitespaceAsSuffix: false,
    allowWhitespaceOnlyPieces: false,
    splitByUnicodeScript: true,
    splitByNumber: true,
    splitByWhitespace: true,
    splitDigits: false,
    controlSymbols: [],
    userDefinedSymbols: [],
  };
}

function defaultNormalizerSpec(): NormalizerSpec {
  return {
    name: '',
    precompiledCharsmap: new Uint8Array(0),
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
    normalizationRuleTsv: '',
  };
}

// Field handlers read a value when the wire type is the declared one. A mismatching wire type is
// an unknown field to protobuf, so it is skipped rather than misread.
type FieldReader<T> = Record<number, [wireType: number, read: (r: ProtoReader, into: T) => void]>;

function readFields<T>(reader: ProtoReader, into: T, fields: FieldReader<T>): T {
  while (!reader.done) {
    const tag: ProtoTag = reader.readTag();
    const handler = fields[tag.field];
    if (handler !== undefined && handler[0] === tag.wireType) handler[1](reader, into);
    else reader.skip(tag);
  }
  return into;
}

const V = WireType.Varint;
const L = WireType.LengthDelimited;
const F32 = WireType.Fixed32;

// proto2 enums are closed: an unknown value leaves the field at its default.
function enumOr(value: number, allowed: Record<string, number>, fallback: number): number {
  return Object.values(allowed).includes(value) ? value : fallback;
}

const pieceFields: FieldReader<SentencePieceEntry> = {
  1: [L, (r, p) => { p.bytes = r.readBytes(); p.piece = decoder.decode(p.bytes); }],
  2: [F32, (r, p) => { p.score = r.readFloat(); }],
  3: [V, (r, p) => { p.type = enumOr(r.readInt32(), PieceType, PieceType.Normal); }],
};

const trainerFields: FieldReader<TrainerSpec> = {
  3: [V, (r, t) => { t.modelType = enumOr(r.readInt32(), ModelType, ModelType.Unigram); }],
  4: [V, (r, t) => { t.vocabSize = r.readInt32(); }],
  21: [V, (r, t) => { t.splitByUnicodeScript = r.readBool(); }],
  22: [V, (r, t) => { t.splitByWhitespace = r.readBool(); }],
  23: [V, (r, t) => { t.splitByNumber = r.readBool(); }],
  24: [V, (r, t) => { t.treatWhitespaceAsSuffix = r.readBool(); }],
  25: [V, (r, t) => { t.splitDigits = r.readBool(); }],
  26: [V, (r, t) => { t.allowWhitespaceOnlyPieces = r.readBool(); }],
  30: [L, (r, t) => { t.controlSymbols.push(r.readString()); }],
  31: [L, (r, t) => { t.userDefinedSymbols.push(r.readString()); }],
  35: [V, (r, t) => { t.byteFallback = r.readBool(); }],
  40: [V, (r, t) => { t.unkId = r.readInt32(); }],
  41: [V, (r, t) => { t.bosId = r.readInt32(); }],
  42: [V, (r, t) => { t.eosId = r.readInt32(); }],
  43: [V, (r, t) => { t.padId = r.readInt32(); }],
  44: [L, (r, t) => { t.unkSurface = r.readString(); }],
  45: [L, (r, t) => { t.unkPiece = r.readString(); }],
  46: [L, (r, t) => { t.bosPiece = r.readString(); }],
  47: [L, (r, t) => { t.eosPiece = r.readString(); }],
  48: [L, (r, t) => { t.padPiece = r.readString(); }],
};

const normalizerFields: FieldReader<NormalizerSpec> = {
  1: [L, (r, n) => { n.name = r.readString(); }],
  2: [L, (r, n) => { n.precompiledCharsmap = r.readBytes(); }],
  3: [V, (r, n) => { n.addDummyPrefix = r.readBool(); }],
  4: [V, (r, n) => { n.removeExtraWhitespaces = r.readBool(); }],
  5: [V, (r, n) => { n.escapeWhitespaces = r.readBool(); }],
  6: [L, (r, n) => { n.normalizationRuleTsv = r.readString(); }],
};

/** Parses a serialized ModelProto. Structural damage raises ERR_TOKENIZER naming `file`. */
export function parseModelProto(bytes: Uint8Array, file?: string): ModelProto {
  const proto: ModelProto = {
    pieces: [],
    trainerSpec: defaultTrainerSpec(),
    normalizerSpec: defaultNormalizerSpec(),
    denormalizerSpec: undefined,
  };
  let denormalizer: NormalizerSpec | undefined;
  // A message field that occurs twice merges into one, as protobuf does.
  readFields(new ProtoReader(bytes, file), proto, {
    1: [L, (r, p) => { p.pieces.push(readFields(r.readMessage(), { piece: '', bytes: new Uint8Array(0), score: 0, type: PieceType.Normal }, pieceFields)); }],
    2: [L, (r, p) => { readFields(r.readMessage(), p.trainerSpec, trainerFields); }],
    3: [L, (r, p) => { readFields(r.readMessage(), p.normalizerSpec, normalizerFields); }],
    5: [L, (r) => { denormalizer = readFields(r.readMessage(), denormalizer ?? defaultNormalizerSpec(), normalizerFields); }],
  });
  // SentencePiece only builds a denormalizer when it has rules to apply.
  if (denormalizer !== undefined && denormalizer.precompiledCharsmap.length > 0) proto.denormalizerSpec = denormalizer;
  return proto;
}

// ---------------------------------------------------------------------------------------------
// UTF-8 helpers with SentencePiece's own rules

const SPACE_SYMBOL = [0xe2, 0x96, 0x81]; // U+2581 '▁'
const REPLACEMENT_CHAR = Uint8Array.of(0xef, 0xbf, 0xbd); // U+FFFD
const DEFAULT_UNK_SURFACE = ' \u2047 ';
const EMPTY = new Uint8Array(0);

/** Byte length of the character a lead byte starts, by its high nibble (string_util::OneCharLen). */
function oneCharLen(lead: number): number {
  return lead < 0xc0 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
}

function isTrail(byte: number | undefined): boolean {
  return byte !== undefined && (byte & 0xc0) === 0x80;
}

/**
 * Length of the well-formed character at `pos` (string_util::IsValidDecodeUTF8), or 0 when the bytes
 * there are malformed: overlong forms, surrogates and code points past U+10FFFF are rejected.
 */
function validCharLength(bytes: Uint8Array, pos: number, end: number): number {
  const c0 = bytes[pos]!;
  if (c0 < 0x80) return 1;
  const left = end - pos;
  const c1 = bytes[pos + 1];
  const c2 = bytes[pos + 2];
  const c3 = bytes[pos + 3];
  if (left >= 2 && (c0 & 0xe0) === 0xc0) {
    const cp = ((c0 & 0x1f) << 6) | (c1! & 0x3f);
    return isTrail(c1) && cp >= 0x80 ? 2 : 0;
  }
  if (left >= 3 && (c0 & 0xf0) === 0xe0) {
    const cp = ((c0 & 0x0f) << 12) | ((c1! & 0x3f) << 6) | (c2! & 0x3f);
    return isTrail(c1) && isTrail(c2) && cp >= 0x800 && (cp < 0xd800 || cp >= 0xe000) ? 3 : 0;
  }
  if (left >= 4 && (c0 & 0xf8) === 0xf0) {
    const cp = ((c0 & 0x07) << 18) | ((c1! & 0x3f) << 12) | ((c2! & 0x3f) << 6) | (c3! & 0x3f);
    return isTrail(c1) && isTrail(c2) && isTrail(c3) && cp >= 0x10000 && cp <= 0x10ffff ? 4 : 0;
  }
  return 0;
}

function bytePiece(byte: number): string {
  return `<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/** "<0xAB>" -> 0xAB; anything else (including lower-case hex) -> -1, as PieceToByte. */
function pieceToByte(piece: string): number {
  return /^<0x[0-9A-F]{2}>$/.test(piece) ? parseInt(piece.slice(3, 5), 16) : -1;
}

// ---------------------------------------------------------------------------------------------
// Byte tries (pieces, user-defined symbols). Edges live in one Map keyed by node * 256 + byte.

interface ByteTrie {
  edges: Map<number, number>;
  /** Per node: the stored value, or -1. */
  values: number[];
}

function newTrie(): ByteTrie {
  return { edges: new Map(), values: [-1] };
}

function trieInsert(trie: ByteTrie, key: Uint8Array, value: number): void {
  let node = 0;
  for (const byte of key) {
    const edge = node * 256 + byte;
    let child = trie.edges.get(edge);
    if (child === undefined) {
      child = trie.values.length;
      trie.values.push(-1);
      trie.edges.set(edge, child);
    }
    node = child;
  }
  trie.values[node] = value;
}

/** Exact lookup of bytes[start, end); -1 when absent. */
function trieGet(trie: ByteTrie, bytes: Uint8Array, start: number, end: number): number {
  let node = 0;
  for (let i = start; i < end; i++) {
    const child = trie.edges.get(node * 256 + bytes[i]!);
    if (child === undefined) return -1;
    node = child;
  }
  return trie.values[node]!;
}

/** Length of the longest key that prefixes bytes[start, end); 0 when none. */
function trieLongestPrefix(trie: ByteTrie, bytes: Uint8Array, start: number, end: number): number {
  let node = 0;
  let longest = 0;
  for (let i = start; i < end; i++) {
    const child = trie.edges.get(node * 256 + bytes[i]!);
    if (child === undefined) break;
    node = child;
    if (trie.values[node]! >= 0) longest = i - start + 1;
  }
  return longest;
}

// ---------------------------------------------------------------------------------------------
// Normalizer (normalizer.cc)

interface Normalizer {
  spec: NormalizerSpec;
  /** Darts-clone double-array units of the charsmap, or null for the identity normalizer. */
  units: Uint32Array | null;
  /** NUL-terminated replacement strings that trie values point into. */
  strings: Uint8Array;
  /** Replacement string end (exclusive) per start offset, filled lazily. */
  stringEnds: Map<number, number>;
  treatWhitespaceAsSuffix: boolean;
  /** User-defined symbols pass through normalization untouched. */
  matcher: ByteTrie | null;
  file: string | undefined;
}

function tokenizerError(what: string, file: string | undefined): StepVideoError {
  return new StepVideoError('ERR_TOKENIZER', what, file !== undefined ? { file } : {});
}

function compileNormalizer(spec: NormalizerSpec, treatWhitespaceAsSuffix: boolean, matcher: ByteTrie | null, file: string | undefined): Normalizer {
  const normalizer: Normalizer = { spec, units: null, strings: EMPTY, stringEnds: new Map(), treatWhitespaceAsSuffix, matcher, file };
  const blob = spec.precompiledCharsmap;
  if (blob.length === 0) return normalizer;
  if (blob.length <= 4) throw tokenizerError('precompiled charsmap is broken: shorter than its 4-byte header', file);
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const trieSize = view.getUint32(0, true);
  if (trieSize >= blob.length) {
    throw tokenizerError(`precompiled charsmap is broken: trie size ${trieSize} exceeds the blob (${blob.length} bytes)`, file);
  }
  // The blob sits at an arbitrary offset in the file, so the units are copied out, not aliased.
  const units = new Uint32Array(Math.floor(trieSize / 4));
  for (let i = 0; i < units.length; i++) units[i] = view.getUint32(4 + 4 * i, true);
  if (units.length === 0) throw tokenizerError('precompiled charsmap is broken: empty double array', file);
  normalizer.units = units;
  normalizer.strings = blob.subarray(4 + trieSize);
  return normalizer;
}

function unitAt(n: Normalizer, index: number): number {
  const unit = n.units![index];
  if (unit === undefined) throw tokenizerError(`precompiled charsmap is corrupt: trie index ${index} out of range`, n.file);
  return unit;
}

// Darts-clone unit layout: bit 8 = has leaf, bits 0-7 (+ bit 31 for leaves) = label, bits 10-31
// (times 256 when bit 9 is set) = offset to children; a leaf unit's low 31 bits are its value.
const unitOffset = (unit: number): number => (unit >>> 10) << ((unit & 0x200) >>> 6);
const unitLabel = (unit: number): number => (unit & 0x800000ff) >>> 0;
const unitHasLeaf = (unit: number): boolean => ((unit >>> 8) & 1) === 1;

interface Prefix {
  /** Where the normalized bytes of this prefix live. */
  src: Uint8Array;
  start: number;
  length: number;
  /** Input bytes consumed. */
  consumed: number;
}

/** Normalizer::NormalizePrefix: the longest charsmap rule at `pos`, else one character as is. */
function normalizePrefix(n: Normalizer, input: Uint8Array, pos: number): Prefix {
  if (n.matcher !== null) {
    const length = trieLongestPrefix(n.matcher, input, pos, input.length);
    if (length > 0) return { src: input, start: pos, length, consumed: length };
  }
  if (n.units !== null) {
    // commonPrefixSearch, keeping the longest hit.
    let node = unitOffset(unitAt(n, 0));
    let matched = 0;
    let value = 0;
    for (let i = pos; i < input.length; i++) {
      const byte = input[i]!;
      node ^= byte;
      const unit = unitAt(n, node);
      if (unitLabel(unit) !== byte) break;
      node ^= unitOffset(unit);
      if (unitHasLeaf(unit)) {
        matched = i - pos + 1;
        value = unitAt(n, node) & 0x7fffffff;
      }
    }
    if (matched > 0) {
      let end = n.stringEnds.get(value);
      if (end === undefined) {
        if (value >= n.strings.length) throw tokenizerError(`precompiled charsmap is corrupt: string offset ${value} out of range`, n.file);
        end = n.strings.indexOf(0, value);
        if (end < 0) throw tokenizerError('precompiled charsmap is corrupt: replacement string is not NUL-terminated', n.file);
        n.stringEnds.set(value, end);
      }
      return { src: n.strings, start: value, length: end - value, consumed: matched };
    }
  }
  const length = validCharLength(input, pos, input.length);
  // A malformed byte becomes U+FFFD and is consumed alone.
  if (length === 0) return { src: REPLACEMENT_CHAR, start: 0, length: 3, consumed: 1 };
  return { src: input, start: pos, length, consumed: length };
}

function endsWith(out: number[], suffix: readonly number[]): boolean {
  if (out.length < suffix.length) return false;
  for (let i = 0; i < suffix.length; i++) if (out[out.length - suffix.length + i] !== suffix[i]) return false;
  return true;
}

/** Normalizer::Normalize: charsmap rules, then whitespace trimming/collapsing/escaping. */
function normalizeBytes(n: Normalizer, input: Uint8Array): Uint8Array {
  const spec = n.spec;
  let pos = 0;
  if (spec.removeExtraWhitespaces) {
    while (pos < input.length) {
      const p = normalizePrefix(n, input, pos);
      if (p.length !== 1 || p.src[p.start] !== 0x20) break;
      pos += p.consumed;
    }
  }
  if (pos >= input.length) return EMPTY;

  const space = spec.escapeWhitespaces ? SPACE_SYMBOL : [0x20];
  const out: number[] = [];
  if (!n.treatWhitespaceAsSuffix && spec.addDummyPrefix) out.push(...space);

  let isPrevSpace = spec.removeExtraWhitespaces;
  while (pos < input.length) {
    const p = normalizePrefix(n, input, pos);
    let start = p.start;
    const end = p.start + p.length;
    // Collapse runs: drop the leading spaces of this piece when the previous one ended in space.
    if (isPrevSpace) while (start < end && p.src[start] === 0x20) start++;
    if (start < end) {
      for (let k = start; k < end; k++) {
        const byte = p.src[k]!;
        if (byte === 0x20 && spec.escapeWhitespaces) out.push(...SPACE_SYMBOL);
        else out.push(byte);
      }
      isPrevSpace = p.src[end - 1] === 0x20;
    }
    pos += p.consumed;
    if (!spec.removeExtraWhitespaces) isPrevSpace = false;
  }

  if (spec.removeExtraWhitespaces) {
    while (endsWith(out, space)) out.length -= space.length;
  }
  if (n.treatWhitespaceAsSuffix && spec.addDummyPrefix) out.push(...space);
  return Uint8Array.from(out);
}

// ---------------------------------------------------------------------------------------------
// Encoders

/** One encoded piece: normalized bytes [start, end) and its id. */
interface Span {
  start: number;
  end: number;
  id: number;
}

interface ModelTables {
  pieces: SentencePieceEntry[];
  /** NORMAL, USER_DEFINED and UNUSED pieces: what text can be segmented into. */
  vocab: ByteTrie;
  /** UNKNOWN, CONTROL and BYTE pieces: looked up first by PieceToId, never matched in text. */
  reserved: ByteTrie;
  /** User-defined symbols, or null when there are none. */
  userSymbols: ByteTrie | null;
  unkId: number;
  minScore: number;
  maxScore: number;
}

/** ModelInterface::PieceToId on bytes: reserved pieces first, then the vocabulary, else <unk>. */
function idOfBytes(m: ModelTables, bytes: Uint8Array, start: number, end: number): number {
  const reserved = trieGet(m.reserved, bytes, start, end);
  if (reserved >= 0) return reserved;
  const id = trieGet(m.vocab, bytes, start, end);
  return id >= 0 ? id : m.unkId;
}

const UNK_PENALTY = 10;

/**
 * unigram::Model::EncodeOptimized: Viterbi over byte positions keeping, for every position, the best
 * path that ends there. Scores are float32 like the original, so ties break identically.
 */
function encodeUnigram(m: ModelTables, text: Uint8Array): Span[] {
  const size = text.length;
  if (size === 0) return [];
  const score = new Float64Array(size + 1);
  const startsAt = new Int32Array(size + 1).fill(-1);
  const ids = new Int32Array(size + 1).fill(-1);
  const unkScore = Math.fround(m.minScore - UNK_PENALTY);

  let begin = 0;
  while (begin < size) {
    const here = score[begin]!;
    const charLen = Math.min(oneCharLen(text[begin]!), size - begin);
    let hasSingleChar = false;
    let node = 0;
    for (let end = begin + 1; end <= size; end++) {
      const child = m.vocab.edges.get(node * 256 + text[end - 1]!);
      if (child === undefined) break;
      node = child;
      const id = m.vocab.values[node]!;
      if (id < 0) continue;
      const piece = m.pieces[id]!;
      if (piece.type === PieceType.Unused) continue;
      const length = end - begin;
      // C++ types this sum as double (the ?: below mixes float and double), so the comparison is
      // made before rounding to float. User-defined symbols get a bonus so they always win.
      const candidate = (piece.type === PieceType.UserDefined ? Math.fround(length * m.maxScore) - 0.1 : piece.score) + here;
      if (startsAt[end] === -1 || candidate > score[end]!) {
        score[end] = Math.fround(candidate);
        startsAt[end] = begin;
        ids[end] = id;
      }
      if (length === charLen) hasSingleChar = true;
    }
    if (!hasSingleChar) {
      const end = begin + charLen;
      const candidate = Math.fround(unkScore + here);
      if (startsAt[end] === -1 || candidate > score[end]!) {
        score[end] = candidate;
        startsAt[end] = begin;
        ids[end] = m.unkId;
      }
    }
    begin += charLen;
  }

  const spans: Span[] = [];
  for (let end = size; end > 0; ) {
    const start = startsAt[end]!;
    if (start < 0) throw new StepVideoError('ERR_INTERNAL', `unigram lattice has no path to byte ${end}`);
    spans.push({ start, end, id: ids[end]! });
    end = start;
  }
  return spans.reverse();
}

interface MergeCandidate {
  left: number;
  right: number;
  score: number;
  size: number;
}

// Max-heap order of bpe::Model's agenda: higher score first, then the leftmost pair.
function outranks(a: MergeCandidate, b: MergeCandidate): boolean {
  return a.score > b.score || (a.score === b.score && a.left < b.left);
}

function heapPush(heap: MergeCandidate[], item: MergeCandidate): void {
  let i = heap.length;
  heap.push(item);
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (!outranks(item, heap[parent]!)) break;
    heap[i] = heap[parent]!;
    i = parent;
  }
  heap[i] = item;
}

function heapPop(heap: MergeCandidate[]): MergeCandidate {
  const top = heap[0]!;
  const last = heap.pop()!;
  if (heap.length > 0) {
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= heap.length) break;
      const r = l + 1;
      const child = r < heap.length && outranks(heap[r]!, heap[l]!) ? r : l;
      if (!outranks(heap[child]!, last)) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
  }
  return top;
}

/**
 * bpe::Model::Encode: start from characters (user-defined symbols as frozen wholes), repeatedly
 * merge the adjacent pair that forms the best-scoring vocabulary piece, then split UNUSED pieces
 * back into the pieces they were merged from.
 */
function encodeBpe(m: ModelTables, text: Uint8Array): Span[] {
  const size = text.length;
  if (size === 0) return [];
  const start: number[] = [];
  const len: number[] = [];
  const frozen: boolean[] = [];
  for (let pos = 0; pos < size; ) {
    const user = m.userSymbols !== null ? trieLongestPrefix(m.userSymbols, text, pos, size) : 0;
    const length = user > 0 ? user : Math.min(oneCharLen(text[pos]!), size - pos);
    start.push(pos);
    len.push(length);
    frozen.push(user > 0);
    pos += length;
  }
  const count = start.length;
  const prev = Array.from({ length: count }, (_, i) => i - 1);
  const next = Array.from({ length: count }, (_, i) => (i + 1 < count ? i + 1 : -1));

  // Unused pieces are still merged through, remembering what they were made of.
  const unmerge = new Map<number, [leftStart: number, leftLen: number, rightStart: number, rightLen: number]>();
  const agenda: MergeCandidate[] = [];
  const consider = (left: number, right: number): void => {
    if (left < 0 || right < 0 || frozen[left] || frozen[right]) return;
    const size = len[left]! + len[right]!;
    const id = trieGet(m.vocab, text, start[left]!, start[left]! + size);
    if (id < 0) return;
    heapPush(agenda, { left, right, score: m.pieces[id]!.score, size });
    if (m.pieces[id]!.type === PieceType.Unused) unmerge.set(id, [start[left]!, len[left]!, start[right]!, len[right]!]);
  };
  for (let i = 1; i < count; i++) consider(i - 1, i);

  while (agenda.length > 0) {
    const top = heapPop(agenda);
    const { left, right } = top;
    // Stale: one side was merged away or grew since this pair was queued.
    if (len[left] === 0 || len[right] === 0 || len[left]! + len[right]! !== top.size) continue;
    len[left] = top.size;
    next[left] = next[right]!;
    if (next[right]! >= 0) prev[next[right]!] = left;
    len[right] = 0;
    consider(prev[left]!, left);
    consider(left, next[left]!);
  }

  const spans: Span[] = [];
  const resegment = (s: number, l: number): void => {
    const id = idOfBytes(m, text, s, s + l);
    const parts = m.pieces[id]!.type === PieceType.Unused ? unmerge.get(id) : undefined;
    if (parts === undefined) {
      spans.push({ start: s, end: s + l, id });
      return;
    }
    resegment(parts[0], parts[1]);
    resegment(parts[2], parts[3]);
  };
  for (let i = 0; i !== -1; i = next[i]!) resegment(start[i]!, len[i]!);
  return spans;
}

// ---------------------------------------------------------------------------------------------

/** A loaded SentencePiece model: `encode` = `encode_as_ids`, `decode` = `decode_ids`. */
export class SentencePieceProcessor {
  readonly proto: ModelProto;
  readonly file: string | undefined;
  private readonly tables: ModelTables;
  private readonly normalizer: Normalizer;
  private readonly denormalizer: Normalizer | null;
  private readonly vocabIds = new Map<string, number>();
  private readonly reservedIds = new Map<string, number>();
  private readonly unkSurface: Uint8Array;

  /** Parses and validates a model; `file` labels errors. */
  constructor(bytes: Uint8Array, file?: string) {
    this.file = file;
    const proto = parseModelProto(bytes, file);
    this.proto = proto;
    const trainer = proto.trainerSpec;
    if (trainer.modelType !== ModelType.Unigram && trainer.modelType !== ModelType.Bpe) {
      const name = trainer.modelType === ModelType.Word ? 'word' : 'char';
      throw tokenizerError(`unsupported SentencePiece model_type ${trainer.modelType} (${name}); only unigram and bpe are implemented`, file);
    }
    if (proto.pieces.length === 0) throw tokenizerError('SentencePiece model has no pieces', file);

    // ModelInterface::InitializePieces, with its checks.
    const vocab = newTrie();
    const reserved = newTrie();
    let userSymbols: ByteTrie | null = null;
    let unkId = -1;
    const bytesSeen = new Set<number>();
    let minScore = 3.4028234663852886e38; // FLT_MAX
    let maxScore = 1.1754943508222875e-38; // FLT_MIN, as the C++ initialises it
    proto.pieces.forEach((p, id) => {
      if (p.bytes.length === 0) throw tokenizerError(`piece ${id} is empty`, file);
      const isVocab = p.type === PieceType.Normal || p.type === PieceType.UserDefined || p.type === PieceType.Unused;
      // Uniqueness is per table and by bytes, as in C++ (a piece may be both CONTROL and NORMAL).
      const trie = isVocab ? vocab : reserved;
      if (trieGet(trie, p.bytes, 0, p.bytes.length) >= 0) throw tokenizerError(`piece '${p.piece}' (id ${id}) is already defined`, file);
      trieInsert(trie, p.bytes, id);
      const ids = isVocab ? this.vocabIds : this.reservedIds;
      if (!ids.has(p.piece)) ids.set(p.piece, id);
      if (p.type === PieceType.UserDefined) {
        userSymbols ??= newTrie();
        trieInsert(userSymbols, p.bytes, id);
      }
      if (p.type === PieceType.Unknown) {
        if (unkId >= 0) throw tokenizerError(`unknown piece defined twice (ids ${unkId} and ${id})`, file);
        unkId = id;
      }
      if (p.type === PieceType.Byte) {
        if (!trainer.byteFallback) throw tokenizerError(`byte piece '${p.piece}' found although byte_fallback is false`, file);
        const byte = pieceToByte(p.piece);
        if (byte < 0) throw tokenizerError(`byte piece '${p.piece}' is invalid`, file);
        bytesSeen.add(byte);
      }
      if (p.type === PieceType.Normal) {
        minScore = Math.min(minScore, p.score);
        maxScore = Math.max(maxScore, p.score);
      }
    });
    if (unkId < 0) throw tokenizerError('SentencePiece model defines no unknown piece', file);
    if (trainer.byteFallback && bytesSeen.size !== 256) {
      throw tokenizerError(`byte_fallback is set but only ${bytesSeen.size} of 256 byte pieces exist`, file);
    }

    this.tables = { pieces: proto.pieces, vocab, reserved, userSymbols, unkId, minScore, maxScore };
    this.normalizer = compileNormalizer(proto.normalizerSpec, trainer.treatWhitespaceAsSuffix, userSymbols, file);
    this.denormalizer = proto.denormalizerSpec !== undefined ? compileNormalizer(proto.denormalizerSpec, false, null, file) : null;
    this.unkSurface = encoder.encode(trainer.unkSurface ?? DEFAULT_UNK_SURFACE);
  }

  /** Reads and loads a `.model` file synchronously. */
  static fromFile(file: string): SentencePieceProcessor {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(file);
    } catch (error) {
      throw asStepVideoError(error, 'ERR_IO', 'cannot read SentencePiece model', { file });
    }
    return new SentencePieceProcessor(bytes, file);
  }

  /** Reads and loads a `.model` file. */
  static async load(file: string): Promise<SentencePieceProcessor> {
    let bytes: Uint8Array;
    try {
      bytes = await readFile(file);
    } catch (error) {
      throw asStepVideoError(error, 'ERR_IO', 'cannot read SentencePiece model', { file });
    }
    return new SentencePieceProcessor(bytes, file);
  }

  get modelType(): 'unigram' | 'bpe' {
    return this.proto.trainerSpec.modelType === ModelType.Bpe ? 'bpe' : 'unigram';
  }

  /** Number of pieces (`get_piece_size`). */
  get vocabSize(): number {
    return this.tables.pieces.length;
  }

  get byteFallback(): boolean {
    return this.proto.trainerSpec.byteFallback;
  }

  /** The UNKNOWN piece's id. */
  get unkId(): number {
    return this.tables.unkId;
  }

  /** Id of the trainer's bos piece if it is a control symbol, else -1 (as `bos_id()`). */
  get bosId(): number {
    return this.controlIdOf(this.proto.trainerSpec.bosPiece);
  }

  get eosId(): number {
    return this.controlIdOf(this.proto.trainerSpec.eosPiece);
  }

  get padId(): number {
    return this.controlIdOf(this.proto.trainerSpec.padPiece);
  }

  /** `piece_to_id`: unknown pieces map to the unk id, as in SentencePiece. */
  pieceToId(piece: string): number {
    return this.reservedIds.get(piece) ?? this.vocabIds.get(piece) ?? this.tables.unkId;
  }

  /** Whether the vocabulary has this exact piece (of any type). */
  hasPiece(piece: string): boolean {
    return this.reservedIds.has(piece) || this.vocabIds.has(piece);
  }

  idToPiece(id: number): string {
    return this.entry(id).piece;
  }

  score(id: number): number {
    return this.entry(id).score;
  }

  /** The PieceType of an id. */
  pieceType(id: number): number {
    return this.entry(id).type;
  }

  isControl(id: number): boolean {
    return this.entry(id).type === PieceType.Control;
  }

  isUnknown(id: number): boolean {
    return this.entry(id).type === PieceType.Unknown;
  }

  isUnused(id: number): boolean {
    return this.entry(id).type === PieceType.Unused;
  }

  isByte(id: number): boolean {
    return this.entry(id).type === PieceType.Byte;
  }

  isUserDefined(id: number): boolean {
    return this.entry(id).type === PieceType.UserDefined;
  }

  /** The normalized form of a text (with '▁' for spaces), as the encoder sees it. */
  normalize(text: string): string {
    return decoder.decode(normalizeBytes(this.normalizer, encoder.encode(text)));
  }

  /** `encode_as_ids`. */
  encode(text: string): number[] {
    return this.encodeDetailed(text).map((p) => p.id);
  }

  /** `encode_as_pieces`. */
  encodeAsPieces(text: string): string[] {
    return this.encodeDetailed(text).map((p) => p.piece);
  }

  /** `decode_ids`: byte pieces are reassembled into characters, the dummy-prefix space dropped. */
  decode(ids: readonly number[]): string {
    const pieces = ids.map((id) => {
      if (!Number.isInteger(id) || id < 0 || id >= this.tables.pieces.length) {
        throw new StepVideoError('ERR_ARGUMENT', 'token id out of range', { expected: `an integer in [0, ${this.tables.pieces.length})`, got: id, ...(this.file !== undefined ? { file: this.file } : {}) });
      }
      // Decode re-derives the id from the piece string, so duplicates resolve as SentencePiece does.
      return this.pieceToId(this.tables.pieces[id]!.piece);
    });

    const out: number[] = [];
    const byteRun: number[] = [];
    const flushBytes = (): void => {
      const run = Uint8Array.from(byteRun);
      for (let offset = 0; offset < run.length; ) {
        const length = validCharLength(run, offset, run.length);
        if (length === 0) {
          out.push(...REPLACEMENT_CHAR);
          offset += 1;
        } else {
          for (let k = 0; k < length; k++) out.push(run[offset + k]!);
          offset += length;
        }
      }
      byteRun.length = 0;
    };

    const spec = this.proto.normalizerSpec;
    const stripsLeadingSpace = spec.addDummyPrefix || spec.removeExtraWhitespaces;
    let isBosWs = true; // still at the start, where one leading '▁' belongs to the dummy prefix
    let bosWsSeen = false;
    for (const id of pieces) {
      const entry = this.tables.pieces[id]!;
      if (entry.type === PieceType.Byte) {
        byteRun.push(pieceToByte(entry.piece));
        continue;
      }
      flushBytes();
      if (bosWsSeen || out.length > 0) isBosWs = false;
      bosWsSeen = false;
      if (entry.type === PieceType.Control) continue;
      if (entry.type === PieceType.Unknown) {
        out.push(...this.unkSurface);
        continue;
      }
      const bytes = entry.bytes;
      let k = 0;
      if (isBosWs && stripsLeadingSpace && startsWithSpaceSymbol(bytes, 0)) {
        k = 3;
        // With remove_extra_whitespaces every leading '▁' goes, so keep looking.
        bosWsSeen = !spec.removeExtraWhitespaces;
      }
      while (k < bytes.length) {
        if (startsWithSpaceSymbol(bytes, k)) {
          out.push(0x20);
          k += 3;
        } else {
          out.push(bytes[k++]!);
        }
      }
    }
    flushBytes();

    let text: Uint8Array = Uint8Array.from(out);
    if (this.denormalizer !== null) text = normalizeBytes(this.denormalizer, text);
    return decoder.decode(text);
  }

  /** Pieces with ids, after SentencePiece's unknown handling (PopulateSentencePieceText). */
  private encodeDetailed(text: string): Array<{ id: number; piece: string }> {
    if (typeof text !== 'string') {
      throw new StepVideoError('ERR_ARGUMENT', 'text to encode must be a string', { got: typeof text });
    }
    const normalized = normalizeBytes(this.normalizer, encoder.encode(text));
    const spans = this.modelType === 'bpe' ? encodeBpe(this.tables, normalized) : encodeUnigram(this.tables, normalized);
    const result: Array<{ id: number; piece: string }> = [];
    let prevUnk = false;
    for (const span of spans) {
      const isUnk = this.tables.pieces[span.id]!.type === PieceType.Unknown;
      const surface = normalized.subarray(span.start, span.end);
      if (isUnk && this.byteFallback) {
        // An unknown character becomes its UTF-8 bytes, one <0xXX> piece each.
        for (const byte of surface) {
          const piece = bytePiece(byte);
          result.push({ id: this.pieceToId(piece), piece });
        }
      } else if (isUnk && prevUnk) {
        // A run of unknown characters is one <unk>.
        const last = result[result.length - 1]!;
        last.piece += decoder.decode(surface);
      } else {
        result.push({ id: span.id, piece: decoder.decode(surface) });
      }
      prevUnk = isUnk;
    }
    return result;
  }

  private controlIdOf(piece: string): number {
    const id = this.pieceToId(piece);
    return this.isControl(id) ? id : -1;
  }

  private entry(id: number): SentencePieceEntry {
    const entry = Number.isInteger(id) ? this.tables.pieces[id] : undefined;
    if (entry === undefined) {
      throw new StepVideoError('ERR_ARGUMENT', 'token id out of range', { expected: `an integer in [0, ${this.tables.pieces.length})`, got: id, ...(this.file !== undefined ? { file: this.file } : {}) });
    }
    return entry;
  }
}

function startsWithSpaceSymbol(bytes: Uint8Array, at: number): boolean {
  return bytes[at] === 0xe2 && bytes[at + 1] === 0x96 && bytes[at + 2] === 0x81;
}
