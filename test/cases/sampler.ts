// Cases of the sampler family (native/sampler.h): the fused guidance + Euler step, and the next
// model input it writes. The latents x are always f32 (forced dtype); the velocity takes the
// backend's float dtype. The bf16 rounding points of guidance are checked exactly in
// test/gpu/sampler.test.ts.
import type { DType } from '../../lib/dtype.js';
import { cfgEulerStep } from '../../lib/kernels/sampler.js';
import { randomNormal } from '../../lib/kernels/random.js';
import * as ops from '../../lib/ops.js';
import { Tensor } from '../../lib/tensor.js';
import { Rng, randn } from '../helpers/random.js';
import type { LargeCase, OpCase } from './types.js';

/** float64 x + v·dt with v = u + g·(c − u) under guidance (velocity = [c; u]), v = velocity without. */
function eulerReference(x: ArrayLike<number>, velocity: ArrayLike<number>, dt: number, guidanceScale?: number): Float64Array {
  const n = x.length;
  return Float64Array.from({ length: n }, (_, i) => {
    const c = velocity[i]!;
    const v = guidanceScale === undefined ? c : velocity[n + i]! + guidanceScale * (c - velocity[n + i]!);
    return x[i]! + v * dt;
  });
}

function updated(x: Tensor, velocity: Tensor, dt: number, guidanceScale?: number): Tensor {
  const out = x.clone();
  cfgEulerStep(out, velocity, { dt, ...(guidanceScale !== undefined ? { guidanceScale } : {}) });
  return out;
}

export function samplerCases(): OpCase[] {
  const rng = new Rng(404);
  const shape = [2, 3, 5, 7, 3]; // odd, not a multiple of any vector width
  const n = shape.reduce((a, b) => a * b, 1);
  const x = randn(rng, n);
  const cond = randn(rng, 2 * n, 1.2, 0.1);
  const dt = 0.037037;
  return [
    {
      name: 'cfgEulerStep guidance 9: x + (u + 9(c - u))·dt in f32',
      inputs: [
        { shape, data: x, dtype: 'f32' },
        { shape: [4, ...shape.slice(1)], data: cond },
      ],
      run: ([xt, vt]) => updated(xt!, vt!, dt, 9),
      reference: ([xa, va]) => eulerReference(xa!, va!, dt, 9),
      bf16: false,
    },
    {
      name: 'cfgEulerStep guidance 5: the next model input [x, x] in the model dtype',
      inputs: [
        { shape, data: x, dtype: 'f32' },
        { shape: [4, ...shape.slice(1)], data: cond },
      ],
      run: ([xt, vt]) => {
        using copy = xt!.clone();
        const next = Tensor.empty(vt!.shape, vt!.dtype, vt!.device);
        cfgEulerStep(copy, vt!, { dt, guidanceScale: 5, nextInput: next });
        return next;
      },
      reference: ([xa, va]) => {
        const stepped = eulerReference(xa!, va!, dt, 5);
        const both = new Float64Array(2 * n);
        both.set(stepped, 0);
        both.set(stepped, n);
        return both;
      },
    },
    {
      name: 'cfgEulerStep without guidance: plain Euler x + v·dt, dt 0.6',
      inputs: [
        { shape, data: x, dtype: 'f32' },
        { shape, data: cond.subarray(0, n) },
      ],
      run: ([xt, vt]) => updated(xt!, vt!, 0.6),
      reference: ([xa, va]) => eulerReference(xa!, va!, 0.6),
      bf16: false,
    },
  ];
}

// Real size: 544×992×204 latents, guidance 9, the first dt of a 50-step shift-13 schedule ×10 (so
// the update is visible next to x). Windows at the start, an odd middle offset and the end.
const REAL_SHAPE = [1, 36, 64, 34, 62];
const REAL_COUNT = REAL_SHAPE.reduce((a, b) => a * b, 1);
const WINDOWS = [
  [0, 4096],
  [1_234_567, 4099],
  [REAL_COUNT - 4097, 4097],
] as const;
const REAL_DT = 0.0156742;

export function samplerLargeCases(): LargeCase[] {
  let inputs: { x: Tensor; velocity: Tensor } | undefined;
  // Inputs made on the GPU by the noise kernel; the velocity is bf16 so both dtype runs (and the
  // CPU twin) see the very same values.
  const made = () =>
    (inputs ??= {
      x: randomNormal(REAL_SHAPE, { seed: 1, device: 'cuda' }),
      velocity: randomNormal([2, ...REAL_SHAPE.slice(1)], { seed: 2, dtype: 'bf16', device: 'cuda' }),
    });
  return [
    {
      name: 'cfgEulerStep real latents [1, 36, 64, 34, 62], guidance 9',
      async runGpu(dtype: DType) {
        const { x, velocity } = made();
        using v = ops.cast(velocity, dtype);
        const out = updated(x, v, REAL_DT, 9);
        if (dtype === 'bf16') {
          // The suite runs f32 then bf16: the inputs are not needed after this.
          x.dispose();
          velocity.dispose();
          inputs = undefined;
        }
        return out;
      },
      async runCpuSample() {
        const { x, velocity } = made();
        const xs = await x.toFloat32();
        const vs = await velocity.toFloat32();
        const parts: Float32Array[] = [];
        for (const [start, length] of WINDOWS) {
          const v = new Float32Array(2 * length);
          v.set(vs.subarray(start, start + length), 0);
          v.set(vs.subarray(REAL_COUNT + start, REAL_COUNT + start + length), length);
          using xc = Tensor.from(xs.slice(start, start + length), [length], { device: 'cpu' });
          using vc = Tensor.from(v, [2 * length], { device: 'cpu' });
          using out = updated(xc, vc, REAL_DT, 9);
          parts.push((await out.toFloat32()).slice());
        }
        return concat(parts);
      },
      sample: (output) => concat(WINDOWS.map(([start, length]) => output.subarray(start, start + length))),
      // f32: the same roundings in the same order; bf16: guidance is combined in bf16 on the GPU
      // (three roundings of |g·(c − u)| ≈ 12 at 2^-9, times dt) but in f32 on the CPU twin.
      tolerance: { f32: 1e-6, bf16: 2e-3 },
    },
  ];
}

function concat(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
