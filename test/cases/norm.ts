// Cases of the normalisation family (native/norm.h) at the model's real widths.
import * as norm from '../../lib/kernels/norm.js';
import { Rng, randn, randu } from '../helpers/random.js';
import type { OpCase } from './types.js';

function layerNormRef(x: ArrayLike<number>, rows: number, dim: number, eps: number, w?: ArrayLike<number>, b?: ArrayLike<number>, scale?: ArrayLike<number>, shift?: ArrayLike<number>): Float64Array {
  const out = new Float64Array(rows * dim);
  const groups = scale ? scale.length / dim : 1;
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let j = 0; j < dim; j++) mean += x[r * dim + j]!;
    mean /= dim;
    let v = 0;
    for (let j = 0; j < dim; j++) v += (x[r * dim + j]! - mean) ** 2;
    const inv = 1 / Math.sqrt(v / dim + eps);
    const g = Math.floor(r / (rows / groups));
    for (let j = 0; j < dim; j++) {
      let y = (x[r * dim + j]! - mean) * inv;
      if (w) y *= w[j]!;
      if (b) y += b[j]!;
      if (scale) y *= 1 + scale[g * dim + j]!;
      if (shift) y += shift[g * dim + j]!;
      out[r * dim + j] = y;
    }
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
  const res = randn(rng, 2 * 37 * 512);
  const upd = randn(rng, 2 * 37 * 512);
  const gate = randu(rng, 2 * 512, -1, 1);
  return [
    {
      name: 'layerNorm affine eps 1e-5 + AdaLN modulation (DiT norm1/norm2), D 6144',
      inputs: [
        { shape: [2, 37, D], data: x },
        { shape: [D], data: w },
        { shape: [D], data: b },
        { shape: [2, D], data: scale },
        { shape: [2, D], data: shift },
      ],
      run: ([xt, wt, bt, st, ht]) => norm.layerNorm(xt!, { weight: wt!, bias: bt!, scale: st!, shift: ht!, eps: 1e-5 }),
      reference: ([xa, wa, ba, sa, ha]) => layerNormRef(xa!, rows, D, 1e-5, wa, ba, sa, ha),
    },
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
      reference: ([xa, wa]) => {
        const xs = xa!;
        const out = new Float64Array(xs.length);
        for (let r = 0; r < xs.length / 128; r++) {
          let ss = 0;
          for (let j = 0; j < 128; j++) ss += xs[r * 128 + j]! ** 2;
          const inv = 1 / Math.sqrt(ss / 128 + 1e-6);
          for (let j = 0; j < 128; j++) out[r * 128 + j] = xs[r * 128 + j]! * inv * wa![j]!;
        }
        return out;
      },
    },
    ...[false, true].map(
      (silu): OpCase => ({
        name: `groupNorm per frame, 32 groups, 128 channels${silu ? ' + SiLU' : ''}`,
        inputs: [
          { shape: [3, 9, 11, 128], data: frames },
          { shape: [128], data: gnW },
          { shape: [128], data: gnB },
        ],
        run: ([xt, wt, bt]) => norm.groupNorm(xt!, wt!, bt!, { groups: 32, eps: 1e-5, silu }),
        reference: ([xa, wa, ba]) => {
          const xs = xa!;
          const out = new Float64Array(xs.length);
          const pixels = 99;
          for (let f = 0; f < 3; f++)
            for (let g = 0; g < 32; g++) {
              let mean = 0;
              for (let p = 0; p < pixels; p++) for (let c = 0; c < 4; c++) mean += xs[(f * pixels + p) * 128 + g * 4 + c]!;
              mean /= pixels * 4;
              let v = 0;
              for (let p = 0; p < pixels; p++) for (let c = 0; c < 4; c++) v += (xs[(f * pixels + p) * 128 + g * 4 + c]! - mean) ** 2;
              const inv = 1 / Math.sqrt(v / (pixels * 4) + 1e-5);
              for (let p = 0; p < pixels; p++)
                for (let c = 0; c < 4; c++) {
                  const i = (f * pixels + p) * 128 + g * 4 + c;
                  const y = (xs[i]! - mean) * inv * wa![g * 4 + c]! + ba![g * 4 + c]!;
                  out[i] = silu ? y / (1 + Math.exp(-y)) : y;
                }
            }
          return out;
        },
      }),
    ),
    {
      name: 'gatedResidual x + gate*y, gate per batch',
      inputs: [
        { shape: [2, 37, 512], data: res },
        { shape: [2, 37, 512], data: upd },
        { shape: [2, 512], data: gate },
      ],
      run: ([xt, yt, gt]) => norm.gatedResidual(xt!, yt!, gt!),
      reference: ([xa, ya, ga]) => Float64Array.from(xa!, (v, i) => v + ga![Math.floor(i / (37 * 512)) * 512 + (i % 512)]! * ya![i]!),
    },
    {
      name: 'gatedResidual without gate (cross-attention residual)',
      inputs: [
        { shape: [2, 37, 512], data: res },
        { shape: [2, 37, 512], data: upd },
      ],
      run: ([xt, yt]) => norm.gatedResidual(xt!, yt!),
      reference: ([xa, ya]) => Float64Array.from(xa!, (v, i) => v + ya![i]!),
    },
  ];
}
