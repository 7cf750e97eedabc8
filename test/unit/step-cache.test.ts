// The step cache's decision logic and the teacache fit, on numbers (lib/sampler/cache.ts,
// lib/sampler/calibrate.ts): what is always computed, when a branch is estimated, how the
// estimate accumulates and resets, branches deciding alone, and the least-squares polynomial.
import { describe, expect, it } from 'vitest';

import { StepVideoError } from '../../lib/errors.js';
import { DEFAULT_CACHE_THRESHOLDS, StepCachePolicy, parseCacheSpec, polyval, relativeL1 } from '../../lib/sampler/cache.js';
import { fitPolynomial, fitTeaCache } from '../../lib/sampler/calibrate.js';

describe('parseCacheSpec', () => {
  it('reads method[:threshold] and refuses anything else, naming what it takes', () => {
    expect(parseCacheSpec('auto')).toEqual({ method: 'auto' });
    expect(parseCacheSpec('auto:0.08')).toEqual({ method: 'auto', threshold: 0.08 });
    expect(parseCacheSpec('teacache:0.2')).toEqual({ method: 'teacache', threshold: 0.2 });
    for (const bad of ['', 'fast', 'auto:', 'auto:-1', 'auto:0', 'auto:x', 'auto:0.1:2', 'teacache:NaN', 'auto:11']) {
      expect(() => parseCacheSpec(bad), bad).toThrow(StepVideoError);
    }
    expect(() => parseCacheSpec('fast')).toThrow(/auto \| teacache/);
  });
});

describe('StepCachePolicy', () => {
  it("'auto' computes the first two and the last step, then estimates while k·‖Δx‖/‖v‖ accumulates under the threshold", () => {
    const policy = new StepCachePolicy({ method: 'auto', threshold: 0.1 }, 1, 8);
    expect(policy.threshold).toBe(0.1);
    const decisions: boolean[] = [];
    for (let step = 0; step < 8; step++) {
      const d = policy.decide(step, { inputChange: step === 0 ? Number.NaN : 1 });
      decisions.push(d.compute[0]!);
      // Rate 0.5 and ‖v‖ 10: each step adds 0.5·1/10 = 0.05.
      if (d.compute[0]) policy.computed(0, step === 0 ? Number.NaN : 0.5, 10);
      else expect(d.estimates[0]).toBeCloseTo(0.05 * (step - lastComputed(decisions)), 12);
    }
    // 0, 1 forced; 2 adds 0.05 (< 0.1: estimated); 3 reaches 0.10 (not < 0.1: computed); 4 estimated; 5 computed; 6 estimated; 7 forced.
    expect(decisions).toEqual([true, true, false, true, false, true, false, true]);
  });

  it('decides each CFG branch alone', () => {
    const policy = new StepCachePolicy({ method: 'auto', threshold: 0.1 }, 2, 6);
    for (let step = 0; step < 2; step++) {
      expect(policy.decide(step, { inputChange: 1 }).compute).toEqual([true, true]);
      policy.computed(0, 0.1, 10); // the conditional branch barely moves
      policy.computed(1, 5, 10); // the unconditional one moves a lot
    }
    const d = policy.decide(2, { inputChange: 1 });
    expect(d.compute).toEqual([false, true]);
    expect(d.estimates[0]).toBeCloseTo(0.01, 12);
    expect(d.estimates[1]).toBeCloseTo(0.5, 12);
  });

  it("'teacache' accumulates its fitted polynomial of the probe change, per branch, and needs its coefficients", () => {
    const policy = new StepCachePolicy({ method: 'teacache', coefficients: { cond: [2, 0], uncond: [10, 0] } }, 2, 10);
    expect(policy.threshold).toBe(DEFAULT_CACHE_THRESHOLDS.teacache);
    for (let step = 0; step < 2; step++) {
      policy.decide(step, { inputChange: 1, probeChange: 0.02 });
      policy.computed(0, Number.NaN, 1);
      policy.computed(1, Number.NaN, 1);
    }
    const d = policy.decide(2, { inputChange: 1, probeChange: 0.02 });
    expect(d.estimates[0]).toBeCloseTo(0.04, 12);
    expect(d.estimates[1]).toBeCloseTo(0.2, 12);
    expect(d.compute).toEqual([false, true]);
    expect(() => new StepCachePolicy({ method: 'teacache' }, 2, 10)).toThrow(/calibrate-cache/);
    expect(() => policy.decide(3, { inputChange: 1 })).toThrow(/cache probe/);
  });

  it('never estimates from a non-finite signal', () => {
    const policy = new StepCachePolicy({ method: 'auto', threshold: 0.5 }, 1, 6);
    for (let step = 0; step < 2; step++) {
      policy.decide(step, { inputChange: 1 });
      policy.computed(0, 0.1, 0);
    }
    expect(policy.decide(2, { inputChange: Number.NaN }).compute).toEqual([true]);
  });
});

describe('the teacache fit', () => {
  it('recovers a degree-4 polynomial from exact samples, and the least-squares one from noisy samples', () => {
    const truth = [120, -40, 6, 0.9, 0.01];
    const xs = Array.from({ length: 40 }, (_, i) => 0.005 + (i * 0.3) / 40);
    const fitted = fitPolynomial(xs, xs.map((x) => polyval(truth, x)), 4);
    // Exact up to the solver: the 1e-12·trace ridge, amplified by the normal equations' condition
    // (about 1e7 for degree 4 on [0, 1] after scaling), moves a coefficient by about 1e-5 of the largest.
    fitted.forEach((c, i) => expect(Math.abs(c - truth[i]!), `coefficient ${i}`).toBeLessThanOrEqual(1e-5 * 120));
    // Noisy points, degree 1: the least-squares line, as simple regression computes it in closed form.
    const noisy = xs.map((x, i) => 3 * x + 0.2 + (i % 2 === 0 ? 0.01 : -0.01));
    const [mx, my] = [xs, noisy].map((v) => v.reduce((a, b) => a + b, 0) / v.length);
    const slope = xs.reduce((a, x, i) => a + (x - mx!) * (noisy[i]! - my!), 0) / xs.reduce((a, x) => a + (x - mx!) ** 2, 0);
    const line = fitPolynomial(xs, noisy, 1);
    expect(line[0]).toBeCloseTo(slope, 9);
    expect(line[1]).toBeCloseTo(my! - slope * mx!, 9);
    expect(() => fitPolynomial([1, 2], [1, 2], 4)).toThrow(/more than 4 points/);
  });

  it('fits each branch from the recorded pairs, skipping non-finite ones', () => {
    const pairs = Array.from({ length: 20 }, (_, i) => {
      const x = 0.01 * (i + 1);
      return [x, 2 * x, 5 * x];
    });
    pairs.push([Number.NaN, 1, 1]);
    const { coefficients, fit } = fitTeaCache(pairs, 1);
    expect(coefficients.cond[0]).toBeCloseTo(2, 8);
    expect(coefficients.uncond[0]).toBeCloseTo(5, 8);
    expect(fit.cond.samples).toBe(20);
    expect(fit.uncond.rmse).toBeLessThan(1e-9);
  });

  it('relative L1 is Σ|a − b| / Σ|b|', () => {
    expect(relativeL1(Float32Array.from([1, 2, 3]), Float32Array.from([1, 1, 1]))).toBeCloseTo(1, 12);
    expect(relativeL1(Float32Array.from([1]), Float32Array.from([0]))).toBe(Number.POSITIVE_INFINITY);
  });
});

function lastComputed(decisions: boolean[]): number {
  for (let i = decisions.length - 2; i >= 0; i--) if (decisions[i]) return i;
  return 0;
}
