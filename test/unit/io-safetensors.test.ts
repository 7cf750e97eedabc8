import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DType, f32ArrayToBf16 } from '../../lib/dtype.js';
import { type ErrorCode, StepVideoError } from '../../lib/errors.js';
import { detectWeightsFile, openWeights, renameKeys, stripPrefix } from '../../lib/io/index.js';
import {
  type TensorData,
  openCheckpoint,
  readSafetensors,
  readSafetensorsHeader,
  writeSafetensors,
} from '../../lib/io/safetensors.js';
import { toDType } from '../../lib/io/tensor-record.js';
import { numel } from '../../lib/shape.js';
import { requireGolden, tinyModelDir } from '../helpers/golden.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'stepvideo-io-st-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs `action` and returns the StepVideoError it throws, failing if it throws anything else or nothing. */
async function failure(action: () => Promise<unknown>, code: ErrorCode): Promise<StepVideoError> {
  try {
    await action();
  } catch (error) {
    expect(error).toBeInstanceOf(StepVideoError);
    expect((error as StepVideoError).code, (error as Error).message).toBe(code);
    return error as StepVideoError;
  }
  expect.unreachable(`expected ${code}`);
  throw new Error('unreachable');
}

/** Writes a safetensors file by hand: `header` as JSON (or raw text), then `data` bytes. */
async function rawFile(name: string, header: unknown, data: number | Uint8Array = 0, lengthOverride?: bigint): Promise<string> {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(lengthOverride ?? BigInt(json.length));
  const body = typeof data === 'number' ? Buffer.alloc(data) : Buffer.from(data);
  const file = path.join(dir, name);
  await writeFile(file, Buffer.concat([prefix, json, body]));
  return file;
}

function sampleTensors(): Record<string, TensorData> {
  return {
    'z.f32': { dtype: 'f32', shape: [2, 3], data: new Float32Array([1, -2, 3.5, 0, Infinity, -0]) },
    'a.bf16': { dtype: 'bf16', shape: [3], data: f32ArrayToBf16([1, -0.5, 3.140625]) },
    'm.f16': { dtype: 'f16', shape: [2], data: new Uint16Array([0x3c00, 0xc000]) },
    'i32': { dtype: 'i32', shape: [1, 2], data: new Int32Array([-7, 2 ** 31 - 1]) },
    'i64': { dtype: 'i64', shape: [2], data: new BigInt64Array([-(2n ** 62n), 2n ** 63n - 1n]) },
    'u8': { dtype: 'u8', shape: [5], data: new Uint8Array([0, 1, 2, 254, 255]) },
    'scalar': { dtype: 'f32', shape: [], data: new Float32Array([42]) },
    'empty': { dtype: 'i64', shape: [0, 4], data: new BigInt64Array(0) },
  };
}

function bytesOf(view: ArrayBufferView): Buffer {
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

describe('writeSafetensors / readSafetensors', () => {
  it('round-trips every dtype, including bf16, i64, scalars and empty tensors', async () => {
    const file = path.join(dir, 'all.safetensors');
    const tensors = sampleTensors();
    await writeSafetensors(file, tensors);
    const back = await readSafetensors(file);
    expect([...back.keys()].sort()).toEqual(Object.keys(tensors).sort());
    for (const [name, tensor] of Object.entries(tensors)) {
      const got = back.get(name)!;
      expect(got.dtype, name).toBe(tensor.dtype);
      expect(got.shape, name).toEqual(tensor.shape);
      expect(got.data.constructor, name).toBe(tensor.data.constructor);
      expect(bytesOf(got.data).equals(bytesOf(tensor.data)), name).toBe(true);
      expect(got.data.byteOffset % (got.data as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT).toBe(0);
    }
    expect((back.get('i64')!.data as BigInt64Array)[1]).toBe(2n ** 63n - 1n);
  });

  it('pads the header with spaces to a multiple of 8 and lays tensors out in sorted-name order', async () => {
    const file = path.join(dir, 'layout.safetensors');
    await writeSafetensors(file, sampleTensors());
    const bytes = await readFile(file);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    expect(headerLength % 8).toBe(0);
    const text = bytes.subarray(8, 8 + headerLength).toString('utf8');
    expect(text.startsWith('{')).toBe(true);
    expect(text.trimEnd().length).toBeLessThanOrEqual(headerLength);
    expect(/^ *$/.test(text.slice(text.lastIndexOf('}') + 1))).toBe(true);

    const header = await readSafetensorsHeader(file);
    expect(header.dataOffset).toBe(8 + headerLength);
    const byOffset = [...header.tensors.values()].filter((r) => r.byteLength > 0).sort((a, b) => a.offset - b.offset);
    const names = byOffset.map((r) => r.name);
    expect(names).toEqual([...names].sort());
    let end = header.dataOffset;
    for (const record of byOffset) {
      expect(record.offset).toBe(end); // contiguous, no gaps
      end += record.byteLength;
    }
    expect(end).toBe(bytes.length);
    // Records point at the right bytes.
    const tensors = sampleTensors();
    for (const record of header.tensors.values()) {
      expect(bytes.subarray(record.offset, record.offset + record.byteLength).equals(bytesOf(tensors[record.name]!.data))).toBe(true);
    }
  });

  it('pads an empty header too', async () => {
    const file = path.join(dir, 'none.safetensors');
    await writeSafetensors(file, {});
    const bytes = await readFile(file);
    expect(bytes.length).toBe(16);
    expect(bytes.subarray(8).toString()).toBe('{}      ');
    expect((await readSafetensors(file)).size).toBe(0);
  });

  it('keeps metadata', async () => {
    const file = path.join(dir, 'meta.safetensors');
    await writeSafetensors(file, { x: { dtype: 'u8', shape: [1], data: new Uint8Array([9]) } }, { format: 'pt', note: 'ünïcode "quoted"' });
    const header = await readSafetensorsHeader(file);
    expect(header.metadata).toEqual({ format: 'pt', note: 'ünïcode "quoted"' });
    expect((await openCheckpoint(file)).metadata).toEqual({ format: 'pt', note: 'ünïcode "quoted"' });
  });

  it('accepts a Map of tensors, as readSafetensors returns', async () => {
    const source = path.join(dir, 'all.safetensors');
    const copy = path.join(dir, 'copy.safetensors');
    await writeSafetensors(source, sampleTensors());
    await writeSafetensors(copy, await readSafetensors(source));
    expect((await readFile(copy)).equals(await readFile(source))).toBe(true);
  });

  it('refuses data whose length does not match shape and dtype, and writes nothing', async () => {
    const file = path.join(dir, 'bad-length.safetensors');
    const error = await failure(
      () => writeSafetensors(file, { w: { dtype: 'bf16', shape: [2, 2], data: new Uint16Array(3) } }),
      'ERR_SHAPE',
    );
    expect(error.tensor).toBe('w');
    expect(error.message).toContain('expected 8 bytes');
    await failure(() => writeSafetensors(file, { w: { dtype: 'f64' as DType, shape: [1], data: new Float64Array(1) } }), 'ERR_ARGUMENT');
    await failure(() => writeSafetensors(file, { w: { dtype: 'f32', shape: [-1], data: new Float32Array(1) } }), 'ERR_ARGUMENT');
    await failure(() => writeSafetensors(file, { __metadata__: { dtype: 'u8', shape: [0], data: new Uint8Array(0) } }), 'ERR_ARGUMENT');
    expect((await readdir(dir)).filter((name) => name.startsWith('bad-length'))).toEqual([]);
  });

  it('leaves neither the target nor a temporary file behind when the write fails', async () => {
    // The target is a non-empty folder, so the final rename fails after all the data was written.
    const target = path.join(dir, 'occupied');
    await mkdir(target);
    await writeFile(path.join(target, 'keep'), 'x');
    const error = await failure(() => writeSafetensors(target, sampleTensors()), 'ERR_IO');
    expect(error.file).toBe(target);
    expect((await readdir(dir)).filter((name) => name.includes('.tmp-'))).toEqual([]);
    expect((await stat(target)).isDirectory()).toBe(true);
    // A folder that does not exist: the temporary file cannot even be created.
    await failure(() => writeSafetensors(path.join(dir, 'no', 'such', 'x.safetensors'), sampleTensors()), 'ERR_IO');
  });

  it('readSafetensors refuses dtypes the library lacks with ERR_DTYPE naming the tensor', async () => {
    const file = await rawFile('f64.safetensors', { ok: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, wide: { dtype: 'F64', shape: [1], data_offsets: [4, 12] } }, 12);
    const error = await failure(() => readSafetensors(file), 'ERR_DTYPE');
    expect(error.tensor).toBe('wide');
    expect(error.file).toBe(file);
    // The header itself is fine: byte ranges are still available.
    expect((await readSafetensorsHeader(file)).tensors.get('wide')!.dtype).toBe('F64');
    expect(toDType('F64')).toBeUndefined();
    expect(toDType('BF16')).toBe('bf16');
  });
});

describe('readSafetensorsHeader validation', () => {
  const entry = (dtype: string, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });
  const cases: { name: string; header: unknown; data?: number; length?: bigint; code?: ErrorCode; tensor?: string; message: string }[] = [
    { name: 'header-array', header: '[1,2]', message: 'does not start with' },
    { name: 'header-not-brace', header: ' {}', message: 'does not start with' },
    { name: 'header-bad-json', header: '{"a": ', message: 'not valid JSON' },
    { name: 'header-too-long', header: '{}', length: 1000n, message: 'header length out of range' },
    { name: 'header-huge', header: '{}', length: 2n ** 63n, message: 'header length out of range' },
    { name: 'dtype-unknown', header: { t: entry('F33', [1], [0, 4]) }, data: 4, tensor: 't', message: 'unknown dtype' },
    { name: 'dtype-fp8', header: { t: entry('F8_E4M3', [1], [0, 1]) }, data: 1, tensor: 't', code: 'ERR_UNSUPPORTED', message: 'not supported' },
    { name: 'shape-negative', header: { t: entry('F32', [-1], [0, 4]) }, data: 4, tensor: 't', message: 'invalid shape' },
    { name: 'shape-fraction', header: { t: entry('F32', [1.5], [0, 4]) }, data: 4, tensor: 't', message: 'invalid shape' },
    { name: 'shape-string', header: { t: entry('F32', ['1'], [0, 4]) }, data: 4, tensor: 't', message: 'invalid shape' },
    { name: 'shape-missing', header: { t: { dtype: 'F32', data_offsets: [0, 4] } }, data: 4, tensor: 't', message: 'invalid shape' },
    { name: 'offsets-reversed', header: { t: entry('U8', [0], [4, 0]) }, data: 4, tensor: 't', message: 'outside the data region' },
    { name: 'offsets-past-end', header: { t: entry('F32', [2], [0, 8]) }, data: 4, tensor: 't', message: 'outside the data region' },
    { name: 'offsets-three', header: { t: entry('F32', [1], [0, 4, 8]) }, data: 8, tensor: 't', message: 'invalid data_offsets' },
    { name: 'length-mismatch', header: { t: entry('BF16', [3], [0, 4]) }, data: 4, tensor: 't', message: 'does not match shape' },
    {
      name: 'overlap',
      header: { a: entry('F32', [2], [0, 8]), b: entry('F32', [2], [4, 12]) },
      data: 12,
      tensor: 'b',
      message: 'overlaps',
    },
    { name: 'entry-not-object', header: { t: [1] }, tensor: 't', message: 'not an object' },
    { name: 'metadata-number', header: { __metadata__: { a: 1 } }, message: '__metadata__ must map strings to strings' },
    { name: 'metadata-array', header: { __metadata__: ['a'] }, message: '__metadata__ is not an object' },
  ];

  it.each(cases)('$name', async ({ name, header, data, length, code, tensor, message }) => {
    const file = await rawFile(`${name}.safetensors`, header, data ?? 0, length);
    const error = await failure(() => readSafetensorsHeader(file), code ?? 'ERR_WEIGHTS_FORMAT');
    expect(error.message).toContain(message);
    expect(error.file).toBe(file);
    expect(error.message).toContain(file);
    if (tensor !== undefined) expect(error.tensor).toBe(tensor);
  });

  it('refuses files shorter than 8 bytes, invalid UTF-8, and missing files', async () => {
    const short = path.join(dir, 'short.safetensors');
    await writeFile(short, Buffer.from([1, 2, 3]));
    expect((await failure(() => readSafetensorsHeader(short), 'ERR_WEIGHTS_FORMAT')).message).toContain('too small');
    const notUtf8 = await rawFile('not-utf8.safetensors', '{"ab": 1}');
    const bytes = await readFile(notUtf8);
    bytes[10] = 0xff; // a lone 0xff byte is never UTF-8
    await writeFile(notUtf8, bytes);
    expect((await failure(() => readSafetensorsHeader(notUtf8), 'ERR_WEIGHTS_FORMAT')).message).toContain('UTF-8');
    const missing = await failure(() => readSafetensorsHeader(path.join(dir, 'nope.safetensors')), 'ERR_IO');
    expect(missing.file).toBe(path.join(dir, 'nope.safetensors'));
  });

  it('accepts empty tensors anywhere, gaps between tensors, and trailing padding', async () => {
    const file = await rawFile(
      'gaps.safetensors',
      { a: entry('F32', [1], [0, 4]), e: entry('F32', [0], [2, 2]), b: entry('U8', [2], [8, 10]) },
      10,
    );
    const header = await readSafetensorsHeader(file);
    expect([...header.tensors.keys()]).toEqual(['a', 'e', 'b']);
    expect(header.tensors.get('b')!.offset).toBe(header.dataOffset + 8);
  });

  it('returns frozen records', async () => {
    const header = await readSafetensorsHeader(path.join(dir, 'all.safetensors'));
    const record = header.tensors.get('z.f32')!;
    expect(Object.isFrozen(record)).toBe(true);
    expect(Object.isFrozen(record.shape)).toBe(true);
    expect(numel(record.shape)).toBe(6);
  });
});

describe('openCheckpoint: sharded index', () => {
  let shardDir: string;
  const index = (weightMap: Record<string, string>) => JSON.stringify({ metadata: { total_size: 28 }, weight_map: weightMap });

  beforeAll(async () => {
    shardDir = path.join(dir, 'sharded');
    await mkdir(shardDir);
    await writeSafetensors(path.join(shardDir, 'model-00001-of-00002.safetensors'), {
      'layer.0.weight': { dtype: 'f32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
      'layer.0.bias': { dtype: 'bf16', shape: [2], data: f32ArrayToBf16([5, 6]) },
    });
    await writeSafetensors(path.join(shardDir, 'model-00002-of-00002.safetensors'), {
      'layer.1.weight': { dtype: 'i64', shape: [1], data: new BigInt64Array([7n]) },
    });
    await writeFile(
      path.join(shardDir, 'model.safetensors.index.json'),
      index({
        'layer.0.weight': 'model-00001-of-00002.safetensors',
        'layer.0.bias': 'model-00001-of-00002.safetensors',
        'layer.1.weight': 'model-00002-of-00002.safetensors',
      }),
    );
  });

  it('opens through the index file, the folder, or the folder with a basename', async () => {
    for (const weights of [
      await openCheckpoint(path.join(shardDir, 'model.safetensors.index.json')),
      await openCheckpoint(shardDir),
      await openCheckpoint(shardDir, { basename: 'model' }),
      await openWeights(shardDir),
    ]) {
      expect(weights.format).toBe('safetensors');
      expect(weights.size).toBe(3);
      expect(weights.names().sort()).toEqual(['layer.0.bias', 'layer.0.weight', 'layer.1.weight']);
      expect(weights.files).toEqual([
        path.join(shardDir, 'model-00001-of-00002.safetensors'),
        path.join(shardDir, 'model-00002-of-00002.safetensors'),
      ]);
      expect(weights.totalBytes).toBe(16 + 4 + 8);
      expect(weights.metadata).toEqual({ total_size: '28' });
      const record = weights.get('layer.1.weight');
      expect(record.file).toBe(path.join(shardDir, 'model-00002-of-00002.safetensors'));
      expect((await readFile(record.file)).readBigInt64LE(record.offset)).toBe(7n);
      expect(weights.has('nope')).toBe(false);
      expect(weights.find('nope')).toBeUndefined();
      const missing = (() => {
        try {
          weights.get('nope');
        } catch (error) {
          return error as StepVideoError;
        }
        return undefined;
      })();
      expect(missing?.code).toBe('ERR_WEIGHTS_MISSING');
      expect(missing?.tensor).toBe('nope');
    }
  });

  async function variant(name: string, weightMap: Record<string, string>): Promise<string> {
    const file = path.join(shardDir, `${name}.safetensors.index.json`);
    await writeFile(file, index(weightMap));
    return file;
  }

  it('reports a missing shard with ERR_WEIGHTS_MISSING naming the shard', async () => {
    const file = await variant('missing-shard', { 'layer.0.weight': 'model-00001-of-00002.safetensors', extra: 'model-00003-of-00003.safetensors' });
    const error = await failure(() => openCheckpoint(file), 'ERR_WEIGHTS_MISSING');
    expect(error.file).toBe(path.join(shardDir, 'model-00003-of-00003.safetensors'));
    expect(error.tensor).toBe('extra');
  });

  it('reports a tensor absent from its shard with ERR_WEIGHTS_MISSING', async () => {
    const file = await variant('absent', { 'layer.0.weight': 'model-00001-of-00002.safetensors', 'layer.1.weight': 'model-00001-of-00002.safetensors' });
    const error = await failure(() => openCheckpoint(file), 'ERR_WEIGHTS_MISSING');
    expect(error.tensor).toBe('layer.1.weight');
    expect(error.file).toBe(path.join(shardDir, 'model-00001-of-00002.safetensors'));
  });

  it('refuses shard paths that leave the folder', async () => {
    for (const shard of ['../x.safetensors', '../sharded/../../x.safetensors', '/etc/passwd', '.', 'a/../../x']) {
      const file = await variant('escape', { t: shard });
      const error = await failure(() => openCheckpoint(file), 'ERR_WEIGHTS_FORMAT');
      expect(error.message).toContain('escapes');
      expect(error.tensor).toBe('t');
    }
  });

  it('refuses a tensor that two shards hold', async () => {
    const twin = path.join(shardDir, 'twin.safetensors');
    await writeSafetensors(twin, { 'layer.1.weight': { dtype: 'u8', shape: [1], data: new Uint8Array([1]) } });
    const file = await variant('twice', { 'layer.1.weight': 'model-00002-of-00002.safetensors', other: 'twin.safetensors' });
    const error = await failure(() => openCheckpoint(file), 'ERR_WEIGHTS_FORMAT');
    expect(error.tensor).toBe('layer.1.weight');
    expect(error.message).toContain('two shards');
  });

  it('refuses malformed index files', async () => {
    const noMap = path.join(shardDir, 'nomap.safetensors.index.json');
    await writeFile(noMap, '{"metadata": {}}');
    await failure(() => openCheckpoint(noMap), 'ERR_WEIGHTS_FORMAT');
    const notJson = path.join(shardDir, 'notjson.safetensors.index.json');
    await writeFile(notJson, '{"weight_map": {');
    await failure(() => openCheckpoint(notJson), 'ERR_WEIGHTS_FORMAT');
    const badValue = path.join(shardDir, 'badvalue.safetensors.index.json');
    await writeFile(badValue, '{"weight_map": {"t": 3}}');
    expect((await failure(() => openCheckpoint(badValue), 'ERR_WEIGHTS_FORMAT')).tensor).toBe('t');
  });

  it('asks for a basename when a folder holds several checkpoints, and reports an empty folder', async () => {
    // shardDir now holds several index files.
    await failure(() => openCheckpoint(shardDir), 'ERR_ARGUMENT');
    const two = path.join(dir, 'two');
    await mkdir(two);
    await writeSafetensors(path.join(two, 'a.safetensors'), { x: { dtype: 'u8', shape: [1], data: new Uint8Array([1]) } });
    await writeSafetensors(path.join(two, 'b.safetensors'), { y: { dtype: 'u8', shape: [1], data: new Uint8Array([2]) } });
    expect((await failure(() => openCheckpoint(two), 'ERR_ARGUMENT')).got).toEqual(['a.safetensors', 'b.safetensors']);
    expect((await openCheckpoint(two, { basename: 'b' })).names()).toEqual(['y']);
    await failure(() => openCheckpoint(two, { basename: 'c' }), 'ERR_WEIGHTS_MISSING');
    const empty = path.join(dir, 'empty');
    await mkdir(empty);
    await failure(() => openCheckpoint(empty), 'ERR_WEIGHTS_MISSING');
    await failure(() => openWeights(empty), 'ERR_WEIGHTS_MISSING');
    await failure(() => openCheckpoint(path.join(dir, 'does-not-exist')), 'ERR_IO');
  });
});

describe('openWeights and key remapping', () => {
  it('detects safetensors by content, whatever the extension', async () => {
    const file = path.join(dir, 'weights.dat');
    await writeSafetensors(file, { 'bert.x': { dtype: 'u8', shape: [1], data: new Uint8Array([1]) } });
    expect(await detectWeightsFile(file)).toBe('safetensors');
    expect((await openWeights(file)).names()).toEqual(['bert.x']);
    // A header length of 0x180 makes the file start with 0x80, like a legacy torch pickle.
    const tricky = await rawFile('tricky.dat', `{"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`.padEnd(0x180, ' '), 1);
    expect((await readFile(tricky))[0]).toBe(0x80);
    expect(await detectWeightsFile(tricky)).toBe('safetensors');
    const junk = path.join(dir, 'junk.bin');
    await writeFile(junk, 'hello world, not weights');
    await failure(() => openWeights(junk), 'ERR_WEIGHTS_FORMAT');
    const legacy = path.join(dir, 'legacy.pt');
    await writeFile(legacy, Buffer.from([0x80, 0x02, 0x8a, 0x0a]));
    await failure(() => openWeights(legacy), 'ERR_UNSUPPORTED');
  });

  it('stripPrefix renames, keeps or drops the rest, and refuses clashes', async () => {
    const file = path.join(dir, 'prefixed.safetensors');
    await writeSafetensors(file, {
      'bert.a': { dtype: 'u8', shape: [1], data: new Uint8Array([1]) },
      'bert.b': { dtype: 'u8', shape: [1], data: new Uint8Array([2]) },
      'cls.c': { dtype: 'u8', shape: [1], data: new Uint8Array([3]) },
    });
    const weights = await openWeights(file);
    const stripped = stripPrefix(weights, 'bert.');
    expect(stripped.names().sort()).toEqual(['a', 'b', 'cls.c']);
    expect(stripped.get('a').offset).toBe(weights.get('bert.a').offset);
    expect(stripped.get('a').name).toBe('a');
    expect(stripped.totalBytes).toBe(3);
    expect(stripPrefix(weights, 'bert.', { keep: 'prefixed' }).names().sort()).toEqual(['a', 'b']);
    const error = (() => {
      try {
        renameKeys(weights, (name) => name.slice(-1) === 'c' ? 'a' : name.replace('bert.', ''));
      } catch (caught) {
        return caught as StepVideoError;
      }
      return undefined;
    })();
    expect(error?.code).toBe('ERR_WEIGHTS_FORMAT');
    expect(error?.tensor).toBe('a');
  });
});

describe.runIf(requireGolden())('golden safetensors', () => {
  it('opens the tiny model folders', async () => {
    const transformer = await openCheckpoint(path.join(tinyModelDir, 'transformer'));
    expect(transformer.has('pos_embed.proj.weight')).toBe(true);
    expect(transformer.get('pos_embed.proj.weight').dtype).toBe('BF16');
    const clip = await openCheckpoint(path.join(tinyModelDir, 'hunyuan_clip', 'clip_text_encoder'));
    expect(clip.names().every((name) => name.startsWith('bert.'))).toBe(true);
    const fileSize = (await stat(clip.files[0]!)).size;
    for (const record of clip) expect(record.offset + record.byteLength).toBeLessThanOrEqual(fileSize);
  });
});
