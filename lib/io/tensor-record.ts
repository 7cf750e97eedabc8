// What the format readers produce: for each tensor, where its bytes lie in which file. The native
// loader reads those byte ranges straight into host or GPU memory, so model weights never pass
// through the JavaScript heap. Shared by the safetensors and torch readers, and the index they return.
import type { FileHandle } from 'node:fs/promises';
import type { DType } from '../dtype.js';
import { StepVideoError, asStepVideoError } from '../errors.js';

/** Element types as stored in weight files (safetensors spelling; torch storages map onto these). */
export type StorageDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const STORAGE_DTYPE_SIZE: Readonly<Record<StorageDType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export const STORAGE_DTYPES: readonly StorageDType[] = Object.keys(STORAGE_DTYPE_SIZE) as StorageDType[];

export function isStorageDType(value: unknown): value is StorageDType {
  return typeof value === 'string' && Object.hasOwn(STORAGE_DTYPE_SIZE, value);
}

const TO_DTYPE: Readonly<Partial<Record<StorageDType, DType>>> = {
  F32: 'f32',
  BF16: 'bf16',
  F16: 'f16',
  I32: 'i32',
  I64: 'i64',
  U8: 'u8',
};

const FROM_DTYPE: Readonly<Record<DType, StorageDType>> = {
  f32: 'F32',
  bf16: 'BF16',
  f16: 'F16',
  i32: 'I32',
  i64: 'I64',
  u8: 'U8',
};

/** The library dtype with the same bytes, or undefined when the library has none (F64, I16, I8, BOOL). */
export function toDType(storage: StorageDType): DType | undefined {
  return TO_DTYPE[storage];
}

export function toStorageDType(dtype: DType): StorageDType {
  return FROM_DTYPE[dtype];
}

/** One tensor's bytes in a file: row-major, little-endian, contiguous. */
export interface TensorRecord {
  readonly name: string;
  readonly dtype: StorageDType;
  readonly shape: number[];
  /** Absolute path of the file that holds the bytes. */
  readonly file: string;
  /** Absolute byte offset of the first element in `file`. */
  readonly offset: number;
  readonly byteLength: number;
}

/** Makes a frozen record, so that indexes and views can share records safely. */
export function makeRecord(record: TensorRecord): TensorRecord {
  return Object.freeze({ ...record, shape: Object.freeze([...record.shape]) as number[] });
}

export type WeightFormat = 'safetensors' | 'torch';

/** The tensors of one checkpoint (one file or a sharded set), by name. */
export interface WeightIndex extends Iterable<TensorRecord> {
  readonly format: WeightFormat;
  /** The path that was opened: a weights file, an index file. */
  readonly source: string;
  /** Absolute paths of the files that hold tensor bytes. */
  readonly files: readonly string[];
  /** Sum of all tensors' byte lengths. */
  readonly totalBytes: number;
  /** Number of tensors. */
  readonly size: number;
  /** String metadata from the file or index (empty when there is none). */
  readonly metadata: Readonly<Record<string, string>>;
  has(name: string): boolean;
  /** The record for `name`; throws ERR_WEIGHTS_MISSING when absent. */
  get(name: string): TensorRecord;
  /** The record for `name`, or undefined. */
  find(name: string): TensorRecord | undefined;
  /** Tensor names in storage order (file by file, by offset). */
  names(): string[];
}

export interface TensorIndexInit {
  format: WeightFormat;
  source: string;
  records: Iterable<TensorRecord>;
  /** Defaults to the distinct files of the records, in order. */
  files?: readonly string[];
  metadata?: Readonly<Record<string, string>>;
}

export class TensorIndex implements WeightIndex {
  readonly format: WeightFormat;
  readonly source: string;
  readonly files: readonly string[];
  readonly totalBytes: number;
  readonly metadata: Readonly<Record<string, string>>;
  readonly #records = new Map<string, TensorRecord>();

  constructor(init: TensorIndexInit) {
    this.format = init.format;
    this.source = init.source;
    let total = 0;
    const files: string[] = [];
    for (const record of init.records) {
      if (this.#records.has(record.name)) {
        throw new StepVideoError('ERR_WEIGHTS_FORMAT', 'tensor name appears twice', { file: record.file, tensor: record.name });
      }
      this.#records.set(record.name, Object.isFrozen(record) ? record : makeRecord(record));
      if (!files.includes(record.file)) files.push(record.file);
      total += record.byteLength;
    }
    this.files = Object.freeze([...(init.files ?? files)]);
    this.totalBytes = total;
    this.metadata = Object.freeze({ ...(init.metadata ?? {}) });
  }

  get size(): number {
    return this.#records.size;
  }

  has(name: string): boolean {
    return this.#records.has(name);
  }

  get(name: string): TensorRecord {
    const record = this.#records.get(name);
    if (record === undefined) {
      throw new StepVideoError('ERR_WEIGHTS_MISSING', 'tensor not found in checkpoint', { tensor: name, file: this.source });
    }
    return record;
  }

  find(name: string): TensorRecord | undefined {
    return this.#records.get(name);
  }

  names(): string[] {
    return [...this.#records.keys()];
  }

  [Symbol.iterator](): Iterator<TensorRecord> {
    return this.#records.values();
  }
}

// ---- file helpers shared by the readers ----

/**
 * Reads exactly `length` bytes at `position`. Callers check ranges against the file size first, so a
 * short read means the file changed underneath us or could not be read: ERR_IO.
 */
export async function readExactly(handle: FileHandle, position: number, length: number, file: string): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  await readInto(handle, buffer, position, file);
  return buffer;
}

/** Fills `target` from the file starting at `position` (ERR_IO on a short or failed read). */
export async function readInto(handle: FileHandle, target: Uint8Array, position: number, file: string): Promise<void> {
  // fs reads are capped below 2 GiB per call, so big targets go in chunks.
  const chunk = 1 << 30;
  let done = 0;
  while (done < target.length) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.read(target, done, Math.min(chunk, target.length - done), position + done));
    } catch (error) {
      throw asStepVideoError(error, 'ERR_IO', 'cannot read file', { file });
    }
    if (bytesRead === 0) {
      throw new StepVideoError('ERR_IO', 'file ended early (was it changed while being read?)', {
        file,
        expected: `${target.length} bytes at offset ${position}`,
        got: `${done} bytes`,
      });
    }
    done += bytesRead;
  }
}
