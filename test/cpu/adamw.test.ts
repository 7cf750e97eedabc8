// AdamW on f32 master weights (lib/training/adamw.ts), CPU twin, against a float64 AdamW written
// here from the paper's update (Loshchilov & Hutter 2019, Algorithm 2, with PyTorch's bias
// correction and eps outside the square root), with clipping by the global norm.
//
// Bound, before the run: each update is a handful of f32 operations on values of order 1; the
// parameters after three steps differ from float64 by a few ulp of their size plus the f32
// rounding of √v̂ where v̂ is small: 2e-6 relative to the largest parameter.
import { describe, expect, it } from 'vitest';

import { Tensor } from '../../lib/tensor.js';
import { AdamW } from '../../lib/training/adamw.js';
import { pairOrder, stepSeed, uniform } from '../../lib/training/trainer.js';
import { Rng, randn } from '../helpers/random.js';

interface Reference {
  p: Float64Array;
  m: Float64Array;
  v: Float64Array;
}

function referenceStep(states: Reference[], grads: Float32Array[], t: number, o: { lr: number; b1: number; b2: number; eps: number; wd: number; maxNorm: number }): void {
  const norm = Math.sqrt(grads.reduce((s, g) => s + g.reduce((a, x) => a + x * x, 0), 0));
  const clip = o.maxNorm > 0 && norm > o.maxNorm ? o.maxNorm / (norm + 1e-6) : 1;
  states.forEach((s, k) => {
    for (let i = 0; i < s.p.length; i++) {
      const g = grads[k]![i]! * clip;
      s.m[i] = o.b1 * s.m[i]! + (1 - o.b1) * g;
      s.v[i] = o.b2 * s.v[i]! + (1 - o.b2) * g * g;
      const mHat = s.m[i]! / (1 - o.b1 ** t);
      const vHat = s.v[i]! / (1 - o.b2 ** t);
      s.p[i] = s.p[i]! * (1 - o.lr * o.wd) - (o.lr * mHat) / (Math.sqrt(vHat) + o.eps);
    }
  });
}

describe('AdamW', () => {
  it('matches a float64 AdamW over three steps, clipping included', async () => {
    const rng = new Rng(3);
    const o = { lr: 1e-2, b1: 0.9, b2: 0.99, eps: 1e-8, wd: 0.1, maxNorm: 2 };
    const shapes = [[6, 5], [40]];
    const initial = shapes.map((s) => randn(rng, s.reduce((a, b) => a * b, 1)));
    const params = new Map(initial.map((data, k) => [`p${k}`, Tensor.from(data, shapes[k]!)]));
    const states: Reference[] = initial.map((data) => ({ p: Float64Array.from(data), m: new Float64Array(data.length), v: new Float64Array(data.length) }));
    using optimizer = new AdamW({ lr: o.lr, beta1: o.b1, beta2: o.b2, eps: o.eps, weightDecay: o.wd, maxGradNorm: o.maxNorm });
    const clipped: boolean[] = [];
    try {
      for (let t = 1; t <= 3; t++) {
        // Step 2's gradients are large, so the clip acts there and not elsewhere.
        const grads = initial.map((data) => randn(rng, data.length, t === 2 ? 3 : 0.05));
        const tensors = new Map(grads.map((g, k) => [`p${k}`, Tensor.from(g, shapes[k]!)]));
        try {
          clipped.push((await optimizer.update(params, tensors)).clipped);
        } finally {
          for (const g of tensors.values()) g.dispose();
        }
        referenceStep(states, grads, t, o);
      }
      expect(clipped).toEqual([false, true, false]);
      expect(optimizer.steps).toBe(3);
      const largest = Math.max(...states.flatMap((s) => Array.from(s.p, Math.abs)));
      for (const [k, s] of states.entries()) {
        const got = await params.get(`p${k}`)!.toFloat32();
        const worst = Math.max(...Array.from(got, (v, i) => Math.abs(v - s.p[i]!)));
        expect(worst / largest).toBeLessThan(2e-6);
      }
    } finally {
      for (const p of params.values()) p.dispose();
    }
  });

  it('refuses bad settings and non-finite gradients, changing nothing', async () => {
    expect(() => new AdamW({ lr: 0 })).toThrow(/invalid lr/);
    expect(() => new AdamW({ lr: 1e-3, beta2: 1 })).toThrow(/invalid beta2/);
    using optimizer = new AdamW({ lr: 1e-3 });
    const params = new Map([['p', Tensor.from(Float32Array.of(1, 2), [2])]]);
    using bad = Tensor.from(Float32Array.of(Number.NaN, 1), [2]);
    await expect(optimizer.update(params, new Map([['p', bad]]))).rejects.toMatchObject({ code: 'ERR_NOT_FINITE' });
    expect(Array.from(await params.get('p')!.toFloat32())).toEqual([1, 2]);
    expect(optimizer.steps).toBe(0);
    params.get('p')!.dispose();
  });
});

describe('the (seed, step) streams of the trainer', () => {
  it('are deterministic, spread over [0, 1), and shuffle every pair into each epoch', () => {
    const us = Array.from({ length: 2000 }, (_, s) => uniform(7, s));
    expect(us).toEqual(Array.from({ length: 2000 }, (_, s) => uniform(7, s)));
    expect(Math.min(...us)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...us)).toBeLessThan(1);
    const mean = us.reduce((a, b) => a + b, 0) / us.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.03); // 4.5 standard errors of 0.0065
    expect(new Set(Array.from({ length: 100 }, (_, s) => stepSeed(1, s))).size).toBe(100);
    for (const epoch of [0, 1, 2]) expect([...pairOrder(9, 4, epoch)].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(pairOrder(9, 4, 0)).not.toEqual(pairOrder(9, 4, 1));
  });
});
