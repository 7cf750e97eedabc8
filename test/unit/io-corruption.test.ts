// Seeded corruption: random truncations and byte flips of real and hand-made weight files. Each
// damaged file must either parse (into byte ranges that stay inside the file) or fail with one of
// the weights error codes: never another exception type, never a hang.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { f32ArrayToBf16 } from '../../lib/dtype.js';
import { type ErrorCode, StepVideoError } from '../../lib/errors.js';
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from '../../lib/io/safetensors.js';
import type { TensorRecord } from '../../lib/io/tensor-record.js';
import { readTorchCheckpoint, unpickleStateDict } from '../../lib/io/torch-pickle.js';
import { ZipArchive } from '../../lib/io/zip.js';
import { requireGolden, tinyModelDir } from '../helpers/golden.js';

const ALLOWED: ReadonlySet<ErrorCode> = new Set(['ERR_WEIGHTS_FORMAT', 'ERR_WEIGHTS_MISSING', 'ERR_UNSUPPORTED', 'ERR_DTYPE']);
const TRUNCATIONS = 300;
const FLIPS = 300;

/** mulberry32: small, seeded, good enough to pick positions. */
function rng(seed: number): (n: number) => number {
  let state = seed >>> 0;
  return (n) => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

interface Target {
  bytes: Buffer;
  /** Byte ranges holding structure (headers, directories, the pickle): half of the flips land there. */
  structure: [number, number][];
  /** Parses a file, returning the records it produced (for the in-bounds check). */
  parse: (file: string) => Promise<TensorRecord[] | undefined>;
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'stepvideo-io-fuzz-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A position: half the time anywhere, half the time uniformly within the structure ranges. */
function pick(random: (n: number) => number, target: Target): number {
  const total = target.structure.reduce((sum, [start, end]) => sum + (end - start), 0);
  if (random(2) === 0 || total === 0) return random(target.bytes.length);
  let at = random(total);
  for (const [start, end] of target.structure) {
    if (at < end - start) return start + at;
    at -= end - start;
  }
  return random(target.bytes.length);
}

/** Applies `count` mutations and checks every outcome; returns how many parsed and how many failed. */
async function fuzz(name: string, target: Target, seed: number): Promise<{ parsed: number; failed: number }> {
  const random = rng(seed);
  const file = path.join(dir, name);
  let parsed = 0;
  let failed = 0;
  for (let round = 0; round < TRUNCATIONS + FLIPS; round++) {
    let damaged: Buffer;
    let what: string;
    if (round < TRUNCATIONS) {
      // Half uniform, half near a structural boundary, where a cut is most interesting.
      const length = random(2) === 0 ? random(target.bytes.length) : Math.min(target.bytes.length - 1, pick(random, target));
      damaged = target.bytes.subarray(0, length);
      what = `truncated to ${length}`;
    } else {
      damaged = Buffer.from(target.bytes);
      const flips = 1 + random(3);
      const positions: number[] = [];
      for (let i = 0; i < flips; i++) {
        const at = pick(random, target);
        damaged[at]! ^= 1 + random(255);
        positions.push(at);
      }
      what = `bytes flipped at ${positions.join(', ')}`;
    }
    await writeFile(file, damaged);
    try {
      const records = await target.parse(file);
      for (const record of records ?? []) {
        expect(record.offset, `${name} ${what}: ${record.name}`).toBeGreaterThanOrEqual(0);
        expect(record.offset + record.byteLength, `${name} ${what}: ${record.name}`).toBeLessThanOrEqual(damaged.length);
      }
      parsed++;
    } catch (error) {
      if (!(error instanceof StepVideoError) || !ALLOWED.has(error.code)) {
        throw new Error(`${name} ${what}: unexpected ${error instanceof StepVideoError ? error.code : String(error)}`, { cause: error });
      }
      failed++;
    }
  }
  return { parsed, failed };
}

async function safetensorsTarget(bytes: Buffer, file: string): Promise<Target> {
  const header = await readSafetensorsHeader(file);
  return {
    bytes,
    structure: [[0, header.dataOffset]],
    parse: async (damaged) => {
      const records = [...(await readSafetensorsHeader(damaged)).tensors.values()];
      await readSafetensors(damaged);
      return records;
    },
  };
}

describe('corrupted weight files', () => {
  it('hand-made safetensors', async () => {
    const file = path.join(dir, 'hand.safetensors');
    await writeSafetensors(
      file,
      {
        'a.weight': { dtype: 'bf16', shape: [4, 3], data: f32ArrayToBf16(Array.from({ length: 12 }, (_, i) => i / 3)) },
        'a.bias': { dtype: 'f32', shape: [4], data: new Float32Array([1, 2, 3, 4]) },
        ids: { dtype: 'i64', shape: [2, 2], data: new BigInt64Array([1n, 2n, 3n, 4n]) },
        mask: { dtype: 'u8', shape: [3], data: new Uint8Array([1, 0, 1]) },
        half: { dtype: 'f16', shape: [1], data: new Uint16Array([0x3c00]) },
        count: { dtype: 'i32', shape: [], data: new Int32Array([5]) },
      },
      { format: 'pt' },
    );
    const result = await fuzz('hand.safetensors', await safetensorsTarget(await readFile(file), file), 1);
    expect(result.failed).toBeGreaterThan(0);
    expect(result.parsed).toBeGreaterThan(0);
  }, 20_000);
});

describe.runIf(requireGolden())('corrupted golden weight files', () => {
  const clipDir = path.join(tinyModelDir, 'hunyuan_clip', 'clip_text_encoder');

  it('real safetensors (golden model.safetensors)', async () => {
    const file = path.join(clipDir, 'model.safetensors');
    const result = await fuzz('real.safetensors', await safetensorsTarget(await readFile(file), file), 2);
    expect(result.failed).toBeGreaterThan(0);
  }, 20_000);

  it('torch zip (golden pytorch_model.bin)', async () => {
    const file = path.join(clipDir, 'pytorch_model.bin');
    const bytes = await readFile(file);
    const archive = await ZipArchive.open(file);
    const structure: [number, number][] = [];
    let dataEnd = 0;
    for (const entry of archive.entries.values()) {
      structure.push([entry.localHeaderOffset, entry.dataOffset]);
      if (!entry.name.includes('/data/')) structure.push([entry.dataOffset, entry.dataOffset + entry.compressedSize]);
      dataEnd = Math.max(dataEnd, entry.dataOffset + entry.compressedSize);
    }
    structure.push([dataEnd, bytes.length]); // central directory and end records
    await archive.close();
    const result = await fuzz('real.bin', { bytes, structure, parse: async (damaged) => [...(await readTorchCheckpoint(damaged)).values()] }, 3);
    expect(result.failed).toBeGreaterThan(0);
    expect(result.parsed).toBeGreaterThan(0);
  }, 20_000);

  it('torch pickle fed straight to the unpickler (past the zip CRC)', async () => {
    const archive = await ZipArchive.open(path.join(clipDir, 'pytorch_model.bin'));
    try {
      const pickle = await archive.read(archive.get('pytorch_model/data.pkl')!, 1 << 20);
      const source = { file: archive.file, storage: (key: string) => archive.get(`pytorch_model/data/${key}`) };
      const random = rng(4);
      let failed = 0;
      for (let round = 0; round < TRUNCATIONS + FLIPS; round++) {
        let damaged: Buffer;
        if (round < TRUNCATIONS) {
          damaged = pickle.subarray(0, random(pickle.length));
        } else {
          damaged = Buffer.from(pickle);
          for (let i = 1 + random(3); i > 0; i--) damaged[random(pickle.length)]! ^= 1 + random(255);
        }
        try {
          for (const record of unpickleStateDict(damaged, source).values()) {
            expect(record.offset + record.byteLength).toBeLessThanOrEqual(archive.size);
          }
        } catch (error) {
          if (!(error instanceof StepVideoError) || !ALLOWED.has(error.code)) throw error;
          failed++;
        }
      }
      expect(failed).toBeGreaterThan(TRUNCATIONS - 1); // a cut pickle never reaches its STOP
    } finally {
      await archive.close();
    }
  }, 20_000);
});
