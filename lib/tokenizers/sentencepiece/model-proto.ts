// The `.model` file of SentencePiece: a serialized ModelProto (sentencepiece_model.proto), read
// with the protobuf wire rules (unknown fields skipped, closed enums, repeated messages merged).
import { ProtoReader, WireType, type ProtoTag } from '../protobuf.js';

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

const decoder = new TextDecoder('utf-8', { fatal: false });

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
