import { mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bf16ArrayToF32 } from '../../lib/dtype.js';
import { type ErrorCode, StepVideoError } from '../../lib/errors.js';
import { openWeights, stripPrefix } from '../../lib/io/index.js';
import { readSafetensors } from '../../lib/io/safetensors.js';
import { type PickleLimits, type StorageSource, readTorchCheckpoint, unpickleStateDict } from '../../lib/io/torch-pickle.js';
import { ZipArchive, type ZipEntry, crc32 } from '../../lib/io/zip.js';
import { requireGolden, tinyModelDir } from '../helpers/golden.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'stepvideo-io-pt-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

// ---- building pickles and zips by hand ----

/** Emits pickle opcodes; names follow the pickle spec. */
class PickleBuilder {
  readonly #bytes: number[] = [];
  op(...bytes: number[]): this {
    for (const b of bytes) this.#bytes.push(b);
    return this;
  }
  raw(text: string): this {
    return this.op(...Buffer.from(text, 'latin1'));
  }
  proto(version = 2): this {
    return this.op(0x80, version);
  }
  str(text: string): this {
    const bytes = [...Buffer.from(text, 'utf8')];
    if (bytes.length < 256) return this.op(0x8c, bytes.length, ...bytes);
    const length = Buffer.alloc(4);
    length.writeUInt32LE(bytes.length);
    return this.op(0x58, ...length, ...bytes);
  }
  int(value: number): this {
    if (value >= 0 && value < 256) return this.op(0x4b, value);
    if (value >= 0 && value < 65536) return this.op(0x4d, value & 0xff, value >> 8);
    const bytes = Buffer.alloc(4);
    bytes.writeInt32LE(value);
    return this.op(0x4a, ...bytes);
  }
  global(module: string, name: string): this {
    return this.raw(`c${module}\n${name}\n`);
  }
  stackGlobal(module: string, name: string): this {
    return this.str(module).str(name).op(0x93);
  }
  mark(): this {
    return this.op(0x28);
  }
  tuple(): this {
    return this.op(0x74);
  }
  emptyTuple(): this {
    return this.op(0x29);
  }
  emptyDict(): this {
    return this.op(0x7d);
  }
  emptyList(): this {
    return this.op(0x5d);
  }
  setitems(): this {
    return this.op(0x75);
  }
  reduce(): this {
    return this.op(0x52);
  }
  stop(): this {
    return this.op(0x2e);
  }
  /** ints as a MARK ... TUPLE tuple */
  ints(values: number[]): this {
    this.mark();
    for (const v of values) this.int(v);
    return this.tuple();
  }
  /** _rebuild_tensor_v2(('storage', torch.<type>, key, 'cpu', numel), offset, size, stride, False, OrderedDict()) */
  tensor(key: string, storageType: string, numel: number, offset: number, size: number[], stride: number[]): this {
    return this.global('torch._utils', '_rebuild_tensor_v2')
      .mark()
      .mark().str('storage').global('torch', storageType).str(key).str('cpu').int(numel).tuple().op(0x51)
      .int(offset)
      .ints(size)
      .ints(stride)
      .op(0x89)
      .global('collections', 'OrderedDict').emptyTuple().reduce()
      .tuple()
      .reduce();
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.#bytes);
  }
}

interface ZipInput {
  name: string;
  data: Uint8Array;
  deflate?: boolean;
}

/** A plain zip (or one written entirely with ZIP64 records and extra fields). */
function buildZip(inputs: ZipInput[], zip64 = false): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const input of inputs) {
    const name = Buffer.from(input.name);
    const payload = input.deflate ? deflateRawSync(input.data) : Buffer.from(input.data);
    const method = input.deflate ? 8 : 0;
    const crc = crc32(input.data);
    // Local header with the sizes left zero (flag 3), as torch writes it.
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(0x0808, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(name.length, 26);
    parts.push(local, name, payload);
    const header = Buffer.alloc(46);
    header.writeUInt32LE(0x02014b50, 0);
    header.writeUInt16LE(0x0808, 8);
    header.writeUInt16LE(method, 10);
    header.writeUInt32LE(crc, 16);
    let extra = Buffer.alloc(0);
    if (zip64) {
      header.writeUInt32LE(0xffffffff, 20);
      header.writeUInt32LE(0xffffffff, 24);
      header.writeUInt32LE(0xffffffff, 42);
      extra = Buffer.alloc(4 + 24);
      extra.writeUInt16LE(1, 0);
      extra.writeUInt16LE(24, 2);
      extra.writeBigUInt64LE(BigInt(input.data.length), 4);
      extra.writeBigUInt64LE(BigInt(payload.length), 12);
      extra.writeBigUInt64LE(BigInt(offset), 20);
    } else {
      header.writeUInt32LE(payload.length, 20);
      header.writeUInt32LE(input.data.length, 24);
      header.writeUInt32LE(offset, 42);
    }
    header.writeUInt16LE(name.length, 28);
    header.writeUInt16LE(extra.length, 30);
    central.push(header, name, extra);
    offset += 30 + name.length + payload.length;
  }
  const directory = Buffer.concat(central);
  const tail: Buffer[] = [];
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  if (zip64) {
    const record = Buffer.alloc(56);
    record.writeUInt32LE(0x06064b50, 0);
    record.writeBigUInt64LE(44n, 4);
    record.writeBigUInt64LE(BigInt(inputs.length), 24);
    record.writeBigUInt64LE(BigInt(inputs.length), 32);
    record.writeBigUInt64LE(BigInt(directory.length), 40);
    record.writeBigUInt64LE(BigInt(offset), 48);
    const locator = Buffer.alloc(20);
    locator.writeUInt32LE(0x07064b50, 0);
    locator.writeBigUInt64LE(BigInt(offset + directory.length), 8);
    locator.writeUInt32LE(1, 16);
    tail.push(record, locator);
    eocd.writeUInt16LE(0xffff, 8);
    eocd.writeUInt16LE(0xffff, 10);
    eocd.writeUInt32LE(0xffffffff, 12);
    eocd.writeUInt32LE(0xffffffff, 16);
  } else {
    eocd.writeUInt16LE(inputs.length, 8);
    eocd.writeUInt16LE(inputs.length, 10);
    eocd.writeUInt32LE(directory.length, 12);
    eocd.writeUInt32LE(offset, 16);
  }
  return Buffer.concat([...parts, directory, ...tail, eocd]);
}

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

/** A state dict pickle: {'w': 2x3 float tensor in storage '0', 'b': 2 elements at offset 4 of storage '1'}. */
function stateDictPickle(): PickleBuilder {
  return new PickleBuilder()
    .proto(2)
    .emptyDict()
    .mark()
    .str('w').tensor('0', 'FloatStorage', 6, 0, [2, 3], [3, 1])
    .str('b').tensor('1', 'FloatStorage', 6, 4, [2], [1])
    .setitems()
    .stop();
}

async function writeCheckpoint(name: string, inputs: ZipInput[], zip64 = false): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, buildZip(inputs, zip64));
  return file;
}

function storages(): ZipInput[] {
  return [
    { name: 'archive/data/0', data: f32Bytes([1, 2, 3, 4, 5, 6]) },
    { name: 'archive/data/1', data: f32Bytes([10, 20, 30, 40, 50, 60]) },
  ];
}

async function readF32(file: string, offset: number, count: number): Promise<number[]> {
  const handle = await open(file, 'r');
  try {
    const bytes = Buffer.alloc(count * 4);
    await handle.read(bytes, 0, bytes.length, offset);
    return [...new Float32Array(bytes.buffer, bytes.byteOffset, count)];
  } finally {
    await handle.close();
  }
}

/** A storage source for unpickling without an archive: every key names a stored 6-float entry. */
const fakeSource: StorageSource = {
  file: 'fake.bin',
  storage: (key) =>
    ['0', '1'].includes(key)
      ? ({ name: `archive/data/${key}`, method: 0, flags: 0, crc32: 0, compressedSize: 24, uncompressedSize: 24, localHeaderOffset: 0, dataOffset: 1000 + 100 * Number(key) } satisfies ZipEntry)
      : undefined,
};

async function rejection(promise: Promise<unknown>, code: ErrorCode): Promise<StepVideoError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(StepVideoError);
    expect((error as StepVideoError).code, (error as Error).message).toBe(code);
    return error as StepVideoError;
  }
  expect.unreachable(`expected ${code}`);
  throw new Error('unreachable');
}

function refusal(pickle: Uint8Array, code: ErrorCode = 'ERR_WEIGHTS_FORMAT', limits: Partial<PickleLimits> = {}): StepVideoError {
  try {
    unpickleStateDict(pickle, fakeSource, limits);
  } catch (error) {
    expect(error).toBeInstanceOf(StepVideoError);
    expect((error as StepVideoError).code, (error as Error).message).toBe(code);
    return error as StepVideoError;
  }
  expect.unreachable(`expected ${code}`);
  throw new Error('unreachable');
}

// ---- tests ----

describe.runIf(requireGolden())('golden pytorch_model.bin', () => {
  const clipDir = path.join(tinyModelDir, 'hunyuan_clip', 'clip_text_encoder');
  const binFile = path.join(clipDir, 'pytorch_model.bin');

  it('holds the same tensors as model.safetensors, as float32 ranges inside the file', async () => {
    const tensors = await readTorchCheckpoint(binFile);
    const reference = await readSafetensors(path.join(clipDir, 'model.safetensors'));
    expect([...tensors.keys()].sort()).toEqual([...reference.keys()].sort());
    expect(tensors.size).toBeGreaterThan(10);
    const fileSize = (await stat(binFile)).size;
    for (const [name, record] of tensors) {
      const expected = reference.get(name)!;
      expect(name.startsWith('bert.')).toBe(true);
      expect(record.name).toBe(name);
      expect(record.file).toBe(binFile);
      expect(record.dtype).toBe('F32');
      expect(record.shape, name).toEqual(expected.shape);
      expect(record.byteLength).toBe(expected.data.length * 4);
      expect(record.offset).toBeGreaterThan(0);
      expect(record.offset + record.byteLength).toBeLessThanOrEqual(fileSize);
      expect(expected.dtype).toBe('bf16');
      const widened = bf16ArrayToF32(expected.data as Uint16Array);
      const values = await readF32(binFile, record.offset, widened.length);
      expect(values, name).toEqual([...widened]);
    }
  });

  it('opens through openWeights by content and strips the bert. prefix', async () => {
    const weights = await openWeights(binFile);
    expect(weights.format).toBe('torch');
    expect(weights.files).toEqual([binFile]);
    const bare = stripPrefix(weights, 'bert.');
    expect(bare.size).toBe(weights.size);
    expect(bare.has('embeddings.word_embeddings.weight')).toBe(true);
    expect(bare.names().some((name) => name.startsWith('bert.'))).toBe(false);
    expect((await openWeights(clipDir, { basename: 'pytorch_model' })).format).toBe('torch');
    expect((await openWeights(clipDir)).format).toBe('safetensors');
  });

  it('reads the ZIP64 directory torch writes', async () => {
    const archive = await ZipArchive.open(binFile);
    try {
      expect(archive.get('pytorch_model/data.pkl')?.method).toBe(0);
      expect((await archive.read(archive.get('pytorch_model/byteorder')!, 16)).toString()).toBe('little');
    } finally {
      await archive.close();
    }
  });
});

describe('hand-built torch checkpoints', () => {
  it('reads tensors, storage offsets, and both zip flavours', async () => {
    for (const zip64 of [false, true]) {
      const file = await writeCheckpoint(`ok-${zip64}.pt`, [
        { name: 'archive/data.pkl', data: stateDictPickle().bytes() },
        { name: 'archive/byteorder', data: Buffer.from('little') },
        ...storages(),
      ], zip64);
      const tensors = await readTorchCheckpoint(file);
      expect([...tensors.keys()]).toEqual(['w', 'b']);
      const w = tensors.get('w')!;
      expect(w.shape).toEqual([2, 3]);
      expect(w.byteLength).toBe(24);
      expect(await readF32(file, w.offset, 6)).toEqual([1, 2, 3, 4, 5, 6]);
      const b = tensors.get('b')!;
      expect(b.shape).toEqual([2]);
      expect(await readF32(file, b.offset, 2)).toEqual([50, 60]);
    }
  });

  it('reads a deflated pickle, protocol-4 opcodes, parameters, state_dict wrappers and BUILD state', async () => {
    const pickle = new PickleBuilder()
      .proto(4)
      .op(0x95, 0, 0, 0, 0, 0, 0, 0, 0) // FRAME of length 0 is legal framing
      .emptyDict().op(0x94) // MEMOIZE
      .str('state_dict')
      .stackGlobal('collections', 'OrderedDict').emptyTuple().reduce().op(0x94)
      .mark()
      .str('p')
      .stackGlobal('torch._utils', '_rebuild_parameter')
      .mark().tensor('0', 'FloatStorage', 6, 0, [3, 2], [2, 1]).op(0x88).global('collections', 'OrderedDict').emptyTuple().reduce().tuple()
      .reduce()
      .str('one').tensor('1', 'FloatStorage', 6, 5, [1, 1], [7, 9]) // size-1 dims may carry any stride
      .str('none').tensor('1', 'FloatStorage', 6, 6, [0, 4], [4, 1])
      .setitems()
      // OrderedDict state: {'_metadata': {...}} sets an attribute, not items.
      .emptyDict().str('_metadata').emptyDict().op(0x73).op(0x62)
      .op(0x73) // SETITEM root['state_dict'] = ...
      .str('epoch').int(3).op(0x73)
      .stop()
      .bytes();
    const file = await writeCheckpoint('deflated.pt', [{ name: 'ckpt/data.pkl', data: pickle, deflate: true }, { name: 'ckpt/data/0', data: f32Bytes([1, 2, 3, 4, 5, 6]) }, { name: 'ckpt/data/1', data: f32Bytes([7, 8, 9, 10, 11, 12]) }]);
    const tensors = await readTorchCheckpoint(file);
    expect([...tensors.keys()]).toEqual(['p', 'one', 'none']);
    expect(tensors.get('p')!.shape).toEqual([3, 2]);
    expect(await readF32(file, tensors.get('one')!.offset, 1)).toEqual([12]);
    expect(tensors.get('none')!.byteLength).toBe(0);
  });

  it('refuses storages it cannot address in place, big-endian files, and archives without a pickle', async () => {
    const pickle = stateDictPickle().bytes();
    const deflated = await writeCheckpoint('deflated-storage.pt', [
      { name: 'archive/data.pkl', data: pickle },
      { name: 'archive/data/0', data: f32Bytes([1, 2, 3, 4, 5, 6]), deflate: true },
      storages()[1]!,
    ]);
    const error = await rejection(readTorchCheckpoint(deflated), 'ERR_UNSUPPORTED');
    expect(error.tensor).toBe('w');

    const big = await writeCheckpoint('big.pt', [{ name: 'archive/data.pkl', data: pickle }, { name: 'archive/byteorder', data: Buffer.from('big') }, ...storages()]);
    await rejection(readTorchCheckpoint(big), 'ERR_UNSUPPORTED');

    const none = await writeCheckpoint('none.pt', storages());
    expect((await rejection(readTorchCheckpoint(none), 'ERR_WEIGHTS_FORMAT')).message).toContain('not a torch.save checkpoint');

    const missing = await writeCheckpoint('missing.pt', [{ name: 'archive/data.pkl', data: pickle }, storages()[0]!]);
    expect((await rejection(readTorchCheckpoint(missing), 'ERR_WEIGHTS_FORMAT')).message).toContain("storage '1' is missing");

    // A damaged pickle is caught by its CRC before it is run.
    const bytes = buildZip([{ name: 'archive/data.pkl', data: pickle }, ...storages()]);
    bytes[30 + 'archive/data.pkl'.length + 5]! ^= 0x40;
    const damaged = path.join(dir, 'damaged.pt');
    await writeFile(damaged, bytes);
    expect((await rejection(readTorchCheckpoint(damaged), 'ERR_WEIGHTS_FORMAT')).message).toContain('CRC');
  });
});

describe('restricted unpickler', () => {
  it('builds records from a fake archive', () => {
    const tensors = unpickleStateDict(stateDictPickle().bytes(), fakeSource);
    expect(tensors.get('w')).toMatchObject({ dtype: 'F32', shape: [2, 3], offset: 1000, byteLength: 24, file: 'fake.bin' });
    expect(tensors.get('b')).toMatchObject({ offset: 1100 + 16, byteLength: 8 });
  });

  it('refuses a posix.system global and names it', () => {
    const pickle = new PickleBuilder().proto(2).global('posix', 'system').str('echo pwned').op(0x85).reduce().stop().bytes();
    const error = refusal(pickle);
    expect(error.message).toContain("refusing pickle global 'posix.system'");
    expect(error.file).toBe('fake.bin');
  });

  it('refuses builtins.eval through STACK_GLOBAL', () => {
    const pickle = new PickleBuilder().proto(4).stackGlobal('builtins', 'eval').str('1+1').op(0x85).reduce().stop().bytes();
    expect(refusal(pickle).message).toContain("refusing pickle global 'builtins.eval'");
  });

  it('refuses globals that look harmless but are not on the list', () => {
    for (const [module, name] of [['torch', 'load'], ['torch._utils', '_rebuild_tensor'], ['collections', 'defaultdict'], ['torch', 'Tensor']] as const) {
      expect(refusal(new PickleBuilder().proto(2).global(module, name).stop().bytes()).message).toContain(`'${module}.${name}'`);
    }
  });

  it('refuses opcodes outside its set, naming them', () => {
    // INST would import and call a class by name.
    expect(refusal(new PickleBuilder().proto(2).raw('ios\nsystem\n').stop().bytes()).message).toContain('INST');
    expect(refusal(new PickleBuilder().proto(2).op(0x81).stop().bytes()).message).toContain('NEWOBJ');
    expect(refusal(new PickleBuilder().proto(2).op(0xff).stop().bytes()).message).toContain('0xff');
    expect(refusal(new PickleBuilder().proto(2).op(0x4e, 0x32).stop().bytes()).message).toContain('DUP');
  });

  it('refuses deep nesting and oversized stacks, memos and pickles', () => {
    const marks = new PickleBuilder().proto(2);
    for (let i = 0; i < 100_000; i++) marks.mark();
    expect(refusal(marks.stop().bytes()).message).toContain('nests deeper than 256');

    const lists = new PickleBuilder().proto(2);
    for (let i = 0; i < 200_000; i++) lists.op(0x5d);
    expect(refusal(lists.stop().bytes()).message).toContain('stack deeper than 100000');

    const memo = new PickleBuilder().proto(2).op(0x4e);
    for (let i = 0; i < 10; i++) memo.op(0x71, i);
    expect(refusal(memo.stop().bytes(), 'ERR_WEIGHTS_FORMAT', { maxMemo: 5 }).message).toContain('memo larger than 5');

    expect(refusal(stateDictPickle().bytes(), 'ERR_WEIGHTS_FORMAT', { maxBytes: 100 }).message).toContain('pickle too large');
  });

  it('refuses tensors that are not contiguous or leave their storage, naming them', () => {
    const strided = new PickleBuilder().proto(2).emptyDict().str('t').tensor('0', 'FloatStorage', 6, 0, [2, 3], [1, 2]).op(0x73).stop();
    const error = refusal(strided.bytes(), 'ERR_UNSUPPORTED');
    expect(error.tensor).toBe('t');
    expect(error.message).toContain('non-contiguous');

    const past = new PickleBuilder().proto(2).emptyDict().str('t').tensor('0', 'FloatStorage', 6, 2, [5], [1]).op(0x73).stop();
    const outside = refusal(past.bytes());
    expect(outside.tensor).toBe('t');
    expect(outside.message).toContain('past its storage');

    const wrongSize = new PickleBuilder().proto(2).emptyDict().str('t').tensor('0', 'DoubleStorage', 6, 0, [6], [1]).op(0x73).stop();
    expect(refusal(wrongSize.bytes()).message).toContain('wrong size');
  });

  it('refuses malformed structure', () => {
    const cases: [string, PickleBuilder][] = [
      ['ends without STOP', new PickleBuilder().proto(2).emptyDict()],
      ['stack underflow', new PickleBuilder().proto(2).op(0x73).stop()],
      ['not a state dict', new PickleBuilder().proto(2).emptyTuple().stop()],
      ['not a tensor', new PickleBuilder().proto(2).emptyDict().str('x').int(1).op(0x73).stop()],
      ['key is not a string', new PickleBuilder().proto(2).emptyDict().int(1).emptyDict().op(0x73).stop()],
      ['ends early', new PickleBuilder().proto(2).op(0x58, 100, 0, 0, 0).raw('abc')],
      ['memo has no entry', new PickleBuilder().proto(2).op(0x68, 7).stop()],
      ['unsupported pickle protocol', new PickleBuilder().proto(9).stop()],
      ['bad persistent id', new PickleBuilder().proto(2).str('file').op(0x51).stop()],
      ['not callable', new PickleBuilder().proto(2).global('torch', 'FloatStorage').emptyTuple().reduce().stop()],
      ['BUILD is only supported', new PickleBuilder().proto(2).emptyList().emptyDict().op(0x62).stop()],
    ];
    for (const [message, builder] of cases) expect(refusal(builder.bytes()).message, message).toContain(message);
  });
});
