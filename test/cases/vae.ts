// Cases of the VAE fusions (native/vae.h) and of GroupNorm at the VAE's shapes: GroupNorm's CUDA
// path for video frames (cuda/norm.cu) splits a frame into chunks and merges partial moments, so
// these shapes span several chunks per frame, a large mean (the shifted sums must not cancel), odd
// channel counts (the scalar path) and the decoder's real widths (largeCases).
import type { DType } from '../../lib/dtype.js';
import { groupNorm } from '../../lib/kernels/norm.js';
import { randomNormal } from '../../lib/kernels/random.js';
import { upsampleResidual } from '../../lib/kernels/vae.js';
import * as ops from '../../lib/ops.js';
import { Tensor } from '../../lib/tensor.js';
import { fitEmulated } from '../helpers/gpu.js';
import { Rng, randn } from '../helpers/random.js';
import type { LargeCase, OpCase } from './types.js';

/** float64 SiLU(h + up(x)) + up(x), h [T, H, W, C], x [T/ut, H/us, W/us, C]. */
export function upsampleResidualRef(h: ArrayLike<number>, x: ArrayLike<number>, shape: number[], ut: number, us: number): Float64Array {
  const [T, H, W, C] = shape as [number, number, number, number];
  const out = new Float64Array(h.length);
  for (let t = 0; t < T; t++)
    for (let y = 0; y < H; y++)
      for (let w = 0; w < W; w++)
        for (let c = 0; c < C; c++) {
          const i = ((t * H + y) * W + w) * C + c;
          const r = x[((Math.floor(t / ut) * (H / us) + Math.floor(y / us)) * (W / us) + Math.floor(w / us)) * C + c]!;
          const s = h[i]! + r;
          out[i] = s / (1 + Math.exp(-s)) + r;
        }
  return out;
}

/** float64 GroupNorm per frame of channels-last [F, H, W, C], optionally + SiLU. */
export function groupNormRef(x: ArrayLike<number>, shape: number[], groups: number, w: ArrayLike<number>, b: ArrayLike<number>, silu: boolean): Float64Array {
  const C = shape[shape.length - 1]!, pixels = shape[shape.length - 2]! * shape[shape.length - 3]!;
  const frames = x.length / (pixels * C), per = C / groups;
  const out = new Float64Array(x.length);
  for (let f = 0; f < frames; f++)
    for (let g = 0; g < groups; g++) {
      let mean = 0;
      for (let p = 0; p < pixels; p++) for (let c = 0; c < per; c++) mean += x[(f * pixels + p) * C + g * per + c]!;
      mean /= pixels * per;
      let v = 0;
      for (let p = 0; p < pixels; p++) for (let c = 0; c < per; c++) v += (x[(f * pixels + p) * C + g * per + c]! - mean) ** 2;
      const inv = 1 / Math.sqrt(v / (pixels * per) + 1e-5);
      for (let p = 0; p < pixels; p++)
        for (let c = 0; c < per; c++) {
          const i = (f * pixels + p) * C + g * per + c;
          const y = (x[i]! - mean) * inv * w[g * per + c]! + b[g * per + c]!;
          out[i] = silu ? y / (1 + Math.exp(-y)) : y;
        }
    }
  return out;
}

function upsampleResidualCase(name: string, shape: [number, number, number, number], ut: number, us: number, seed: number, inPlace = false): OpCase {
  const [T, H, W, C] = shape;
  const rng = new Rng(seed);
  const small = [T / ut, H / us, W / us, C];
  return {
    name,
    inputs: [
      { shape, data: randn(rng, T * H * W * C, 1.5) },
      { shape: small, data: randn(rng, small.reduce((a, b) => a * b, 1), 1.5) },
    ],
    // In place overwrites the case's own input tensor, which the suites do not read again.
    run: ([h, x]) => {
      const out = upsampleResidual(h!, x!, { time: ut, space: us, inPlace });
      return inPlace ? out.clone() : out;
    },
    reference: ([h, x]) => upsampleResidualRef(h!, x!, shape, ut, us),
  };
}

function groupNormCase(name: string, shape: number[], groups: number, silu: boolean, seed: number, mean = 0): OpCase {
  const rng = new Rng(seed);
  const C = shape[shape.length - 1]!;
  const count = shape.reduce((a, b) => a * b, 1);
  return {
    name,
    inputs: [
      { shape, data: randn(rng, count, 0.7, mean) },
      { shape: [C], data: randn(rng, C, 0.2, 1) },
      { shape: [C], data: randn(rng, C, 0.2) },
    ],
    run: ([x, w, b]) => groupNorm(x!, w!, b!, { groups, silu }),
    reference: ([x, w, b]) => groupNormRef(x!, shape, groups, w!, b!, silu),
    tolerance: 1e-5,
  };
}

export function vaeCases(): OpCase[] {
  return [
    upsampleResidualCase('upsampleResidual x2 in T,H,W (Upsample3D), 32 channels (vector path)', [4, 6, 10, 32], 2, 2, 600),
    upsampleResidualCase('upsampleResidual x2 in T,H,W, in place', [2, 4, 6, 16], 2, 2, 601, true),
    upsampleResidualCase('upsampleResidual, 5 channels (scalar path), space x2 only', [3, 4, 2, 5], 1, 2, 602),
    groupNormCase('groupNorm+SiLU per frame, 64 channels, 2 frames of 37x41 (several chunks per frame)', [2, 37, 41, 64], 32, true, 610),
    groupNormCase('groupNorm per frame, mean 40 over std 0.7 (no cancellation), 128 channels, 2 frames 23x29', [2, 23, 29, 128], 32, false, 611, 40),
    groupNormCase('groupNorm+SiLU, 96 channels (3 per group), 3 frames 7x9', [3, 7, 9, 96], 32, true, 612),
    groupNormCase('groupNorm+SiLU, 36 channels in 4 groups (scalar path), 2 frames 5x7', [2, 5, 7, 36], 4, true, 613),
    groupNormCase('groupNorm+SiLU at the real width 512, 2 frames 5x7', [2, 5, 7, 512], 32, true, 614),
  ];
}

// ---- real sizes ----

/**
 * Seeded random channels-last video on the GPU, mean + std · N(0, 1) from the counter-based generator
 * (randomNormal: Philox of the element's index): every element drawn on its own, no period in any
 * axis. Made and scaled in bf16, returned as f32 holding those bf16 values: the f32 run, the bf16 run
 * and the CPU twin see the same numbers.
 */
function randomVideoOnGpu(shape: [number, number, number, number], seed: number, mean: number, std: number): Tensor {
  using scaled = (() => {
    using unit = randomNormal(shape, { seed, dtype: 'bf16', device: 'cuda' });
    return ops.affine(unit, std, mean);
  })();
  return ops.cast(scaled, 'f32');
}

async function framesToCpu(t: Tensor, start: number, count: number): Promise<Tensor> {
  using view = t.narrow(start, count);
  using f32 = ops.cast(view, 'f32');
  return f32.to('cpu');
}

function largeGroupNormCase(name: string, shape: [number, number, number, number], silu: boolean, seed: number, frame: number): LargeCase {
  const C = shape[3];
  let made: { x: Tensor; w: Tensor; b: Tensor } | undefined;
  const inputs = () =>
    (made ??= {
      x: randomVideoOnGpu(shape, seed, 0.5, 1.3),
      w: Tensor.from(randn(new Rng(seed + 1), C, 0.2, 1), [C], { device: 'cuda' }),
      b: Tensor.from(randn(new Rng(seed + 2), C, 0.2), [C], { device: 'cuda' }),
    });
  return {
    name,
    async runGpu(dtype: DType) {
      const { x, w, b } = inputs();
      using xd = ops.cast(x, dtype);
      using wd = ops.cast(w, dtype);
      using bd = ops.cast(b, dtype);
      using out = groupNorm(xd, wd, bd, { silu });
      if (dtype === 'bf16') {
        for (const t of Object.values(made!)) t.dispose();
        made = undefined;
      }
      return framesToCpu(out, frame, 1);
    },
    async runCpuSample() {
      const { x, w, b } = inputs();
      using xc = await framesToCpu(x, frame, 1);
      using wc = await w.to('cpu');
      using bc = await b.to('cpu');
      using out = groupNorm(xc, wc, bc, { silu });
      return out.toFloat32();
    },
    sample: (output) => output,
    tolerance: { f32: 1e-5, bf16: 6e-3 },
  };
}

function largeUpsampleResidualCase(name: string, shape: [number, number, number, number], seed: number): LargeCase {
  const [T, H, W, C] = shape;
  let made: { h: Tensor; x: Tensor } | undefined;
  const inputs = () => (made ??= { h: randomVideoOnGpu(shape, seed, 0, 1.5), x: randomVideoOnGpu([T / 2, H / 2, W / 2, C], seed + 1, 0, 1.5) });
  return {
    name,
    async runGpu(dtype: DType) {
      const { h, x } = inputs();
      using hd = ops.cast(h, dtype);
      using xd = ops.cast(x, dtype);
      using out = upsampleResidual(hd, xd, { time: 2, space: 2 });
      if (dtype === 'bf16') {
        for (const t of Object.values(made!)) t.dispose();
        made = undefined;
      }
      return framesToCpu(out, T - 2, 2);
    },
    async runCpuSample() {
      const { h, x } = inputs();
      using hc = await framesToCpu(h, T - 2, 2);
      using xc = await framesToCpu(x, T / 2 - 1, 1);
      using out = upsampleResidual(hc, xc, { time: 2, space: 2 });
      return out.toFloat32();
    },
    sample: (output) => output,
    tolerance: { f32: 1e-6, bf16: 6e-3 },
  };
}

export function vaeLargeCases(): LargeCase[] {
  // On the emulated device (test/helpers/gpu.ts): the same channels and frame counts over smaller
  // frames; the upsampling residual over two frames.
  const frames = (real: [number, number, number, number], emulated: [number, number, number, number]) => {
    const fitted = fitEmulated(real, emulated, `frames ${real[1]}x${real[2]} -> ${emulated[1]}x${emulated[2]} to fit CI time`);
    return { shape: fitted.value, note: fitted.note };
  };
  const up0 = frames([3, 544, 992, 128], [3, 34, 62, 128]);
  const up1 = frames([4, 272, 496, 256], [4, 34, 62, 256]);
  const mid = frames([5, 68, 124, 512], [5, 17, 31, 512]);
  const up2 = fitEmulated<[number, number, number, number]>([20, 272, 496, 512], [2, 34, 62, 512], '20x272x496 -> 2x34x62 to fit CI time');
  return [
    largeGroupNormCase(`groupNorm+SiLU decoder up.0: 128 channels, 3 frames of 544x992${up0.note}`, up0.shape, true, 620, 2),
    largeGroupNormCase(`groupNorm+SiLU decoder up.1: 256 channels, 4 frames of 272x496${up1.note}`, up1.shape, true, 621, 1),
    largeGroupNormCase(`groupNorm (no SiLU) decoder mid: 512 channels, 5 frames of 68x124${mid.note}`, mid.shape, false, 622, 4),
    largeUpsampleResidualCase(`upsampleResidual decoder up.2: 512 channels, 10x136x248 -> 20x272x496${up2.note}`, up2.value, 623),
  ];
}
