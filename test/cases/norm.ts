// Cases of the normalisation family (native/norm.h) at the model's real widths.
import * as norm from '../../lib/kernels/norm.js';
import { Rng, randn } from '../helpers/random.js';
import type { OpCase } from './types.js';

type Values = Float32Array;

/** The VAE's GroupNorm as a case: eps 1e-5, 32 groups, per frame of x [3 frames, 9, 11, 128]. */
function vaeGroupNorm(name: string, silu: boolean, [frames, w, b]: Values[]): OpCase {
  return {
    name,
    inputs: [
      { shape: [3, 9, 11, 128], data: frames! },
      { shape: [128], data: w! },
      { shape: [128], data: b! },
    ],
    run: ([xt, wt, bt]) => norm.groupNorm(xt!, wt!, bt!, { groups: 32, eps: 1e-5, silu }),
    reference: ([xa, wa, ba]) => groupNormRef(xa!, 3, 99, 128, 32, 1e-5, wa!, ba!, silu),
  };
}

/** The DiT's norm1/norm2 as a case: LayerNorm eps 1e-5, affine, AdaLN-modulated, x [2, tokens, d]. */
function modulatedLayerNorm(name: string, tokens: number, d: number, [x, w, b, scale, shift]: Values[]): OpCase {
  return {
    name,
    inputs: [
      { shape: [2, tokens, d], data: x! },
      { shape: [d], data: w! },
      { shape: [d], data: b! },
      { shape: [2, d], data: scale! },
      { shape: [2, d], data: shift! },
    ],
    run: ([xt, wt, bt, st, ht]) => norm.layerNorm(xt!, { weight: wt!, bias: bt!, scale: st!, shift: ht!, eps: 1e-5 }),
    reference: ([xa, wa, ba, sa, ha]) => layerNormRef(xa!, 2 * tokens, d, 1e-5, wa, ba, sa, ha),
  };
}

/** float64 mean and 1 / sqrt(variance + eps) of row r of x [rows, dim] (two passes), as LayerNorm takes them. */
export function layerNormRowStats(x: ArrayLike<number>, r: number, dim: number, eps: number): { mean: number; rstd: number } {
  let mean = 0;
  for (let j = 0; j < dim; j++) mean += x[r * dim + j]!;
  mean /= dim;
  let v = 0;
  for (let j = 0; j < dim; j++) v += (x[r * dim + j]! - mean) ** 2;
  return { mean, rstd: 1 / Math.sqrt(v / dim + eps) };
}

export function layerNormRef(x: ArrayLike<number>, rows: number, dim: number, eps: number, w?: ArrayLike<number>, b?: ArrayLike<number>, scale?: ArrayLike<number>, shift?: ArrayLike<number>): Float64Array {
  const out = new Float64Array(rows * dim);
  const groups = scale ? scale.length / dim : 1;
  for (let r = 0; r < rows; r++) {
    const { mean, rstd } = layerNormRowStats(x, r, dim, eps);
    const g = Math.floor(r / (rows / groups));
    for (let j = 0; j < dim; j++) {
      let y = (x[r * dim + j]! - mean) * rstd;
      if (w) y *= w[j]!;
      if (b) y += b[j]!;
      if (scale) y *= 1 + scale[g * dim + j]!;
      if (shift) y += shift[g * dim + j]!;
      out[r * dim + j] = y;
    }
  }
  return out;
}

/** float64 RMSNorm over the last `dim` values of each row, times w. */
function rmsNormRef(x: ArrayLike<number>, dim: number, eps: number, w: ArrayLike<number>): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / dim; r++) {
    let ss = 0;
    for (let j = 0; j < dim; j++) ss += x[r * dim + j]! ** 2;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let j = 0; j < dim; j++) out[r * dim + j] = x[r * dim + j]! * inv * w[j]!;
  }
  return out;
}

/** float64 GroupNorm per frame of channels-last x [frames, pixels, channels], optionally + SiLU. */
function groupNormRef(x: ArrayLike<number>, frames: number, pixels: number, channels: number, groups: number, eps: number, w: ArrayLike<number>, b: ArrayLike<number>, silu: boolean): Float64Array {
  const out = new Float64Array(x.length);
  const per = channels / groups;
  for (let f = 0; f < frames; f++)
    for (let g = 0; g < groups; g++) {
      let mean = 0;
      for (let p = 0; p < pixels; p++) for (let c = 0; c < per; c++) mean += x[(f * pixels + p) * channels + g * per + c]!;
      mean /= pixels * per;
      let v = 0;
      for (let p = 0; p < pixels; p++) for (let c = 0; c < per; c++) v += (x[(f * pixels + p) * channels + g * per + c]! - mean) ** 2;
      const inv = 1 / Math.sqrt(v / (pixels * per) + eps);
      for (let p = 0; p < pixels; p++)
        for (let c = 0; c < per; c++) {
          const i = (f * pixels + p) * channels + g * per + c;
          const y = (x[i]! - mean) * inv * w[g * per + c]! + b[g * per + c]!;
          out[i] = silu ? y / (1 + Math.exp(-y)) : y;
        }
    }
  return out;
}

/**
 * Values whose normalisation sets (rows, or the groups of `groupOf`) have a variance comparable to
 * eps, so the epsilon decides the result: set s is a constant offset in [-1e-3, 1e-3] plus Gaussian
 * noise of variance eps · 10^u, u spread evenly over [-1, 1]; set 0 is exactly constant (variance 0).
 * Offsets stay small so that an f32 mean's own rounding (|offset| · 2^-24) stays far below the
 * spread (docs/TOLERANCES.md, "Kernel cases").
 */
function nearEpsValues(rng: Rng, length: number, sets: number, setOf: (i: number) => number, eps: number): Float32Array {
  const offset = Array.from({ length: sets }, () => rng.uniform(-1e-3, 1e-3));
  const std = Array.from({ length: sets }, (_, s) => (s === 0 ? 0 : Math.sqrt(eps * 10 ** (-1 + (2 * (s - 1)) / Math.max(1, sets - 2)))));
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) {
    const s = setOf(i);
    out[i] = offset[s]! + std[s]! * rng.normal();
  }
  return out;
}

export function normCases(): OpCase[] {
  const rng = new Rng(100);
  const D = 6144;
  const rows = 2 * 37;
  const x = randn(rng, rows * D, 2, 0.3);
  const w = randn(rng, D, 0.2, 1);
  const b = randn(rng, D, 0.1);
  const scale = randn(rng, 2 * D, 0.3);
  const shift = randn(rng, 2 * D, 0.3);
  const qk = randn(rng, 2 * 37 * 48 * 128, 1.5);
  const qkWeight = randn(rng, 128, 0.2, 1);
  const frames = randn(rng, 3 * 9 * 11 * 128, 1.3, 0.4);
  const gnW = randn(rng, 128, 0.2, 1);
  const gnB = randn(rng, 128, 0.2);
  return [
    modulatedLayerNorm('layerNorm affine eps 1e-5 + AdaLN modulation (DiT norm1/norm2), D 6144', 37, D, [x, w, b, scale, shift]),
    {
      name: 'layerNorm no affine eps 1e-6 (caption_norm), D 6144',
      inputs: [{ shape: [2, 37, D], data: x }],
      run: ([xt]) => norm.layerNorm(xt!, { eps: 1e-6 }),
      reference: ([xa]) => layerNormRef(xa!, rows, D, 1e-6),
    },
    {
      name: 'layerNorm no affine + modulation (final layer), odd D',
      inputs: [
        { shape: [2, 5, 131], data: x.subarray(0, 2 * 5 * 131) },
        { shape: [2, 131], data: scale.subarray(0, 262) },
        { shape: [2, 131], data: shift.subarray(0, 262) },
      ],
      run: ([xt, st, ht]) => norm.layerNorm(xt!, { scale: st!, shift: ht!, eps: 1e-6 }),
      reference: ([xa, sa, ha]) => layerNormRef(xa!, 10, 131, 1e-6, undefined, undefined, sa, ha),
    },
    {
      name: 'rmsNorm per head (QK-norm), 48 heads x 128',
      inputs: [
        { shape: [2, 37, 48, 128], data: qk },
        { shape: [128], data: qkWeight },
      ],
      run: ([xt, wt]) => norm.rmsNorm(xt!, wt!, 1e-6),
      reference: ([xa, wa]) => rmsNormRef(xa!, 128, 1e-6, wa!),
    },
    ...[false, true].map((silu) => vaeGroupNorm(`groupNorm per frame, 32 groups, 128 channels${silu ? ' + SiLU' : ''}`, silu, [frames, gnW, gnB])),
    ...nearEpsCases(),
  ];
}

/**
 * The norms on rows (groups) whose variance is comparable to their epsilon: there the epsilon moves
 * the output by tens of percent, so a kernel that adds it in the wrong place or with the wrong value
 * fails here, at kernel level. Each case names the epsilon x10 as a mutant: the suites check the
 * output is far from that reference too (the case's sensitivity, not just its agreement).
 */
function nearEpsCases(): OpCase[] {
  const rng = new Rng(101);
  const D = 6144;
  const rowOf = (dim: number) => (i: number) => Math.floor(i / dim);
  const ln5 = nearEpsValues(rng, 8 * D, 8, rowOf(D), 1e-5);
  const ln6 = nearEpsValues(rng, 8 * D, 8, rowOf(D), 1e-6);
  const w = randn(rng, D, 0.2, 1);
  const b = randn(rng, D, 0.1);
  const scale = randn(rng, 2 * D, 0.3);
  const shift = randn(rng, 2 * D, 0.3);
  const qk = nearEpsValues(rng, 2 * 8 * 128, 16, rowOf(128), 1e-6);
  const qkWeight = randn(rng, 128, 0.2, 1);
  // Sets are (frame, group): 3 frames of 9x11 pixels, 32 groups of 4 channels.
  const frames = nearEpsValues(rng, 3 * 99 * 128, 3 * 32, (i) => Math.floor(i / (99 * 128)) * 32 + Math.floor((i % 128) / 4), 1e-5);
  const gnW = randn(rng, 128, 0.2, 1);
  const gnB = randn(rng, 128, 0.2);
  const epsTimes10 = 'epsilon x10';
  return [
    {
      ...modulatedLayerNorm('layerNorm affine eps 1e-5 + AdaLN modulation, rows of variance 1e-6..1e-4 (near eps), D 6144', 4, D, [ln5, w, b, scale, shift]),
      mutants: [{ defect: epsTimes10, reference: ([xa, wa, ba, sa, ha]) => layerNormRef(xa!, 8, D, 1e-4, wa, ba, sa, ha) }],
    },
    {
      name: 'layerNorm no affine eps 1e-6, rows of variance 1e-7..1e-5 (near eps), D 6144',
      inputs: [{ shape: [2, 4, D], data: ln6 }],
      run: ([xt]) => norm.layerNorm(xt!, { eps: 1e-6 }),
      reference: ([xa]) => layerNormRef(xa!, 8, D, 1e-6),
      mutants: [{ defect: epsTimes10, reference: ([xa]) => layerNormRef(xa!, 8, D, 1e-5) }],
    },
    {
      name: 'rmsNorm per head eps 1e-6, rows of mean square 1e-7..1e-5 (near eps), 8 heads x 128',
      inputs: [
        { shape: [2, 1, 8, 128], data: qk },
        { shape: [128], data: qkWeight },
      ],
      run: ([xt, wt]) => norm.rmsNorm(xt!, wt!, 1e-6),
      reference: ([xa, wa]) => rmsNormRef(xa!, 128, 1e-6, wa!),
      mutants: [{ defect: epsTimes10, reference: ([xa, wa]) => rmsNormRef(xa!, 128, 1e-5, wa!) }],
    },
    ...[false, true].map(
      (silu): OpCase => ({
        ...vaeGroupNorm(`groupNorm eps 1e-5${silu ? ' + SiLU' : ''}, groups of variance 1e-6..1e-4 (near eps), 32 groups, 128 channels`, silu, [frames, gnW, gnB]),
        mutants: [{ defect: epsTimes10, reference: ([xa, wa, ba]) => groupNormRef(xa!, 3, 99, 128, 32, 1e-4, wa!, ba!, silu) }],
      }),
    ),
  ];
}
