// Cases of the head-split backward (native/split_heads.h, split_heads_backward): the gradients of q,
// k and v scattered back into the fused projection's layout through RoPE's transpose and the QK-Norm
// (RMSNorm) backward, against a float64 reference. Layouts of the DiT: self-attention [q|k|v] with
// both norms and 3D RoPE (head dim 128 split [64, 32, 32]), cross-attention keys [k|v] with the
// k-norm, queries [q] with the q-norm; and a part whose gradient is missing (zero in dproj).
//
// Tolerances (docs/TOLERANCES.md, "Backward kernel cases"), derived before any run:
// - Per element: a rotation (two products) and dx = rstd·(g - n·mean(g·n)) with g = d·w; the grads
//   carry a part along the forward's output (0.5x) on top of unit noise, so g - n·mean(g·n) cancels
//   little (the subtracted term is about 0.4 of g).
// - CPU twin: double arithmetic from the f32 inputs, one rounding to f32: the default 2e-6 holds.
// - CUDA f32: f32 products, fmaf, warp sums over 128 elements: a few f32 roundings (6e-8) per
//   element, about 5e-7: the suite's 1e-5 floor holds.
// - CUDA bf16: the reference is computed on the bf16-rounded inputs (the RoPE table stays f32 on
//   both sides); the kernel computes in f32 and rounds once: bf16Tolerance holds. The forward's
//   rounding of n to the dtype before the weight is not differentiated by the op (straight-through),
//   and the reference has no rounding there either: it is the op's definition, not an error source.
// Mutants (more than 10x the bound, bf16's about 4.3e-3, away): RoPE applied forward (+angle)
// instead of transposed moves q and k by about |2 sin| (order 1 away from position 0);
// dropping n·mean(g·n) by about 0.4 of q's and k's gradient; leaving out the norm weight
// (uniform in [0.5, 1.5]) by about 0.3. Each is diluted by the v part (a third of the norm) at most.
import { Rope3D, ropeCosSin } from '../../lib/kernels/rope.js';
import { type HeadPart, splitHeadsBackward } from '../../lib/kernels/split-heads.js';
import type { Tensor } from '../../lib/tensor.js';
import { Rng, randn, randu } from '../helpers/random.js';
import { SPLIT, type SplitGeometry, type SplitSpec, ditCrossAttention, ditSelfAttention, gridPosition, rope3dRef, splitHeadsRef } from './split-heads.js';
import type { OpCase, OpInput } from './types.js';

export type { SplitGeometry } from './split-heads.js';

type Defect = 'none' | 'rope +angle' | 'no n·mean(g·n)' | 'no weight';

/**
 * float64 dproj [B, N, H·parts·Dh] for the gradients of the parts ([B, H, N, Dh] each, absent: zero),
 * the forward's input proj and the norm weights (absent: no norm), eps as the forward's (1e-6).
 */
export function splitHeadsBackwardRef(
  proj: ArrayLike<number>, geometry: SplitGeometry, grads: Partial<Record<HeadPart, ArrayLike<number>>>,
  weights: { q?: ArrayLike<number>; k?: ArrayLike<number> }, eps = 1e-6, defect: Defect = 'none',
): Float64Array {
  const { B, N, H, Dh, layout, rope } = geometry;
  const P = layout.length;
  const tables = rope ? SPLIT.map((width, axis) => ropeCosSin(rope.grid[axis]!, width, { angles: rope.angles })) : [];
  const dproj = new Float64Array(B * N * H * P * Dh);
  const d = new Float64Array(Dh);
  for (let b = 0; b < B; b++)
    for (let n = 0; n < N; n++)
      for (let h = 0; h < H; h++)
        layout.forEach((part, index) => {
          const grad = grads[part];
          const base = ((b * N + n) * H + h) * P * Dh + index * Dh;
          if (!grad) return;  // zero gradient: dproj stays 0
          const row = ((b * H + h) * N + n) * Dh;
          for (let i = 0; i < Dh; i++) d[i] = grad[row + i]!;
          if (rope && part !== 'v') {
            // Forward, per slice of width S: y[i] = x[i]·c - x[i+S/2]·s (i < S/2), x[i]·c + x[i-S/2]·s
            // (i >= S/2). Its transpose (direction -1): x[i] gets dy[i]·c + dy[i+S/2]·s, resp. dy[i]·c - dy[i-S/2]·s.
            const rotated = new Float64Array(Dh);
            rope3dRef(d, gridPosition(rope.grid, n), SPLIT, tables, rotated, 0, defect === 'rope +angle' ? 1 : -1);
            d.set(rotated);
          }
          const w = part === 'v' ? undefined : weights[part];
          if (w) {
            // y = x·rstd·w: dx = rstd·(g - n·mean(g·n)), n = x·rstd, g = d·w.
            let ss = 0;
            for (let i = 0; i < Dh; i++) ss += proj[base + i]! ** 2;
            const rstd = 1 / Math.sqrt(ss / Dh + eps);
            const g = Array.from({ length: Dh }, (_, i) => d[i]! * (defect === 'no weight' ? 1 : w[i]!));
            let meanGn = 0;
            for (let i = 0; i < Dh; i++) meanGn += g[i]! * proj[base + i]! * rstd;
            meanGn = defect === 'no n·mean(g·n)' ? 0 : meanGn / Dh;
            for (let i = 0; i < Dh; i++) d[i] = rstd * (g[i]! - proj[base + i]! * rstd * meanGn);
          }
          for (let i = 0; i < Dh; i++) dproj[base + i] = d[i]!;
        });
  return dproj;
}

interface Spec extends SplitSpec {
  /** Parts whose gradient is not given (zero). */
  missing?: readonly HeadPart[];
}

function backwardCase(name: string, spec: Spec, seed: number): OpCase {
  const rng = new Rng(seed);
  const { B, N, H, Dh, layout } = spec;
  const proj = randn(rng, B * N * H * layout.length * Dh, 1.7, 0.2);
  const weights = {
    ...(spec.qNorm ? { q: randu(rng, Dh, 0.5, 1.5) } : {}),
    ...(spec.kNorm ? { k: randu(rng, Dh, 0.5, 1.5) } : {}),
  };
  // Gradients with a part along the forward's output (0.5x) on top of unit noise, as a loss's
  // gradient correlates with what it is taken of: that makes the norm backward's n·mean(g·n) term a
  // large part of the result (see the mutants above).
  const forward = splitHeadsRef(proj, spec, weights);
  const given = (['q', 'k', 'v'] as const).filter((p) => layout.includes(p) && !spec.missing?.includes(p));
  const produced = (['q', 'k', 'v'] as const).filter((p) => layout.includes(p));
  const size = B * H * N * Dh;
  const grads = Object.fromEntries(
    given.map((part) => {
      const out = forward.subarray(produced.indexOf(part) * size, (produced.indexOf(part) + 1) * size);
      return [part, Float32Array.from(out, (y) => 0.5 * y + rng.normal())];
    }),
  ) as Partial<Record<HeadPart, Float32Array>>;
  // Inputs in order: proj, (qNorm), (kNorm), then the given gradients in q, k, v order.
  const normParts = (['q', 'k'] as const).filter((p) => weights[p]);
  const inputs: OpInput[] = [
    { shape: [B, N, H * layout.length * Dh], data: proj },
    ...normParts.map((p) => ({ shape: [Dh], data: weights[p]! })),
    ...given.map((p) => ({ shape: [B, H, N, Dh], data: grads[p]! })),
  ];
  const unpack = <T>(values: T[]) => ({
    proj: values[0]!,
    norms: Object.fromEntries(normParts.map((p, i) => [p, values[1 + i]!])) as Partial<Record<'q' | 'k', T>>,
    grads: Object.fromEntries(given.map((p, i) => [p, values[1 + normParts.length + i]!])) as Partial<Record<HeadPart, T>>,
  });
  const ref = (values: Array<ArrayLike<number>>, defect: Defect = 'none') => {
    const v = unpack(values);
    return splitHeadsBackwardRef(v.proj, spec, v.grads, v.norms, 1e-6, defect);
  };
  const defects: Defect[] = [
    ...(spec.rope ? (['rope +angle'] as const) : []),
    ...(normParts.length > 0 ? (['no n·mean(g·n)', 'no weight'] as const) : []),
  ];
  return {
    name,
    inputs,
    run: (tensors: Tensor[]) => {
      const v = unpack(tensors);
      const rope = spec.rope ? Rope3D.create(spec.rope.grid, { split: SPLIT, angles: spec.rope.angles, device: v.proj.device }) : undefined;
      try {
        return splitHeadsBackward(v.grads, v.proj, {
          heads: H,
          layout,
          ...(v.norms.q ? { qNorm: v.norms.q } : {}),
          ...(v.norms.k ? { kNorm: v.norms.k } : {}),
          ...(rope ? { rope } : {}),
        });
      } finally {
        rope?.dispose();
      }
    },
    reference: (values) => ref(values),
    mutants: defects.map((defect) => ({ defect, reference: (values: Array<ArrayLike<number>>) => ref(values, defect) })),
  };
}

export function splitHeadsBackwardCases(): OpCase[] {
  return [
    backwardCase('splitHeadsBackward self-attention: [q|k|v] per head, QK-Norm, 3D RoPE bf16 angles, 2 heads x 128, grid 3x4x5, batch 2', ditSelfAttention(2, 2, [3, 4, 5], 'bf16-official'), 320),
    backwardCase('splitHeadsBackward cross-attention keys: [k|v] per head, k-Norm, no RoPE, 3 heads x 128, 37 keys, batch 2', ditCrossAttention('keys', 2, 3, 37), 321),
    backwardCase('splitHeadsBackward cross-attention queries: [q], q-Norm only, 3 heads x 128, N 45, batch 2', ditCrossAttention('queries', 2, 3, 45), 322),
    backwardCase(
      'splitHeadsBackward parts [v|q|k], QK-Norm, RoPE exact angles, dk missing (zero), 3 heads x 128, grid 2x3x5',
      { ...ditSelfAttention(1, 3, [2, 3, 5], 'exact'), layout: ['v', 'q', 'k'], missing: ['k'] },
      323,
    ),
  ];
}
