// A minimal reader for the protobuf wire format: enough to walk a SentencePiece ModelProto without a
// schema compiler. Every read is bounds-checked; anything truncated or structurally impossible
// raises ERR_TOKENIZER naming the file, so a corrupt model can never crash or hang the caller.
import { StepVideoError } from '../errors.js';

/** Protobuf wire types. 3 and 4 (groups) are deprecated but still skippable. */
export const WireType = {
  Varint: 0,
  Fixed64: 1,
  LengthDelimited: 2,
  StartGroup: 3,
  EndGroup: 4,
  Fixed32: 5,
} as const;

export interface ProtoTag {
  field: number;
  wireType: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

export class ProtoReader {
  private pos: number;
  private readonly end: number;
  private readonly view: DataView;

  /**
   * Reads `bytes[start, end)`. `file` only labels errors. Sub-messages share the same buffer, so
   * reading a nested message copies nothing.
   */
  constructor(
    readonly bytes: Uint8Array,
    readonly file?: string,
    start = 0,
    end = bytes.length,
  ) {
    if (start < 0 || end > bytes.length || start > end) {
      throw new StepVideoError('ERR_INTERNAL', `ProtoReader range [${start}, ${end}) outside a buffer of ${bytes.length} bytes`);
    }
    this.pos = start;
    this.end = end;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Byte offset of the next read, relative to the whole buffer. */
  get position(): number {
    return this.pos;
  }

  /** True once the whole range has been consumed. */
  get done(): boolean {
    return this.pos >= this.end;
  }

  /** Reads a field key. Field number 0 and wire types 6/7 do not exist, so they mean corruption. */
  readTag(): ProtoTag {
    const at = this.pos;
    const { lo, hi } = this.readVarintParts();
    // A key is a uint32: field numbers stop at 2^29 - 1.
    if (hi !== 0) this.fail('field key does not fit in 32 bits', at);
    const field = lo >>> 3;
    const wireType = lo & 7;
    if (field === 0) this.fail('field number 0', at);
    if (wireType > 5) this.fail(`invalid wire type ${wireType}`, at);
    return { field, wireType };
  }

  /** uint32 / enum values that are never negative. */
  readUint32(): number {
    return this.readVarintParts().lo >>> 0;
  }

  /** int32 and enum fields: negative values arrive as 10-byte sign-extended varints; keep the low 32 bits. */
  readInt32(): number {
    return this.readVarintParts().lo | 0;
  }

  /** int64/uint64 fields, as a bigint (signed when `signed`). */
  readVarint64(signed = false): bigint {
    const { lo, hi } = this.readVarintParts();
    const value = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
    return signed ? BigInt.asIntN(64, value) : value;
  }

  readBool(): boolean {
    const { lo, hi } = this.readVarintParts();
    return lo !== 0 || hi !== 0;
  }

  readFixed32(): number {
    this.need(4);
    const value = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return value;
  }

  readFloat(): number {
    this.need(4);
    const value = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return value;
  }

  readFixed64(): bigint {
    this.need(8);
    const value = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return value;
  }

  readDouble(): number {
    this.need(8);
    const value = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return value;
  }

  /** A length-delimited field's payload, as a view into the buffer (no copy). */
  readBytes(): Uint8Array {
    const { start, end } = this.readLengthDelimited();
    return this.bytes.subarray(start, end);
  }

  /** A string field. proto2 does not validate UTF-8, so neither do we: bad bytes become U+FFFD. */
  readString(): string {
    return utf8.decode(this.readBytes());
  }

  /** A nested message, as a reader over its bytes. */
  readMessage(): ProtoReader {
    const { start, end } = this.readLengthDelimited();
    return new ProtoReader(this.bytes, this.file, start, end);
  }

  /** Skips the value of a field whose tag was just read. */
  skip(tag: ProtoTag): void {
    switch (tag.wireType) {
      case WireType.Varint:
        this.readVarintParts();
        return;
      case WireType.Fixed64:
        this.need(8);
        this.pos += 8;
        return;
      case WireType.LengthDelimited:
        this.readLengthDelimited();
        return;
      case WireType.Fixed32:
        this.need(4);
        this.pos += 4;
        return;
      case WireType.StartGroup:
        this.skipGroup(tag.field);
        return;
      case WireType.EndGroup:
        this.fail(`unexpected end of group ${tag.field}`);
      // falls through: fail() never returns
      default:
        this.fail(`invalid wire type ${tag.wireType}`);
    }
  }

  /** Throws ERR_TOKENIZER with the current position and the file name. */
  fail(what: string, at = this.pos): never {
    throw new StepVideoError('ERR_TOKENIZER', `malformed protobuf: ${what} at byte ${at}`, this.file !== undefined ? { file: this.file } : {});
  }

  // Groups nest; walk them with an explicit stack so hostile input cannot exhaust the call stack.
  private skipGroup(field: number): void {
    const open: number[] = [field];
    while (open.length > 0) {
      if (this.done) this.fail(`unterminated group ${open[open.length - 1]}`);
      const tag = this.readTag();
      if (tag.wireType === WireType.StartGroup) {
        open.push(tag.field);
      } else if (tag.wireType === WireType.EndGroup) {
        if (open.pop() !== tag.field) this.fail(`end of group ${tag.field} does not match its start`);
      } else {
        this.skip(tag);
      }
    }
  }

  private readLengthDelimited(): { start: number; end: number } {
    const at = this.pos;
    const { lo, hi } = this.readVarintParts();
    const length = lo >>> 0;
    if (hi !== 0 || length > this.end - this.pos) {
      this.fail(`length ${hi !== 0 ? 'over 2^32' : length} runs past the end (${this.end - this.pos} bytes left)`, at);
    }
    const start = this.pos;
    this.pos += length;
    return { start, end: this.pos };
  }

  // A varint is at most 10 bytes; the low 32 bits and the next 32 are kept apart so no precision
  // is lost on 64-bit values.
  private readVarintParts(): { lo: number; hi: number } {
    const at = this.pos;
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail('truncated varint', at);
      const byte = this.bytes[this.pos++]!;
      const bits = byte & 0x7f;
      if (i < 4) {
        lo |= bits << (7 * i);
      } else if (i === 4) {
        lo |= bits << 28; // low 4 bits land in lo, the other 3 in hi
        hi |= bits >>> 4;
      } else {
        hi |= bits << (7 * i - 32);
      }
      if (byte < 0x80) return { lo: lo >>> 0, hi: hi >>> 0 };
    }
    this.fail('varint longer than 10 bytes', at);
  }

  private need(count: number): void {
    if (this.end - this.pos < count) this.fail(`truncated: need ${count} bytes, ${this.end - this.pos} left`);
  }
}
