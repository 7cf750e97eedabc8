// Cases of the random family (native/random.h) against the BigInt/float64 reference stream
// (test/helpers/philox.ts). The one input only says where to generate (its device and float dtype).
import { randomNormal } from '../../lib/kernels/random.js';
import type { DType } from '../../lib/dtype.js';
import { normalStream } from '../helpers/philox.js';
import type { LargeCase, OpCase } from './types.js';

const anchor = { shape: [1], data: new Float32Array(1) };

function streamCase(name: string, shape: number[], seed: bigint, offset: number): OpCase {
  const count = shape.reduce((a, b) => a * b, 1);
  return {
    name,
    inputs: [anchor],
    run: ([where]) => randomNormal(shape, { seed, offset, dtype: where!.dtype, device: where!.device }),
    reference: () => normalStream(seed, offset, count),
  };
}

export function randomCases(): OpCase[] {
  return [
    streamCase('randomNormal [3, 37, 5] from offset 3 (partial first and last blocks)', [3, 37, 5], 0x1234_5678_9abcn, 3),
    streamCase('randomNormal, 64-bit seed and a counter beyond 2^32 blocks', [2, 1001], (1n << 63n) + 12345n, 2 ** 40 + 1),
    streamCase('randomNormal latents [1, 3, 64, 4, 6], seed 0', [1, 3, 64, 4, 6], 0n, 0),
  ];
}

/** Windows of the real latent stream: the start, an odd offset in the middle, the end. */
const REAL_SHAPE = [1, 36, 64, 34, 62];
const REAL_COUNT = REAL_SHAPE.reduce((a, b) => a * b, 1);
const WINDOWS = [
  [0, 4096],
  [2_417_683, 4099],
  [REAL_COUNT - 4097, 4097],
] as const;

export function randomLargeCases(): LargeCase[] {
  const seed = 20250217n;
  return [
    {
      name: 'randomNormal real latents [1, 36, 64, 34, 62]: CUDA equals the CPU bit for bit in f32',
      runGpu: async (dtype: DType) => randomNormal(REAL_SHAPE, { seed, dtype, device: 'cuda' }),
      async runCpuSample() {
        const parts: Float32Array[] = [];
        for (const [start, length] of WINDOWS) {
          using window = randomNormal([length], { seed, offset: start, device: 'cpu' });
          parts.push((await window.toFloat32()).slice());
        }
        return concatArrays(parts);
      },
      sample: (output) => concatArrays(WINDOWS.map(([start, length]) => output.subarray(start, start + length))),
      // f32: identical bits; bf16: the same values rounded once to bf16, nothing else.
      exact: true,
      tolerance: { f32: 0, bf16: 0 },
    },
  ];
}

function concatArrays(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
