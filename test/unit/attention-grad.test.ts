// The float64 reference the attention backward cases are checked against (test/cases/
// attention-backward.ts) is the gradient: for random directions u, <grad, u> agrees with central
// differences (L(x + hu) − L(x − hu)) / 2h of L = Σ dOut ⊙ attention(q, k, v) in float64, where
// attention is the forward's own float64 reference. Masked keys and a fully masked batch item included.
import { describe, expect, it } from 'vitest';

import { attentionRef } from '../cases/attention.js';
import { type AttentionDims, attentionBackwardRef } from '../cases/attention-backward.js';
import { Rng } from '../helpers/random.js';

function normals(rng: Rng, n: number, std = 1): Float64Array {
  return Float64Array.from({ length: n }, () => std * rng.normal());
}

function dotProduct(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function axpy(x: Float64Array, u: Float64Array, h: number): Float64Array {
  return x.map((value, i) => value + h * u[i]!);
}

describe('attention gradient (float64 reference)', () => {
  const cases: Array<{ name: string; dims: AttentionDims; kvLen?: number[]; scale?: number }> = [
    { name: 'self-attention', dims: { B: 2, H: 2, Nq: 6, Nk: 6, D: 5 } },
    { name: 'cross-attention with kv_len [7, 3] and a custom scale', dims: { B: 2, H: 2, Nq: 5, Nk: 7, D: 4 }, kvLen: [7, 3], scale: 0.7 },
    { name: 'a batch item with kv_len 0', dims: { B: 2, H: 1, Nq: 4, Nk: 5, D: 3 }, kvLen: [0, 5] },
  ];
  for (const { name, dims, kvLen, scale } of cases) {
    it(`matches central differences along random directions: ${name}`, () => {
      const { B, H, Nq, Nk, D } = dims;
      const rng = new Rng(77);
      const q = normals(rng, B * H * Nq * D, 1.5);
      const k = normals(rng, B * H * Nk * D);
      const v = normals(rng, B * H * Nk * D);
      const dOut = normals(rng, B * Nq * H * D);
      const opts = { ...(kvLen ? { kvLen } : {}), ...(scale !== undefined ? { scale } : {}) };
      const loss = (qq: Float64Array, kk: Float64Array, vv: Float64Array) => dotProduct(dOut, attentionRef(qq, kk, vv, B, H, H, Nq, Nk, D, opts));
      const out = attentionRef(q, k, v, B, H, H, Nq, Nk, D, opts);
      const grads = attentionBackwardRef(q, k, v, out, dOut, dims, opts);
      const h = 1e-5;
      for (let trial = 0; trial < 3; trial++) {
        // Each input alone (a wrong gradient of one cannot hide behind the others), then all three.
        const uq = normals(rng, q.length), uk = normals(rng, k.length), uv = normals(rng, v.length);
        const zq = new Float64Array(q.length), zk = new Float64Array(k.length), zv = new Float64Array(v.length);
        for (const [what, dq, dk, dv] of [['q', uq, zk, zv], ['k', zq, uk, zv], ['v', zq, zk, uv], ['all', uq, uk, uv]] as const) {
          const analytic = dotProduct(grads.dq, dq) + dotProduct(grads.dk, dk) + dotProduct(grads.dv, dv);
          const numeric = (loss(axpy(q, dq, h), axpy(k, dk, h), axpy(v, dv, h)) - loss(axpy(q, dq, -h), axpy(k, dk, -h), axpy(v, dv, -h))) / (2 * h);
          // Central differences: truncation about h²·|L'''| ≈ 1e-10, rounding about 1e-16·|L| / h ≈ 1e-11;
          // against directional derivatives of order 1 to 10.
          expect(Math.abs(analytic - numeric), `${what}, trial ${trial}: ${analytic} vs ${numeric}`).toBeLessThan(1e-7 * Math.max(1, Math.abs(numeric)));
        }
      }
      // Keys past kv_len never reach the loss: their gradients are exactly zero.
      for (let b = 0; b < B; b++) {
        const visible = kvLen ? kvLen[b]! : Nk;
        for (let hh = 0; hh < H; hh++)
          for (let j = visible; j < Nk; j++)
            for (let d = 0; d < D; d++) {
              const at = ((b * H + hh) * Nk + j) * D + d;
              expect(grads.dk[at]).toBe(0);
              expect(grads.dv[at]).toBe(0);
            }
        if (visible === 0) expect(grads.dq.subarray(b * H * Nq * D, (b + 1) * H * Nq * D).every((x) => x === 0)).toBe(true);
      }
    });
  }
});
