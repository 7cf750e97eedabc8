// A minimal ZIP reader for torch.save checkpoints. It reads the central directory (ZIP64 included)
// and tells where each entry's bytes start in the file, so that stored (uncompressed) entries can be
// read in place by the native loader. Only small entries (the pickle) are ever read into memory.
// Every offset and length read from the file is checked against the file before it is used.
import { type FileHandle, open } from 'node:fs/promises';
import path from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { StepVideoError, asStepVideoError } from '../errors.js';
import { readExactly } from './tensor-record.js';

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;

const EOCD_SIZE = 22;
const EOCD64_SIZE = 56;
const LOCATOR_SIZE = 20;
const CENTRAL_SIZE = 46;
const LOCAL_SIZE = 30;
const MAX_COMMENT = 0xffff;
/** A central directory costs ~100 bytes per entry; torch checkpoints hold one entry per storage. */
const MAX_DIRECTORY_BYTES = 256 * 1024 * 1024;

export const ZIP_STORED = 0;
export const ZIP_DEFLATED = 8;

export interface ZipEntry {
  readonly name: string;
  /** Compression method: 0 stored, 8 deflated (others are listed but cannot be read). */
  readonly method: number;
  readonly flags: number;
  readonly crc32: number;
  readonly compressedSize: number;
  readonly uncompressedSize: number;
  readonly localHeaderOffset: number;
  /** Absolute offset of the entry's (compressed) bytes, past the local header's name and extra field. */
  readonly dataOffset: number;
}

function formatError(what: string, file: string, details: { expected?: unknown; got?: unknown } = {}): StepVideoError {
  return new StepVideoError('ERR_WEIGHTS_FORMAT', what, { file, ...details });
}

/** A u64 field as a number; values past 2^53 cannot describe a real file. */
function readU64(buffer: Buffer, offset: number, file: string, field: string): number {
  const value = buffer.readBigUInt64LE(offset);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw formatError(`zip ${field} out of range`, file, { got: value.toString() });
  return Number(value);
}

interface DirectoryLocation {
  offset: number;
  size: number;
  entries: number;
  /** Where the directory must end: the ZIP64 record or the end record, whichever comes first. */
  limit: number;
}

async function locateDirectory(handle: FileHandle, file: string, size: number): Promise<DirectoryLocation> {
  if (size < EOCD_SIZE) {
    throw formatError('file too small to be a zip archive', file, { expected: `at least ${EOCD_SIZE} bytes`, got: `${size} bytes` });
  }

  // The end record sits at the very end, followed only by its comment (at most 64 KiB).
  const tailLength = Math.min(size, MAX_COMMENT + EOCD_SIZE);
  const tailStart = size - tailLength;
  const tail = await readExactly(handle, tailStart, tailLength, file);
  let at = -1;
  for (let i = tailLength - EOCD_SIZE; i >= 0; i--) {
    if (tail.readUInt32LE(i) === SIG_EOCD && i + EOCD_SIZE + tail.readUInt16LE(i + 20) === tailLength) {
      at = i;
      break;
    }
  }
  if (at < 0) throw formatError('no zip end-of-central-directory record', file);
  const eocdOffset = tailStart + at;

  let disk = tail.readUInt16LE(at + 4);
  let directoryDisk = tail.readUInt16LE(at + 6);
  let diskEntries = tail.readUInt16LE(at + 8);
  let entries = tail.readUInt16LE(at + 10);
  let directorySize = tail.readUInt32LE(at + 12);
  let directoryOffset = tail.readUInt32LE(at + 16);
  let limit = eocdOffset;

  // ZIP64: a locator right before the end record points at the 64-bit end record (torch always writes one).
  if (eocdOffset >= LOCATOR_SIZE) {
    const locatorOffset = eocdOffset - LOCATOR_SIZE;
    const locator = await readExactly(handle, locatorOffset, LOCATOR_SIZE, file);
    if (locator.readUInt32LE(0) === SIG_EOCD64_LOCATOR) {
      const recordOffset = readU64(locator, 8, file, 'ZIP64 record offset');
      if (locator.readUInt32LE(4) !== 0 || locator.readUInt32LE(16) > 1) {
        throw new StepVideoError('ERR_UNSUPPORTED', 'multi-disk zip archives are not supported', { file });
      }
      if (recordOffset + EOCD64_SIZE > locatorOffset) {
        throw formatError('ZIP64 end record out of range', file, { expected: `at most ${locatorOffset - EOCD64_SIZE}`, got: recordOffset });
      }
      const record = await readExactly(handle, recordOffset, EOCD64_SIZE, file);
      if (record.readUInt32LE(0) !== SIG_EOCD64) throw formatError('bad ZIP64 end record signature', file);
      const recordSize = readU64(record, 4, file, 'ZIP64 record size');
      if (recordSize < EOCD64_SIZE - 12 || recordOffset + 12 + recordSize > locatorOffset) {
        throw formatError('ZIP64 end record size out of range', file, { got: recordSize });
      }
      disk = record.readUInt32LE(16);
      directoryDisk = record.readUInt32LE(20);
      diskEntries = readU64(record, 24, file, 'entry count');
      entries = readU64(record, 32, file, 'entry count');
      directorySize = readU64(record, 40, file, 'central directory size');
      directoryOffset = readU64(record, 48, file, 'central directory offset');
      limit = recordOffset;
    }
  }

  if (disk !== 0 || directoryDisk !== 0 || diskEntries !== entries) {
    throw new StepVideoError('ERR_UNSUPPORTED', 'multi-disk zip archives are not supported', { file });
  }
  if (directoryOffset + directorySize > limit) {
    throw formatError('zip central directory out of range', file, {
      expected: `to end by byte ${limit}`,
      got: `${directorySize} bytes at ${directoryOffset}`,
    });
  }
  if (directorySize > MAX_DIRECTORY_BYTES || entries * CENTRAL_SIZE > directorySize) {
    throw formatError('zip central directory size does not fit its entry count', file, {
      got: `${entries} entries in ${directorySize} bytes`,
    });
  }
  return { offset: directoryOffset, size: directorySize, entries, limit };
}

interface CentralEntry {
  name: string;
  nameBytes: Buffer;
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
}

function parseCentralDirectory(directory: Buffer, count: number, file: string): CentralEntry[] {
  const result: CentralEntry[] = [];
  let pos = 0;
  for (let index = 0; index < count; index++) {
    if (pos + CENTRAL_SIZE > directory.length || directory.readUInt32LE(pos) !== SIG_CENTRAL) {
      throw formatError(`bad zip central directory entry #${index}`, file);
    }
    const flags = directory.readUInt16LE(pos + 8);
    const method = directory.readUInt16LE(pos + 10);
    const crc32 = directory.readUInt32LE(pos + 16);
    let compressedSize = directory.readUInt32LE(pos + 20);
    let uncompressedSize = directory.readUInt32LE(pos + 24);
    const nameLength = directory.readUInt16LE(pos + 28);
    const extraLength = directory.readUInt16LE(pos + 30);
    const commentLength = directory.readUInt16LE(pos + 32);
    let diskStart = directory.readUInt16LE(pos + 34);
    let localHeaderOffset = directory.readUInt32LE(pos + 42);
    const nameStart = pos + CENTRAL_SIZE;
    const extraStart = nameStart + nameLength;
    const next = extraStart + extraLength + commentLength;
    if (next > directory.length) throw formatError(`zip central directory entry #${index} runs past the directory`, file);
    const nameBytes = directory.subarray(nameStart, extraStart);
    const name = nameBytes.toString('utf8');

    // ZIP64 extra field (id 1): 64-bit values, present only for the fields saturated above, in this order.
    const needs = [uncompressedSize === 0xffffffff, compressedSize === 0xffffffff, localHeaderOffset === 0xffffffff, diskStart === 0xffff];
    if (needs.some(Boolean)) {
      const values = readZip64Extra(directory.subarray(extraStart, extraStart + extraLength), needs, file, name);
      if (needs[0]) uncompressedSize = values.shift()!;
      if (needs[1]) compressedSize = values.shift()!;
      if (needs[2]) localHeaderOffset = values.shift()!;
      if (needs[3]) diskStart = values.shift()!;
    }
    if (diskStart !== 0) throw new StepVideoError('ERR_UNSUPPORTED', 'multi-disk zip archives are not supported', { file });
    if ((flags & 0x1) !== 0) throw new StepVideoError('ERR_UNSUPPORTED', `zip entry '${name}' is encrypted`, { file });
    result.push({ name, nameBytes, method, flags, crc32, compressedSize, uncompressedSize, localHeaderOffset });
    pos = next;
  }
  return result;
}

function readZip64Extra(extra: Buffer, needs: boolean[], file: string, name: string): number[] {
  let pos = 0;
  while (pos + 4 <= extra.length) {
    const id = extra.readUInt16LE(pos);
    const length = extra.readUInt16LE(pos + 2);
    const body = pos + 4;
    if (body + length > extra.length) break;
    if (id === 0x0001) {
      const values: number[] = [];
      let at = body;
      for (let field = 0; field < needs.length; field++) {
        if (!needs[field]) continue;
        const width = field === 3 ? 4 : 8; // the disk number is 4 bytes, the rest 8
        if (at + width > body + length) break;
        values.push(width === 8 ? readU64(extra, at, file, `ZIP64 field of '${name}'`) : extra.readUInt32LE(at));
        at += width;
      }
      if (values.length === needs.filter(Boolean).length) return values;
      break;
    }
    pos = body + length;
  }
  throw formatError(`zip entry '${name}' lacks its ZIP64 extra field`, file);
}

/** Reads the directory of a zip archive open in `handle`, checking every entry's data lies in the file. */
export async function readZipDirectory(handle: FileHandle, file: string, size: number): Promise<Map<string, ZipEntry>> {
  const location = await locateDirectory(handle, file, size);
  const directory = await readExactly(handle, location.offset, location.size, file);
  const central = parseCentralDirectory(directory, location.entries, file);

  const entries = new Map<string, ZipEntry>();
  for (const entry of central) {
    if (entries.has(entry.name)) throw formatError(`zip entry '${entry.name}' appears twice`, file);
    // Entry data lies between the start of the file and the central directory.
    const localEnd = entry.localHeaderOffset + LOCAL_SIZE + entry.nameBytes.length;
    if (localEnd > location.offset) {
      throw formatError(`zip local header of '${entry.name}' out of range`, file, { got: entry.localHeaderOffset });
    }
    const local = await readExactly(handle, entry.localHeaderOffset, LOCAL_SIZE + entry.nameBytes.length, file);
    // Sizes and CRC in the local header may be zero (general-purpose flag 3, as torch writes), so
    // they come from the central directory; the name and method must agree.
    if (
      local.readUInt32LE(0) !== SIG_LOCAL ||
      local.readUInt16LE(8) !== entry.method ||
      local.readUInt16LE(26) !== entry.nameBytes.length ||
      !local.subarray(LOCAL_SIZE).equals(entry.nameBytes)
    ) {
      throw formatError(`zip local header of '${entry.name}' does not match the central directory`, file);
    }
    const dataOffset = localEnd + local.readUInt16LE(28);
    if (dataOffset + entry.compressedSize > location.offset) {
      throw formatError(`zip entry '${entry.name}' data out of range`, file, {
        expected: `to end by byte ${location.offset}`,
        got: `${entry.compressedSize} bytes at ${dataOffset}`,
      });
    }
    if (entry.method === ZIP_STORED && entry.compressedSize !== entry.uncompressedSize) {
      throw formatError(`stored zip entry '${entry.name}' has differing sizes`, file, {
        expected: entry.uncompressedSize,
        got: entry.compressedSize,
      });
    }
    entries.set(entry.name, {
      name: entry.name,
      method: entry.method,
      flags: entry.flags,
      crc32: entry.crc32,
      compressedSize: entry.compressedSize,
      uncompressedSize: entry.uncompressedSize,
      localHeaderOffset: entry.localHeaderOffset,
      dataOffset,
    });
  }
  return entries;
}

/** An open zip archive. Close it when done. */
export class ZipArchive {
  readonly file: string;
  readonly size: number;
  readonly entries: ReadonlyMap<string, ZipEntry>;
  readonly #handle: FileHandle;

  private constructor(file: string, size: number, entries: ReadonlyMap<string, ZipEntry>, handle: FileHandle) {
    this.file = file;
    this.size = size;
    this.entries = entries;
    this.#handle = handle;
  }

  static async open(file: string): Promise<ZipArchive> {
    const absolute = path.resolve(file);
    let handle: FileHandle;
    try {
      handle = await open(absolute, 'r');
    } catch (error) {
      throw asStepVideoError(error, 'ERR_IO', 'cannot open file', { file: absolute });
    }
    try {
      let size: number;
      try {
        const info = await handle.stat();
        if (!info.isFile()) throw new StepVideoError('ERR_IO', 'not a regular file', { file: absolute });
        size = info.size;
      } catch (error) {
        throw asStepVideoError(error, 'ERR_IO', 'cannot stat file', { file: absolute });
      }
      return new ZipArchive(absolute, size, await readZipDirectory(handle, absolute, size), handle);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  get(name: string): ZipEntry | undefined {
    return this.entries.get(name);
  }

  /**
   * Reads an entry into memory (inflating a deflated one) and checks its CRC. Meant for small
   * entries; anything larger than `maxBytes` is refused.
   */
  async read(entry: ZipEntry, maxBytes: number): Promise<Buffer> {
    if (entry.uncompressedSize > maxBytes) {
      throw formatError(`zip entry '${entry.name}' too large to read into memory`, this.file, {
        expected: `at most ${maxBytes} bytes`,
        got: `${entry.uncompressedSize} bytes`,
      });
    }
    const raw = await readExactly(this.#handle, entry.dataOffset, entry.compressedSize, this.file);
    let bytes: Buffer;
    if (entry.method === ZIP_STORED) {
      bytes = raw;
    } else if (entry.method === ZIP_DEFLATED) {
      try {
        // The output cap makes a lying size (or a zip bomb) fail instead of allocating without bound.
        bytes = inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.uncompressedSize) });
      } catch (error) {
        throw formatError(`zip entry '${entry.name}' does not inflate`, this.file, { got: (error as Error).message });
      }
      if (bytes.length !== entry.uncompressedSize) {
        throw formatError(`zip entry '${entry.name}' inflates to the wrong size`, this.file, {
          expected: entry.uncompressedSize,
          got: bytes.length,
        });
      }
    } else {
      throw new StepVideoError('ERR_UNSUPPORTED', `zip entry '${entry.name}' uses an unsupported compression method`, {
        file: this.file,
        expected: 'stored (0) or deflated (8)',
        got: entry.method,
      });
    }
    const crc = crc32(bytes);
    if (crc !== entry.crc32) {
      throw formatError(`zip entry '${entry.name}' fails its CRC check`, this.file, {
        expected: entry.crc32.toString(16),
        got: crc.toString(16),
      });
    }
    return bytes;
  }

  async close(): Promise<void> {
    await this.#handle.close();
  }
}

let crcTable: Uint32Array | undefined;

/** CRC-32 (IEEE, as zip uses). */
export function crc32(bytes: Uint8Array): number {
  if (crcTable === undefined) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = crcTable[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
