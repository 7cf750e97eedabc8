// safetensors: an 8-byte little-endian header length, a JSON header, then the raw tensor bytes.
// Readers here validate the header strictly and hand out byte ranges (TensorRecord); only the
// small-file convenience readSafetensors() copies tensor data into JavaScript memory.
import { randomBytes } from 'node:crypto';
import { type FileHandle, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type AnyTypedArray, type DType, DTYPE_SIZE, DTYPES, bf16ArrayToF32, f16BitsToF32, typedArrayFor } from '../dtype.js';
import { type ErrorDetails, StepVideoError, asStepVideoError } from '../errors.js';
import { checkedNumel } from '../shape.js';
import {
  STORAGE_DTYPES,
  STORAGE_DTYPE_SIZE,
  type TensorRecord,
  TensorIndex,
  type WeightIndex,
  isStorageDType,
  makeRecord,
  readExactly,
  readInto,
  toDType,
  toStorageDType,
} from './tensor-record.js';

/** The reference implementation caps headers near 100 MB too; a real header is a few hundred KiB. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;
/** An index lists names and shard files only; anything this big is not one. */
const MAX_INDEX_BYTES = 64 * 1024 * 1024;
/** readSafetensors() copies everything into memory: keep it to small files. */
const MAX_READ_BYTES = 2 * 1024 * 1024 * 1024;

/** Valid safetensors dtypes that this library cannot hold: a clear ERR_UNSUPPORTED rather than "malformed". */
const FOREIGN_DTYPES = new Set(['U16', 'U32', 'U64', 'C64', 'F8_E4M3', 'F8_E5M2', 'F8_E8M0', 'F6_E2M3', 'F6_E3M2', 'F4']);

const INDEX_SUFFIX = '.safetensors.index.json';

export interface SafetensorsHeader {
  /** Absolute path. */
  readonly file: string;
  readonly fileSize: number;
  /** Absolute offset of the byte buffer (8 + header length); tensor offsets are already absolute. */
  readonly dataOffset: number;
  /** Tensors in storage order (by offset). */
  readonly tensors: Map<string, TensorRecord>;
  readonly metadata: Record<string, string>;
}

function formatError(what: string, details: ErrorDetails): StepVideoError {
  return new StepVideoError('ERR_WEIGHTS_FORMAT', what, details);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function openForRead(file: string): Promise<FileHandle> {
  try {
    return await open(file, 'r');
  } catch (error) {
    throw asStepVideoError(error, 'ERR_IO', 'cannot open file', { file });
  }
}

async function fileSize(handle: FileHandle, file: string): Promise<number> {
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new StepVideoError('ERR_IO', 'not a regular file', { file });
    return info.size;
  } catch (error) {
    throw asStepVideoError(error, 'ERR_IO', 'cannot stat file', { file });
  }
}

/** Reads and validates the header of a .safetensors file (only the header bytes are read). */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  const absolute = path.resolve(file);
  const handle = await openForRead(absolute);
  try {
    return await readHeaderFrom(handle, absolute);
  } finally {
    await handle.close();
  }
}

async function readHeaderFrom(handle: FileHandle, file: string): Promise<SafetensorsHeader> {
  const size = await fileSize(handle, file);
  if (size < 8) {
    throw formatError('file too small to be safetensors', { file, expected: 'at least 8 bytes', got: `${size} bytes` });
  }
  const declared = (await readExactly(handle, 0, 8, file)).readBigUInt64LE(0);
  const limit = Math.min(MAX_HEADER_BYTES, size - 8);
  if (declared > BigInt(limit)) {
    throw formatError('safetensors header length out of range', {
      file,
      expected: `at most ${limit} bytes`,
      got: `${declared} bytes`,
    });
  }
  const headerLength = Number(declared);
  const bytes = await readExactly(handle, 8, headerLength, file);
  if (bytes[0] !== 0x7b) {
    throw formatError('safetensors header does not start with "{"', { file });
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw formatError('safetensors header is not valid UTF-8', { file });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw formatError('safetensors header is not valid JSON', { file, got: (error as Error).message });
  }
  return parseHeaderJson(json, file, size, 8 + headerLength);
}

function parseHeaderJson(json: unknown, file: string, size: number, dataOffset: number): SafetensorsHeader {
  if (!isPlainObject(json)) throw formatError('safetensors header is not a JSON object', { file });
  const dataSize = size - dataOffset;
  let metadata: Record<string, string> = {};
  const entries: { record: TensorRecord; begin: number }[] = [];

  for (const [name, value] of Object.entries(json)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(value, file);
      continue;
    }
    if (!isPlainObject(value)) throw formatError('header entry is not an object', { file, tensor: name });

    const dtype = value.dtype;
    if (typeof dtype === 'string' && FOREIGN_DTYPES.has(dtype)) {
      throw new StepVideoError('ERR_UNSUPPORTED', 'safetensors dtype not supported', {
        file,
        tensor: name,
        expected: STORAGE_DTYPES.join(', '),
        got: dtype,
      });
    }
    if (!isStorageDType(dtype)) {
      throw formatError('unknown dtype', { file, tensor: name, expected: STORAGE_DTYPES.join(', '), got: dtype });
    }

    const shape = value.shape;
    const count = Array.isArray(shape) ? checkedNumel(shape) : undefined;
    if (!Array.isArray(shape) || count === undefined) {
      throw formatError('invalid shape', { file, tensor: name, expected: 'an array of non-negative integers', got: shape });
    }

    const offsets = value.data_offsets;
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((x): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)
    ) {
      throw formatError('invalid data_offsets', { file, tensor: name, expected: '[begin, end] non-negative integers', got: offsets });
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end || end > dataSize) {
      throw formatError('data_offsets outside the data region', {
        file,
        tensor: name,
        expected: `0 <= begin <= end <= ${dataSize}`,
        got: [begin, end],
      });
    }
    const byteLength = end - begin;
    const expectedBytes = count * STORAGE_DTYPE_SIZE[dtype];
    if (byteLength !== expectedBytes) {
      throw formatError('byte length does not match shape and dtype', {
        file,
        tensor: name,
        expected: `${expectedBytes} bytes for ${dtype} [${shape.join(', ')}]`,
        got: `${byteLength} bytes`,
      });
    }
    const record = makeRecord({ name, dtype, shape: shape as number[], file, offset: dataOffset + begin, byteLength });
    entries.push({ record, begin });
  }

  // Storage order; ties (empty tensors) by name so that the order does not depend on the JSON.
  entries.sort((a, b) => a.begin - b.begin || a.record.byteLength - b.record.byteLength || compareNames(a.record.name, b.record.name));
  let previous: TensorRecord | undefined;
  for (const { record } of entries) {
    if (record.byteLength === 0) continue; // empty tensors own no bytes, they cannot overlap anything
    if (previous !== undefined && record.offset < previous.offset + previous.byteLength) {
      throw formatError('tensor data overlaps another tensor', {
        file,
        tensor: record.name,
        expected: `data starting at or after byte ${previous.offset + previous.byteLength - dataOffset} (end of '${previous.name}')`,
        got: record.offset - dataOffset,
      });
    }
    previous = record;
  }
  return { file, fileSize: size, dataOffset, tensors: new Map(entries.map(({ record }) => [record.name, record])), metadata };
}

function parseMetadata(value: unknown, file: string): Record<string, string> {
  if (!isPlainObject(value)) throw formatError('__metadata__ is not an object', { file });
  const metadata: Record<string, string> = {};
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== 'string') {
      throw formatError('__metadata__ must map strings to strings', { file, expected: `a string for key '${key}'`, got: item });
    }
    metadata[key] = item;
  }
  return metadata;
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---- checkpoints: one file, or an index over shards ----

export interface OpenCheckpointOptions {
  /** In a folder, which checkpoint to open: 'model' picks model.safetensors(.index.json). */
  basename?: string;
}

/**
 * Opens a safetensors checkpoint: a .safetensors file, a *.safetensors.index.json, or a folder
 * holding one of them (the index wins over single files; `basename` chooses among several).
 */
export async function openCheckpoint(pathOrDir: string, options: OpenCheckpointOptions = {}): Promise<WeightIndex> {
  const absolute = path.resolve(pathOrDir);
  let target = absolute;
  if (await isDirectory(absolute)) {
    const found = await findSafetensorsCheckpoint(absolute, options.basename);
    if (found === undefined) {
      const name = options.basename ?? '*';
      throw new StepVideoError('ERR_WEIGHTS_MISSING', 'no safetensors checkpoint in folder', {
        file: absolute,
        expected: `${name}.safetensors or ${name}${INDEX_SUFFIX}`,
      });
    }
    target = found;
  }
  if (target.endsWith('.json')) return openSafetensorsIndex(target);
  return indexFromHeader(await readSafetensorsHeader(target));
}

/** A single-file WeightIndex over a parsed header. */
export function indexFromHeader(header: SafetensorsHeader): WeightIndex {
  return new TensorIndex({
    format: 'safetensors',
    source: header.file,
    records: header.tensors.values(),
    files: [header.file],
    metadata: header.metadata,
  });
}

/** Throws ERR_IO when the path does not exist or cannot be inspected. */
export async function isDirectory(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isDirectory();
  } catch (error) {
    throw asStepVideoError(error, 'ERR_IO', 'cannot open path', { file });
  }
}

/**
 * The safetensors checkpoint in a folder (index first, then a single file), or undefined when
 * there is none. Several candidates without a `basename` to choose: ERR_ARGUMENT.
 */
export async function findSafetensorsCheckpoint(dir: string, basename?: string): Promise<string | undefined> {
  let names: string[];
  try {
    names = (await readdir(dir, { withFileTypes: true })).filter((entry) => !entry.isDirectory()).map((entry) => entry.name);
  } catch (error) {
    throw asStepVideoError(error, 'ERR_IO', 'cannot list folder', { file: dir });
  }
  if (basename !== undefined) {
    for (const candidate of [`${basename}${INDEX_SUFFIX}`, `${basename}.safetensors`]) {
      if (names.includes(candidate)) return path.join(dir, candidate);
    }
    return undefined;
  }
  for (const suffix of [INDEX_SUFFIX, '.safetensors']) {
    const matches = names.filter((name) => name.endsWith(suffix)).sort();
    if (matches.length === 1) return path.join(dir, matches[0]!);
    if (matches.length > 1) {
      throw new StepVideoError('ERR_ARGUMENT', 'several checkpoints in folder, pass a basename to choose', {
        file: dir,
        got: matches,
      });
    }
  }
  return undefined;
}

/** Opens a sharded checkpoint through its index (`{"weight_map": {name: shard file}}`). */
export async function openSafetensorsIndex(file: string): Promise<WeightIndex> {
  const indexFile = path.resolve(file);
  const dir = path.dirname(indexFile);
  const { weightMap, metadata } = await readIndexFile(indexFile);

  const mapped = weightMap.map(([name, shard]) => [name, resolveShard(dir, shard, indexFile, name)] as const);
  // Shards in order of first mention, each with the first tensor that names it (for messages).
  const shards = new Map<string, string>();
  for (const [name, shard] of mapped) if (!shards.has(shard)) shards.set(shard, name);

  const headers = new Map<string, SafetensorsHeader>();
  for (const [shard, firstTensor] of shards) {
    await requireShard(shard, firstTensor);
    headers.set(shard, await readSafetensorsHeader(shard));
  }

  const owner = new Map<string, string>();
  const records: TensorRecord[] = [];
  for (const [shard, header] of headers) {
    for (const record of header.tensors.values()) {
      const other = owner.get(record.name);
      if (other !== undefined) {
        throw formatError('tensor appears in two shards', {
          file: indexFile,
          tensor: record.name,
          expected: 'one shard',
          got: [other, shard],
        });
      }
      owner.set(record.name, shard);
      records.push(record);
    }
  }
  for (const [name, resolved] of mapped) {
    if (!headers.get(resolved)!.tensors.has(name)) {
      const elsewhere = owner.get(name);
      throw new StepVideoError('ERR_WEIGHTS_MISSING', 'tensor named by the index is absent from its shard', {
        file: resolved,
        tensor: name,
        ...(elsewhere !== undefined ? { got: `found in ${elsewhere}` } : {}),
      });
    }
  }
  // Tensors a shard holds beyond the index are kept: a model loader then reports them as unexpected.
  return new TensorIndex({ format: 'safetensors', source: indexFile, records, files: [...shards.keys()], metadata });
}

async function readIndexFile(indexFile: string): Promise<{ weightMap: [string, string][]; metadata: Record<string, string> }> {
  let bytes: Buffer;
  try {
    const info = await stat(indexFile);
    if (info.size > MAX_INDEX_BYTES) {
      throw formatError('index file too large', {
        file: indexFile,
        expected: `at most ${MAX_INDEX_BYTES} bytes`,
        got: `${info.size} bytes`,
      });
    }
    bytes = await readFile(indexFile);
  } catch (error) {
    throw asStepVideoError(error, 'ERR_IO', 'cannot read index file', { file: indexFile });
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (error) {
    throw formatError('index file is not valid UTF-8 JSON', { file: indexFile, got: (error as Error).message });
  }
  if (!isPlainObject(json) || !isPlainObject(json.weight_map)) {
    throw formatError('index file has no weight_map object', { file: indexFile });
  }
  const weightMap: [string, string][] = [];
  for (const [name, shard] of Object.entries(json.weight_map)) {
    if (typeof shard !== 'string' || shard === '') {
      throw formatError('weight_map entry is not a file name', { file: indexFile, tensor: name, got: shard });
    }
    weightMap.push([name, shard]);
  }
  // HF indexes carry {"total_size": N}; keep scalar values as strings, ignore anything nested.
  const metadata: Record<string, string> = {};
  if (isPlainObject(json.metadata)) {
    for (const [key, value] of Object.entries(json.metadata)) {
      if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') metadata[key] = String(value);
    }
  }
  return { weightMap, metadata };
}

/**
 * Resolves a shard name against the index's folder, refusing names that leave it. The check is
 * lexical on purpose: the Hugging Face cache links snapshot files to blobs elsewhere.
 */
function resolveShard(dir: string, shard: string, indexFile: string, tensor: string): string {
  const resolved = path.resolve(dir, shard);
  const relative = path.relative(dir, resolved);
  if (
    shard.includes('\0') ||
    path.isAbsolute(shard) ||
    relative === '' ||
    relative === '..' ||
    relative.startsWith(`..${path.sep}`) ||
    path.isAbsolute(relative)
  ) {
    throw formatError('shard path escapes the checkpoint folder', { file: indexFile, tensor, got: shard });
  }
  return resolved;
}

async function requireShard(shard: string, tensor: string): Promise<void> {
  try {
    await stat(shard);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new StepVideoError('ERR_WEIGHTS_MISSING', 'shard named by the index is missing', { file: shard, tensor, cause: error });
    }
    throw asStepVideoError(error, 'ERR_IO', 'cannot open shard', { file: shard, tensor });
  }
}

// ---- whole-file convenience: small inputs, test cases ----

export interface HostTensor {
  dtype: DType;
  shape: number[];
  /** Raw elements; bf16 and f16 as Uint16Array bit patterns, i64 as BigInt64Array. */
  data: AnyTypedArray;
}

function requireLittleEndianHost(): void {
  if (os.endianness() !== 'LE') {
    throw new StepVideoError('ERR_UNSUPPORTED', 'weights I/O needs a little-endian host', { got: os.endianness() });
  }
}

/**
 * Reads every tensor of a (small) safetensors file into freshly allocated, aligned typed arrays.
 * Model weights go through openCheckpoint() and the native loader instead.
 */
/** A floating-point host tensor's values as f32 (F32 as is, BF16 and F16 widened); undefined for other dtypes. */
export function hostTensorToF32(tensor: HostTensor): Float32Array | undefined {
  switch (tensor.dtype) {
    case 'f32':
      return tensor.data as Float32Array;
    case 'bf16':
      return bf16ArrayToF32(tensor.data as Uint16Array);
    case 'f16':
      return Float32Array.from(tensor.data as Uint16Array, f16BitsToF32);
    default:
      return undefined;
  }
}

export async function readSafetensors(file: string): Promise<Map<string, HostTensor>> {
  requireLittleEndianHost();
  const absolute = path.resolve(file);
  const handle = await openForRead(absolute);
  try {
    const header = await readHeaderFrom(handle, absolute);
    let total = 0;
    for (const record of header.tensors.values()) {
      if (toDType(record.dtype) === undefined) {
        throw new StepVideoError('ERR_DTYPE', 'tensor dtype not supported by this library', {
          file: absolute,
          tensor: record.name,
          expected: DTYPES.map(toStorageDType).join(', '),
          got: record.dtype,
        });
      }
      total += record.byteLength;
    }
    if (total > MAX_READ_BYTES) {
      throw new StepVideoError('ERR_UNSUPPORTED', 'file too large to read into memory, open it with openCheckpoint()', {
        file: absolute,
        expected: `at most ${MAX_READ_BYTES} bytes of tensors`,
        got: `${total} bytes`,
      });
    }
    const result = new Map<string, HostTensor>();
    for (const record of header.tensors.values()) {
      const dtype = toDType(record.dtype)!;
      // A fresh buffer per tensor: file offsets need not be aligned to the element size.
      const buffer = new ArrayBuffer(record.byteLength);
      await readInto(handle, new Uint8Array(buffer), record.offset, absolute);
      result.set(record.name, { dtype, shape: [...record.shape], data: typedArrayFor(dtype, buffer) });
    }
    return result;
  } finally {
    await handle.close();
  }
}

export interface TensorData {
  dtype: DType;
  shape: readonly number[];
  /** Raw little-endian elements; only the byte length is checked against dtype and shape. */
  data: ArrayBufferView;
}

/**
 * Writes a safetensors file: tensors in sorted-name order, header padded with spaces to a multiple
 * of 8 bytes. The file is written beside the target under a temporary name and renamed into place,
 * so a failed write leaves neither a partial file nor the temporary one.
 */
export async function writeSafetensors(
  file: string,
  tensors: Readonly<Record<string, TensorData>> | ReadonlyMap<string, TensorData>,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  requireLittleEndianHost();
  const target = path.resolve(file);
  const entries = (tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors)) as [string, TensorData][];
  entries.sort(([a], [b]) => compareNames(a, b));

  const headerParts: string[] = [];
  if (metadata !== undefined) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string') {
        throw new StepVideoError('ERR_ARGUMENT', 'metadata values must be strings', {
          file: target,
          expected: `a string for key '${key}'`,
          got: value,
        });
      }
    }
    headerParts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  }
  const payload: Uint8Array[] = [];
  let offset = 0;
  for (const [name, tensor] of entries) {
    if (name === '__metadata__') {
      throw new StepVideoError('ERR_ARGUMENT', "'__metadata__' is reserved, not a tensor name", { file: target });
    }
    if (!DTYPES.includes(tensor.dtype)) {
      throw new StepVideoError('ERR_ARGUMENT', 'unknown dtype', {
        file: target,
        tensor: name,
        expected: DTYPES.join(', '),
        got: tensor.dtype,
      });
    }
    const count = Array.isArray(tensor.shape) ? checkedNumel(tensor.shape) : undefined;
    if (count === undefined) {
      throw new StepVideoError('ERR_ARGUMENT', 'invalid shape', {
        file: target,
        tensor: name,
        expected: 'an array of non-negative integers',
        got: tensor.shape,
      });
    }
    const byteLength = count * DTYPE_SIZE[tensor.dtype];
    if (!ArrayBuffer.isView(tensor.data) || tensor.data.byteLength !== byteLength) {
      throw new StepVideoError('ERR_SHAPE', 'data length does not match shape and dtype', {
        file: target,
        tensor: name,
        expected: `${byteLength} bytes for ${tensor.dtype} [${tensor.shape.join(', ')}]`,
        got: ArrayBuffer.isView(tensor.data) ? `${tensor.data.byteLength} bytes` : typeof tensor.data,
      });
    }
    const entry = { dtype: toStorageDType(tensor.dtype), shape: [...tensor.shape], data_offsets: [offset, offset + byteLength] };
    headerParts.push(`${JSON.stringify(name)}:${JSON.stringify(entry)}`);
    payload.push(new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength));
    offset += byteLength;
  }

  const json = Buffer.from(`{${headerParts.join(',')}}`, 'utf8');
  const header = Buffer.alloc(8 + Math.ceil(json.length / 8) * 8, 0x20);
  header.writeBigUInt64LE(BigInt(header.length - 8), 0);
  json.copy(header, 8);

  const temp = `${target}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  let handle: FileHandle | undefined;
  try {
    handle = await open(temp, 'wx');
    let position = await writeAll(handle, header, 0);
    for (const bytes of payload) position = await writeAll(handle, bytes, position);
    await handle.sync(); // the data must be on disk before the rename makes it visible
    await handle.close();
    handle = undefined;
    await rename(temp, target);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw asStepVideoError(error, 'ERR_IO', 'cannot write safetensors file', { file: target });
  }
}

async function writeAll(handle: FileHandle, bytes: Uint8Array, position: number): Promise<number> {
  const chunk = 1 << 30;
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, Math.min(chunk, bytes.length - done), position + done);
    if (bytesWritten <= 0) throw new Error('write made no progress');
    done += bytesWritten;
  }
  return position + done;
}
