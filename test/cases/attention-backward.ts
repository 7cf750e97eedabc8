// Cases of the attention backward (attentionBackward, native/attention.h): the DiT's self-attention
// at head dim 128 with a length that is no tile multiple, its cross-attention with per-item kv_len
// (masked keys, and an item with no visible key), head dim 64 and an odd head dim. One case per
// gradient (dq, dk, dv), so each is held to its own bound: a norm over the three would let the
// largest hide a defect in the smallest. The float64 reference is itself checked against central
// differences of the float64 forward in test/unit/attention-grad.test.ts.
import { attentionBackward } from '../../lib/kernels/attention.js';
import type { Tensor } from '../../lib/tensor.js';
import { Rng, randn } from '../helpers/random.js';
import { attentionRef } from './attention.js';
import type { OpCase } from './types.js';

export interface AttentionDims {
  B: number; H: number; Nq: number; Nk: number; D: number;
}

/** A defect a kernel could plausibly have; the cases hold every backend far from each. */
export type AttentionGradDefect = 'delta-dropped' | 'dq-scale-missing' | 'dk-scale-missing' | 'scores-unscaled' | 'kv-len-ignored';

/**
 * float64 gradients of L = Σ dOut ⊙ attention(q, k, v) (non-causal, H == Hkv) with the softmax
 * recomputed from q and k and Δ_i = dOut_i·out_i taken from the given output, as the op defines
 * it. q [B,H,Nq,D], k/v [B,H,Nk,D], out/dOut [B,Nq,H,D] → dq [B,H,Nq,D], dk/dv [B,H,Nk,D].
 */
export function attentionBackwardRef(
  q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, out: ArrayLike<number>, dOut: ArrayLike<number>,
  { B, H, Nq, Nk, D }: AttentionDims,
  opts: { kvLen?: ArrayLike<number>; scale?: number; defect?: AttentionGradDefect } = {},
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const defect = opts.defect;
  const dq = new Float64Array(B * H * Nq * D);
  const dk = new Float64Array(B * H * Nk * D);
  const dv = new Float64Array(B * H * Nk * D);
  const p = new Float64Array(Nk);
  for (let b = 0; b < B; b++) {
    const visible = opts.kvLen && defect !== 'kv-len-ignored' ? Math.min(Nk, Math.max(0, opts.kvLen[b]!)) : Nk;
    for (let h = 0; h < H; h++) {
      const qh = (b * H + h) * Nq * D, kh = (b * H + h) * Nk * D;
      for (let i = 0; i < Nq; i++) {
        const oi = ((b * Nq + i) * H + h) * D;
        let max = -Infinity;
        for (let j = 0; j < visible; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[qh + i * D + d]! * k[kh + j * D + d]!;
          p[j] = defect === 'scores-unscaled' ? dot : dot * scale;
          max = Math.max(max, p[j]!);
        }
        let total = 0;
        for (let j = 0; j < visible; j++) total += p[j] = Math.exp(p[j]! - max);
        let delta = 0;
        if (defect !== 'delta-dropped') for (let d = 0; d < D; d++) delta += dOut[oi + d]! * out[oi + d]!;
        for (let j = 0; j < visible; j++) {
          const pij = p[j]! / total;
          let dp = 0;
          for (let d = 0; d < D; d++) dp += dOut[oi + d]! * v[kh + j * D + d]!;
          const ds = pij * (dp - delta);
          const dqScale = defect === 'dq-scale-missing' ? 1 : scale, dkScale = defect === 'dk-scale-missing' ? 1 : scale;
          for (let d = 0; d < D; d++) {
            dq[qh + i * D + d]! += dqScale * ds * k[kh + j * D + d]!;
            dk[kh + j * D + d]! += dkScale * ds * q[qh + i * D + d]!;
            dv[kh + j * D + d]! += pij * dOut[oi + d]!;
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}

interface Spec extends AttentionDims {
  name: string;
  kvLen?: number[];
  seed: number;
  /** Standard deviation of q: 2 sharpens the softmax (the DiT's QK-normed scores are not flat). */
  qStd?: number;
}

type Grad = 'dq' | 'dk' | 'dv';

// What each gradient must stay far from: the defects that change it (Δ and the scores' scale
// reach dq and dk through dS; dv sees only P; kv_len reaches all three where it masks keys).
const DEFECTS: Record<Grad, AttentionGradDefect[]> = {
  dq: ['delta-dropped', 'dq-scale-missing', 'scores-unscaled'],
  dk: ['delta-dropped', 'dk-scale-missing', 'scores-unscaled'],
  dv: ['scores-unscaled'],
};

const DEFECT_TEXT: Record<AttentionGradDefect, string> = {
  'delta-dropped': 'Δ = dO·O dropped from dS',
  'dq-scale-missing': 'softmax scale missing in dq',
  'dk-scale-missing': 'softmax scale missing in dk',
  'scores-unscaled': 'softmax recomputed from unscaled scores',
  'kv-len-ignored': 'kv_len ignored (masked keys take part)',
};

function backwardCases(spec: Spec): OpCase[] {
  const { B, H, Nq, Nk, D } = spec;
  const rng = new Rng(spec.seed);
  const q = randn(rng, B * H * Nq * D, spec.qStd ?? 1);
  const k = randn(rng, B * H * Nk * D);
  const v = randn(rng, B * H * Nk * D);
  // The forward's output, exact (float64, stored as f32): the op's input as a training step has it.
  const out = Float32Array.from(attentionRef(q, k, v, B, H, H, Nq, Nk, D, spec.kvLen ? { kvLen: spec.kvLen } : {}));
  const dOut = randn(rng, B * Nq * H * D);
  const inputs: OpCase['inputs'] = [
    { shape: [B, H, Nq, D], data: q },
    { shape: [B, H, Nk, D], data: k },
    { shape: [B, H, Nk, D], data: v },
    { shape: [B, Nq, H, D], data: out },
    { shape: [B, Nq, H, D], data: dOut },
  ];
  if (spec.kvLen) inputs.push({ shape: [B], data: Int32Array.from(spec.kvLen), dtype: 'i32' });
  const masks = spec.kvLen?.some((n) => n < Nk) ?? false;
  const reference = (data: Array<ArrayLike<number>>, defect?: AttentionGradDefect) =>
    attentionBackwardRef(data[0]!, data[1]!, data[2]!, data[3]!, data[4]!, spec, {
      ...(data[5] ? { kvLen: data[5] } : {}),
      ...(defect ? { defect } : {}),
    });
  return (['dq', 'dk', 'dv'] as const).map((grad) => ({
    name: `attentionBackward ${spec.name}: ${grad}`,
    inputs,
    run: ([qt, kt, vt, ot, dot, kvLen]: Tensor[]) => {
      const grads = attentionBackward(qt!, kt!, vt!, ot!, dot!, kvLen ? { kvLen } : {});
      for (const other of ['dq', 'dk', 'dv'] as const) if (other !== grad) grads[other].dispose();
      return grads[grad];
    },
    reference: (data) => reference(data)[grad],
    // f32 (docs/TOLERANCES.md, "Attention backward"): the recomputed scores carry f32 rounding of
    // a 128-term dot product, about 1e-7 relative in P and dS; the sums over ≤ 70 terms add the
    // same order. Predicted ≤ 1e-6; bound 1e-5, the forward's.
    tolerance: 1e-5,
    mutants: [...DEFECTS[grad], ...(masks ? (['kv-len-ignored'] as const) : [])].map((defect) => ({
      defect: DEFECT_TEXT[defect],
      reference: (data: Array<ArrayLike<number>>) => reference(data, defect)[grad],
    })),
  }));
}

export function attentionBackwardCases(): OpCase[] {
  return [
    ...backwardCases({ name: 'self-attention, 2 heads x 128, N 70, batch 2', B: 2, H: 2, Nq: 70, Nk: 70, D: 128, seed: 900, qStd: 2 }),
    ...backwardCases({ name: 'cross-attention, 50 queries, kv_len [23, 9] of 23 keys, x 128', B: 2, H: 2, Nq: 50, Nk: 23, D: 128, kvLen: [23, 9], seed: 901 }),
    ...backwardCases({ name: 'head dim 64, kv_len [40, 0] of 40 keys (one item fully masked)', B: 2, H: 2, Nq: 33, Nk: 40, D: 64, kvLen: [40, 0], seed: 902, qStd: 2 }),
    ...backwardCases({ name: 'odd head dim 40, N 37', B: 1, H: 3, Nq: 37, Nk: 37, D: 40, seed: 903, qStd: 2 }),
  ];
}
