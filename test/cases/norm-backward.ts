// Cases of the LayerNorm backward (native/norm.h, layer_norm_backward): the input gradient of the
// DiT's norm1/norm2 (affine + AdaLN modulation, eps 1e-5) and of its final layer (no affine,
// modulation, eps 1e-6), batch 2 so the modulation has two groups, against a float64 reference.
//
// Tolerances (docs/TOLERANCES.md, "Backward kernel cases"), derived before any run:
// - dx = rstd·(g - mean(g) - x̂·mean(g·x̂)) removes g's components along 1 and x̂. The inputs give dy
//   a mean (0.4) and a part along x̂ (0.3) on top of unit noise, so g is about 1.2x the size of dx:
//   rounding errors of g's terms are amplified by about 1.2, no more.
// - CPU twin: statistics and g in double from the f32 inputs, dx rounded once to f32 (rel 6e-8):
//   the default 2e-6 holds with a wide margin.
// - CUDA f32: f32 statistics and block sums (tree order, row length <= 6144): a few f32 roundings
//   (u = 6e-8) per element, times the 1.2 above: about 1e-6, so the suite's 1e-5 floor holds.
// - CUDA bf16: the reference is computed on the bf16-rounded inputs; the kernel computes in f32
//   (1e-6 as above) and rounds dx once: bf16Tolerance (twice one rounding + 1e-3) holds.
// Mutants (each must lie more than 10x the bound away; bf16's bound is about 4.3e-3): dropping the
// mean(g) term moves dx by about mean(g)/|g - projections| = 0.4·1.0/1.1 = 0.36, dropping
// x̂·mean(g·x̂) by about 0.3/1.1 = 0.27, leaving out the weight (1 ± 0.2) or (1 + scale)
// (scale ~ N(0, 0.3²)) by about 0.2 and 0.3, taking the other group's scale by about 0.4.
import * as norm from '../../lib/kernels/norm.js';
import { Rng, randn } from '../helpers/random.js';
import { layerNormRowStats } from './norm.js';
import type { OpCase } from './types.js';

/**
 * float64 dx of layerNormRef (test/cases/norm.ts) for dy: the chain rule written out per row, with
 * the modulation's group of row r being floor(r / (rows / groups)) as in the forward.
 */
export function layerNormBackwardRef(
  dy: ArrayLike<number>, x: ArrayLike<number>, rows: number, dim: number, eps: number,
  w?: ArrayLike<number>, scale?: ArrayLike<number>,
  defect: 'none' | 'no mean(g)' | 'no mean(g·x̂)' | 'no weight' | 'no modulation' | 'other group' = 'none',
): Float64Array {
  const dx = new Float64Array(rows * dim);
  const groups = scale ? scale.length / dim : 1;
  const g = new Float64Array(dim);
  const xhat = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    const { mean, rstd } = layerNormRowStats(x, r, dim, eps);
    let group = Math.floor(r / (rows / groups));
    if (defect === 'other group') group = groups - 1 - group;
    let meanG = 0;
    let meanGx = 0;
    for (let j = 0; j < dim; j++) {
      xhat[j] = (x[r * dim + j]! - mean) * rstd;
      let gj = dy[r * dim + j]!;
      if (w && defect !== 'no weight') gj *= w[j]!;
      if (scale && defect !== 'no modulation') gj *= 1 + scale[group * dim + j]!;
      g[j] = gj;
      meanG += gj;
      meanGx += gj * xhat[j]!;
    }
    meanG = defect === 'no mean(g)' ? 0 : meanG / dim;
    meanGx = defect === 'no mean(g·x̂)' ? 0 : meanGx / dim;
    for (let j = 0; j < dim; j++) dx[r * dim + j] = rstd * (g[j]! - meanG - xhat[j]! * meanGx);
  }
  return dx;
}

/**
 * Gradients like a loss's: a mean of 0.4 and a part along the row's normalised x (x is N(0.3, 2²),
 * so (x - 0.3)/2 approximates x̂) on top of unit noise, so that both subtracted terms of dx are far
 * above rounding (see the mutants above).
 */
function gradientFor(rng: Rng, x: Float32Array): Float32Array {
  return Float32Array.from(x, (v) => 0.4 + 0.3 * ((v - 0.3) / 2) + rng.normal());
}

interface Spec {
  name: string;
  tokens: number;
  dim: number;
  affine: boolean;
  eps: number;
  seed: number;
}

function backwardCase({ name, tokens, dim, affine, eps, seed }: Spec): OpCase {
  const rng = new Rng(seed);
  const rows = 2 * tokens;
  const x = randn(rng, rows * dim, 2, 0.3);
  const dy = gradientFor(rng, x);
  const w = randn(rng, dim, 0.2, 1);
  const scale = randn(rng, 2 * dim, 0.3);
  const inputs = [
    { shape: [2, tokens, dim], data: dy },
    { shape: [2, tokens, dim], data: x },
    ...(affine ? [{ shape: [dim], data: w }] : []),
    { shape: [2, dim], data: scale },
  ];
  // Inputs in order: dy, x, (weight), scale.
  const split = <T>(values: T[]): { dy: T; x: T; w: T | undefined; scale: T } => ({
    dy: values[0]!, x: values[1]!, w: affine ? values[2]! : undefined, scale: values[affine ? 3 : 2]!,
  });
  const ref = (values: Array<ArrayLike<number>>, defect?: Parameters<typeof layerNormBackwardRef>[7]) => {
    const v = split(values);
    return layerNormBackwardRef(v.dy, v.x, rows, dim, eps, v.w, v.scale, defect);
  };
  const defects = ['no mean(g)', 'no mean(g·x̂)', 'no modulation', 'other group', ...(affine ? ['no weight' as const] : [])] as const;
  return {
    name,
    inputs,
    run: (tensors) => {
      const t = split(tensors);
      return norm.layerNormBackward(t.dy, t.x, { ...(t.w ? { weight: t.w } : {}), scale: t.scale, eps });
    },
    reference: (values) => ref(values),
    mutants: defects.map((defect) => ({ defect, reference: (values: Array<ArrayLike<number>>) => ref(values, defect) })),
  };
}

export function normBackwardCases(): OpCase[] {
  return [
    backwardCase({ name: 'layerNormBackward affine + AdaLN modulation (DiT norm1/norm2), eps 1e-5, D 1536, batch 2 x 19 tokens', tokens: 19, dim: 1536, affine: true, eps: 1e-5, seed: 120 }),
    backwardCase({ name: 'layerNormBackward affine + AdaLN modulation at the DiT width, eps 1e-5, D 6144, batch 2 x 3 tokens', tokens: 3, dim: 6144, affine: true, eps: 1e-5, seed: 121 }),
    backwardCase({ name: 'layerNormBackward no affine + modulation (final layer), eps 1e-6, D 384, batch 2 x 7 tokens', tokens: 7, dim: 384, affine: false, eps: 1e-6, seed: 122 }),
    backwardCase({ name: 'layerNormBackward no affine + modulation, odd D 131 (any width), eps 1e-6, batch 2 x 5 tokens', tokens: 5, dim: 131, affine: false, eps: 1e-6, seed: 123 }),
  ];
}
