// Cases of the attention family (native/attention.h): every mask variant at real head dims with
// odd lengths, masks that differ per batch item, and a fully masked batch item.
import { attention } from '../../lib/kernels/attention.js';
import { Rng, randn } from '../helpers/random.js';
import type { OpCase } from './types.js';

export function alibiSlope(h: number, heads: number): number {
  let n = 1;
  while (n * 2 <= heads) n *= 2;
  return h < n ? 2 ** ((-8 * (h + 1)) / n) : 2 ** ((-4 * (2 * (h - n) + 1)) / n);
}

/** float64 attention: q [B,H,Nq,D], k/v [B,Hkv,Nk,D] → [B,Nq,H,D]. */
export function attentionRef(
  q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>,
  B: number, H: number, Hkv: number, Nq: number, Nk: number, D: number,
  opts: { kvLen?: ArrayLike<number>; causal?: boolean; alibi?: boolean; scale?: number } = {},
): Float64Array {
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const out = new Float64Array(B * Nq * H * D);
  const offset = Nk - Nq;
  const s = new Float64Array(Nk);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / (H / Hkv));
      const slope = opts.alibi ? alibiSlope(h, H) : 0;
      for (let i = 0; i < Nq; i++) {
        let last = opts.kvLen ? Math.min(Nk, Math.max(0, opts.kvLen[b]!)) : Nk;
        if (opts.causal) last = Math.min(last, i + offset + 1);
        let m = -Infinity;
        for (let j = 0; j < last; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[((b * H + h) * Nq + i) * D + d]! * k[((b * Hkv + hk) * Nk + j) * D + d]!;
          s[j] = dot * scale - (opts.alibi ? slope * Math.sqrt(i + offset - j) : 0);
          m = Math.max(m, s[j]!);
        }
        let total = 0;
        for (let j = 0; j < last; j++) total += Math.exp(s[j]! - m);
        for (let d = 0; d < D; d++) {
          let acc = 0;
          for (let j = 0; j < last; j++) acc += Math.exp(s[j]! - m) * v[((b * Hkv + hk) * Nk + j) * D + d]!;
          out[((b * Nq + i) * H + h) * D + d] = total > 0 ? acc / total : 0;
        }
      }
    }
  return out;
}

interface Spec {
  name: string;
  B: number; H: number; Hkv: number; Nq: number; Nk: number; D: number;
  kvLen?: number[]; causal?: boolean; alibi?: boolean; seed: number; qStd?: number;
}

function attentionCase(spec: Spec): OpCase {
  const { B, H, Hkv, Nq, Nk, D } = spec;
  const rng = new Rng(spec.seed);
  const inputs = [
    { shape: [B, H, Nq, D], data: randn(rng, B * H * Nq * D, spec.qStd ?? 1) },
    { shape: [B, Hkv, Nk, D], data: randn(rng, B * Hkv * Nk * D) },
    { shape: [B, Hkv, Nk, D], data: randn(rng, B * Hkv * Nk * D) },
  ] as OpCase['inputs'];
  if (spec.kvLen) inputs.push({ shape: [B], data: Int32Array.from(spec.kvLen), dtype: 'i32' });
  return {
    name: spec.name,
    inputs,
    run: ([q, k, v, kvLen]) => attention(q!, k!, v!, { causal: spec.causal ?? false, alibiSqrt: spec.alibi ?? false, ...(kvLen ? { kvLen } : {}) }),
    reference: ([q, k, v, kvLen]) => attentionRef(q!, k!, v!, B, H, Hkv, Nq, Nk, D, { ...(kvLen ? { kvLen } : {}), causal: spec.causal ?? false, alibi: spec.alibi ?? false }),
    tolerance: 1e-5,
  };
}

export function attentionCases(): OpCase[] {
  return [
    attentionCase({ name: 'self-attention, 3 heads x 128, odd N 131, batch 2', B: 2, H: 3, Hkv: 3, Nq: 131, Nk: 131, D: 128, seed: 200, qStd: 2 }),
    attentionCase({ name: 'cross-attention, prefix kv_len [17, 9] of 17 keys', B: 2, H: 2, Hkv: 2, Nq: 67, Nk: 17, D: 128, kvLen: [17, 9], seed: 201 }),
    attentionCase({ name: 'cross-attention, one batch item fully masked (kv_len 0)', B: 2, H: 2, Hkv: 2, Nq: 9, Nk: 13, D: 128, kvLen: [0, 13], seed: 202 }),
    attentionCase({ name: 'Step-LLM: causal ALiBi-sqrt GQA 4 heads / 1 group x 64', B: 2, H: 4, Hkv: 1, Nq: 45, Nk: 45, D: 64, causal: true, alibi: true, seed: 203 }),
    attentionCase({ name: 'Step-LLM: causal ALiBi-sqrt 6 heads (non power of 2) / 2 groups x 128', B: 1, H: 6, Hkv: 2, Nq: 33, Nk: 33, D: 128, causal: true, alibi: true, seed: 204 }),
    attentionCase({ name: 'BERT: padding kv_len [16, 11], 4 heads x 16', B: 2, H: 4, Hkv: 4, Nq: 16, Nk: 16, D: 16, kvLen: [16, 11], seed: 205 }),
    attentionCase({ name: 'BERT: padding kv_len [77, 23], 16 heads x 64', B: 2, H: 16, Hkv: 16, Nq: 77, Nk: 77, D: 64, kvLen: [77, 23], seed: 206 }),
    attentionCase({ name: 'VAE mid-block: causal single head x 512', B: 1, H: 1, Hkv: 1, Nq: 97, Nk: 97, D: 512, causal: true, seed: 207 }),
  ];
}
