// SentencePiece in pure TypeScript: loads a `.model` file (a serialized ModelProto) and encodes and
// decodes exactly as the C++ library (and so the Python `sentencepiece` package) does. All work is
// done on UTF-8 bytes, like the original, so positions, lengths and tie-breaks agree byte for byte:
//   normalize (precompiled charsmap + whitespace rules) -> unigram Viterbi or BPE merges ->
//   unknown handling (merge runs of <unk>, or byte fallback) -> ids.
// This file is the processor; its parts are in sentencepiece/: model-proto.ts (the .model file),
// normalizer.ts, unigram.ts and bpe.ts (the two algorithms), bytes.ts and vocab.ts (what they share).
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { StepVideoError, asStepVideoError } from '../errors.js';
import { encodeBpe } from './sentencepiece/bpe.js';
import { type ByteTrie, REPLACEMENT_CHAR, bytePiece, newTrie, pieceToByte, trieGet, trieInsert, validCharLength } from './sentencepiece/bytes.js';
import { type ModelProto, ModelType, PieceType, type SentencePieceEntry, parseModelProto } from './sentencepiece/model-proto.js';
import { type Normalizer, compileNormalizer, normalizeBytes, tokenizerError } from './sentencepiece/normalizer.js';
import { encodeUnigram } from './sentencepiece/unigram.js';
import type { ModelTables } from './sentencepiece/vocab.js';

export {
  ModelType,
  type ModelProto,
  type NormalizerSpec,
  PieceType,
  type SentencePieceEntry,
  type TrainerSpec,
  parseModelProto,
} from './sentencepiece/model-proto.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: false });
const DEFAULT_UNK_SURFACE = ' \u2047 ';

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
