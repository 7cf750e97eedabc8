// The float64 references of the norm backward cases (test/cases/norm-backward.ts,
// test/cases/split-heads-backward.ts) are the gradients of the float64 forwards the forward cases
// use (test/cases/norm.ts, test/cases/split-heads.ts): for L(x) = Σ dy·f(x) and a random direction
// u, ⟨dx, u⟩ equals the central difference (L(x + hu) - L(x - hu)) / 2h.
import { describe, expect, it } from 'vitest';

import type { HeadPart } from '../../lib/kernels/split-heads.js';
import { layerNormRef } from '../cases/norm.js';
import { layerNormBackwardRef } from '../cases/norm-backward.js';
import { splitHeadsRef } from '../cases/split-heads.js';
import { type SplitGeometry, splitHeadsBackwardRef } from '../cases/split-heads-backward.js';
import { Rng } from '../helpers/random.js';

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};
const gaussian = (rng: Rng, n: number, std = 1, mean = 0) => Float64Array.from({ length: n }, () => mean + std * rng.normal());

/**
 * ⟨grad, u⟩ against the central difference of L along u, for a few random directions. h = 1e-4: the
 * truncation error (h²/6 times L's third derivative along u) scales as h² and was measured at about
 * 2e-9 of ⟨grad, u⟩ on these sizes (9e-8 at h = 1e-3); the rounding error, about 1e-16·Σ|dy·f|/h,
 * is near 1e-10 of it. So 1e-7 relative (to max(1, |⟨grad, u⟩|)) leaves a factor 50, far below
 * what a missing term of the gradient moves (order 0.1 to 1: asserted with `wrong`, a defective gradient).
 */
function expectDirectionalDerivative(rng: Rng, x: Float64Array, loss: (x: Float64Array) => number, grad: Float64Array, wrong: Float64Array): void {
  const h = 1e-4;
  for (let trial = 0; trial < 3; trial++) {
    const u = gaussian(rng, x.length);
    const plus = Float64Array.from(x, (v, i) => v + h * u[i]!);
    const minus = Float64Array.from(x, (v, i) => v - h * u[i]!);
    const numeric = (loss(plus) - loss(minus)) / (2 * h);
    const analytic = dot(grad, u);
    const scale = Math.max(1, Math.abs(analytic));
    expect(Math.abs(numeric - analytic) / scale, `trial ${trial}: ${analytic} vs ${numeric}`).toBeLessThan(1e-7);
    expect(Math.abs(numeric - dot(wrong, u)) / scale, `trial ${trial}: the defective gradient agrees too`).toBeGreaterThan(1e-3);
  }
}

describe('norm backward references (float64) are the derivatives of the forward references', () => {
  it('layerNormBackwardRef: affine + two modulation groups, and no affine', () => {
    const rng = new Rng(7);
    const rows = 6;
    const dim = 24;
    for (const affine of [true, false]) {
      const x = gaussian(rng, rows * dim, 2, 0.3);
      const dy = gaussian(rng, rows * dim, 1, 0.4);
      const w = affine ? gaussian(rng, dim, 0.2, 1) : undefined;
      const b = affine ? gaussian(rng, dim, 0.1) : undefined;
      const scale = gaussian(rng, 2 * dim, 0.3);
      const shift = gaussian(rng, 2 * dim, 0.3);
      // Bias and shift are part of the forward: they do not enter dx.
      const loss = (xs: Float64Array) => dot(dy, layerNormRef(xs, rows, dim, 1e-5, w, b, scale, shift));
      const grad = layerNormBackwardRef(dy, x, rows, dim, 1e-5, w, scale);
      expectDirectionalDerivative(rng, x, loss, grad, layerNormBackwardRef(dy, x, rows, dim, 1e-5, w, scale, 'no mean(g·x̂)'));
    }
  });

  const splitCases: Array<{ what: string; geometry: SplitGeometry; norms: readonly ('q' | 'k')[]; given: readonly HeadPart[] }> = [
    {
      what: '[q|k|v], QK-Norm, 3D RoPE (bf16 angles)',
      geometry: { B: 2, N: 12, H: 2, Dh: 128, layout: ['q', 'k', 'v'], rope: { grid: [2, 2, 3], angles: 'bf16-official' } },
      norms: ['q', 'k'], given: ['q', 'k', 'v'],
    },
    { what: '[k|v], k-Norm, no RoPE', geometry: { B: 1, N: 5, H: 2, Dh: 128, layout: ['k', 'v'] }, norms: ['k'], given: ['k', 'v'] },
    { what: '[q], q-Norm only', geometry: { B: 1, N: 4, H: 3, Dh: 128, layout: ['q'] }, norms: ['q'], given: ['q'] },
    {
      what: '[v|q|k], RoPE (exact angles), dk missing',
      geometry: { B: 1, N: 6, H: 1, Dh: 128, layout: ['v', 'q', 'k'], rope: { grid: [1, 2, 3], angles: 'exact' } },
      norms: ['q', 'k'], given: ['q', 'v'],
    },
  ];
  for (const { what, geometry, norms, given } of splitCases) {
    it(`splitHeadsBackwardRef: ${what}`, () => {
      const rng = new Rng(11);
      const { B, N, H, Dh, layout } = geometry;
      const proj = gaussian(rng, B * N * H * layout.length * Dh, 1.7, 0.2);
      const weights = Object.fromEntries(norms.map((p) => [p, gaussian(rng, Dh, 0.3, 1)])) as { q?: Float64Array; k?: Float64Array };
      const size = B * H * N * Dh;
      const grads = Object.fromEntries(given.map((p) => [p, gaussian(rng, size)])) as Partial<Record<HeadPart, Float64Array>>;
      // splitHeadsRef returns the parts in q, k, v order (those of the layout); a missing gradient is zero.
      const produced = (['q', 'k', 'v'] as const).filter((p) => layout.includes(p));
      const dy = new Float64Array(produced.length * size);
      produced.forEach((p, i) => grads[p] && dy.set(grads[p], i * size));
      const loss = (xs: Float64Array) => dot(dy, splitHeadsRef(xs, geometry, weights));
      const grad = splitHeadsBackwardRef(proj, geometry, grads, weights);
      const defect = geometry.rope ? 'rope +angle' : 'no n·mean(g·n)';
      expectDirectionalDerivative(rng, proj, loss, grad, splitHeadsBackwardRef(proj, geometry, grads, weights, 1e-6, defect));
    });
  }
});
