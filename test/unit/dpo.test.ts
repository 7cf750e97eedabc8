// The DPO loss of issue 19 (lib/training/dpo.ts) and its memory model (lib/training/memory.ts):
// the loss against hand-computed values, its gradient against central differences, what it reports,
// the training noise level, and the LoRA parameter count of the released DiT.
import { describe, expect, it } from 'vitest';

import { StepVideoError } from '../../lib/errors.js';
import { parseDiTConfig } from '../../lib/models/dit/config.js';
import { dpoLoss, negLogSigmoid, trainingSigma } from '../../lib/training/dpo.js';
import { estimateDpoMemory } from '../../lib/training/memory.js';

describe('the flow-matching DPO loss', () => {
  it('is mean(−log σ(−β/2·((e_w − e_w,ref) − (e_l − e_l,ref)))), with accuracy and margin', () => {
    const errors = { chosen: [0.5, 0.9], rejected: [0.8, 0.7], chosenRef: [0.6, 0.8], rejectedRef: [0.7, 0.8] };
    const beta = 500;
    // Pair 0: (0.5 − 0.6) − (0.8 − 0.7) = −0.2 → z = 50. Pair 1: (0.9 − 0.8) − (0.7 − 0.8) = 0.2 → z = −50.
    const result = dpoLoss(errors, beta);
    expect(result.margins[0]).toBeCloseTo(50, 9);
    expect(result.margins[1]).toBeCloseTo(-50, 9);
    expect(result.loss).toBeCloseTo((Math.log1p(Math.exp(-50)) + 50 + Math.log1p(Math.exp(-50))) / 2, 9);
    expect(result.accuracy).toBe(0.5);
    expect(result.margin).toBeCloseTo(0, 9);
    // At z = 0 the loss is log 2.
    expect(dpoLoss({ chosen: [1], rejected: [1], chosenRef: [1], rejectedRef: [1] }, 10).loss).toBeCloseTo(Math.LN2, 12);
  });

  it('has the gradient its central differences give', () => {
    const base = { chosen: [0.41, 0.37, 0.52], rejected: [0.44, 0.31, 0.49], chosenRef: [0.43, 0.35, 0.5], rejectedRef: [0.42, 0.33, 0.51] };
    const beta = 50;
    const { grad } = dpoLoss(base, beta);
    const h = 1e-6;
    for (const side of ['chosen', 'rejected'] as const) {
      for (let i = 0; i < 3; i++) {
        const bump = (delta: number) => dpoLoss({ ...base, [side]: base[side].map((v, j) => (j === i ? v + delta : v)) }, beta).loss;
        const numeric = (bump(h) - bump(-h)) / (2 * h);
        // Central differences of a smooth function at h = 1e-6: error about h² ≈ 1e-12 plus rounding 1e-16/h ≈ 1e-10.
        expect(Math.abs(grad[side][i]! - numeric), `${side} ${i}`).toBeLessThan(1e-8);
      }
    }
  });

  it('stays finite far out and refuses bad input', () => {
    expect(negLogSigmoid(-1000)).toBeCloseTo(1000, 9);
    expect(negLogSigmoid(1000)).toBe(0);
    expect(() => dpoLoss({ chosen: [1], rejected: [], chosenRef: [1], rejectedRef: [1] }, 1)).toThrow(StepVideoError);
    expect(() => dpoLoss({ chosen: [Number.NaN], rejected: [1], chosenRef: [1], rejectedRef: [1] }, 1)).toThrow(/finite/);
    expect(() => dpoLoss({ chosen: [1], rejected: [1], chosenRef: [1], rejectedRef: [1] }, 0)).toThrow(/beta/);
  });

  it('draws the noise level through the sampler’s time shift', () => {
    expect(trainingSigma(0, 13)).toBe(0);
    expect(trainingSigma(1, 13)).toBe(1);
    expect(trainingSigma(0.5, 13)).toBeCloseTo(6.5 / 7, 12);
    expect(trainingSigma(0.5, 1)).toBe(0.5);
  });
});

describe('the DPO memory model (a prediction)', () => {
  it('counts the LoRA parameters of the released DiT at rank 64 exactly', () => {
    const config = parseDiTConfig({});
    const estimate = estimateDpoMemory({ config, latent: [36, 34, 62], rank: 64, base: 'fp8', rowsPerBackward: 1, offloadCheckpoints: true });
    // Per block: 64 · Σ(in + out) over the seven Linears = 64 · 141,312.
    expect(estimate.loraParameters).toBe(48 * 64 * 141_312);
    expect(estimate.loraBytes).toBe(estimate.loraParameters * 18);
    // One [1, 75,888, 6144] bf16 input per block.
    expect(estimate.checkpointBytes).toBe(48 * 75_888 * 6144 * 2);
    expect(estimate.hostBytes).toBe(estimate.checkpointBytes);
    const onDevice = estimateDpoMemory({ config, latent: [36, 34, 62], rank: 64, base: 'fp8', rowsPerBackward: 1, offloadCheckpoints: false });
    expect(onDevice.deviceBytes - estimate.deviceBytes).toBe(estimate.checkpointBytes);
  });
});
