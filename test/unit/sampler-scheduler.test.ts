// The flow-matching schedule, presets and prompt magic (lib/sampler/scheduler.ts): structure, the
// sample values quoted in the spec (§4), overrides and their errors. The exact float32 values are
// checked against the official scheduler's in test/golden/scheduler.test.ts.
import { describe, expect, it } from 'vitest';

import { isStepVideoError } from '../../lib/errors.js';
import {
  NEG_MAGIC,
  POS_MAGIC,
  SAMPLER_PRESETS,
  flowMatchSigmas,
  flowMatchTimesteps,
  guidedPrompts,
  resolveSamplerSettings,
} from '../../lib/sampler/scheduler.js';

function expectError(fn: () => unknown, code: string, pattern: RegExp): void {
  try {
    fn();
  } catch (error) {
    expect(isStepVideoError(error), String(error)).toBe(true);
    expect((error as { code: string }).code).toBe(code);
    expect((error as Error).message).toMatch(pattern);
    return;
  }
  throw new Error('expected an error');
}

describe('flowMatchSigmas', () => {
  it('rises from 0 (noise) to 1 (data), strictly, for any step count and shift', () => {
    for (const steps of [1, 2, 3, 10, 15, 30, 50, 97]) {
      for (const shift of [1, 3.5, 7, 13, 17]) {
        const sigmas = flowMatchSigmas(steps, shift);
        expect(sigmas.length).toBe(steps + 1);
        expect(sigmas[0]).toBe(0);
        expect(sigmas[steps]).toBe(1);
        for (let i = 0; i < steps; i++) expect(sigmas[i + 1]!).toBeGreaterThan(sigmas[i]!);
      }
    }
  });

  it('gives the timesteps quoted in the spec (t_i = sigma_i, i < N)', () => {
    const t50 = flowMatchTimesteps(50, 13);
    expect(t50.length).toBe(50);
    for (const [i, value] of [[0, 0], [1, 0.001567], [2, 0.003195], [3, 0.004886], [49, 0.790323]] as const) {
      expect(Math.abs(t50[i]! - value)).toBeLessThan(1e-6);
    }
    expect(Math.abs(flowMatchTimesteps(30, 13)[29]! - 0.690476)).toBeLessThan(1e-6);
    expect(Math.abs(flowMatchTimesteps(15, 17)[14]! - 0.451613)).toBeLessThan(1e-6);
    expect(Math.abs(flowMatchTimesteps(10, 17)[9]! - 0.346154)).toBeLessThan(1e-6);
  });

  it('is the plain linear schedule i/N without shift', () => {
    const sigmas = flowMatchSigmas(7, 1);
    for (let i = 0; i <= 7; i++) expect(Math.abs(sigmas[i]! - i / 7)).toBeLessThan(1e-7);
  });

  it('matches the shift formula 1 - s·u/(1 + (s-1)·u) in float64 to float32 precision', () => {
    for (const [steps, shift] of [[50, 13], [15, 17], [40, 7.3]] as const) {
      const sigmas = flowMatchSigmas(steps, shift);
      for (let i = 0; i <= steps; i++) {
        const u = 1 - i / steps;
        expect(Math.abs(sigmas[i]! - (1 - (shift * u) / (1 + (shift - 1) * u)))).toBeLessThan(3e-7);
      }
    }
  });

  it('rejects bad step counts and shifts', () => {
    expectError(() => flowMatchSigmas(0, 13), 'ERR_ARGUMENT', /steps must be an integer.*got 0/);
    expectError(() => flowMatchSigmas(2.5, 13), 'ERR_ARGUMENT', /steps/);
    expectError(() => flowMatchSigmas(10, 0), 'ERR_ARGUMENT', /timeShift must be a positive number/);
    expectError(() => flowMatchSigmas(10, Number.NaN), 'ERR_ARGUMENT', /timeShift/);
  });
});

describe('sampler presets', () => {
  it('are the official base and turbo settings', () => {
    expect(SAMPLER_PRESETS.base).toEqual({ steps: 50, cfgScale: 9, timeShift: 13 });
    expect(SAMPLER_PRESETS.turbo).toEqual({ steps: 15, cfgScale: 5, timeShift: 17 });
  });

  it('resolve with every value overridable', () => {
    expect(resolveSamplerSettings()).toEqual({ steps: 50, cfgScale: 9, timeShift: 13 });
    expect(resolveSamplerSettings({ preset: 'turbo' })).toEqual({ steps: 15, cfgScale: 5, timeShift: 17 });
    expect(resolveSamplerSettings({ preset: 'turbo', steps: 10 })).toEqual({ steps: 10, cfgScale: 5, timeShift: 17 });
    expect(resolveSamplerSettings({ cfgScale: 1, timeShift: 7 })).toEqual({ steps: 50, cfgScale: 1, timeShift: 7 });
  });

  it('reject unknown presets and bad overrides', () => {
    expectError(() => resolveSamplerSettings({ preset: 'fast' as never }), 'ERR_ARGUMENT', /unknown sampler preset: expected base or turbo, got fast/);
    expectError(() => resolveSamplerSettings({ steps: -1 }), 'ERR_ARGUMENT', /steps/);
    expectError(() => resolveSamplerSettings({ cfgScale: Number.POSITIVE_INFINITY }), 'ERR_ARGUMENT', /cfgScale must be a finite number/);
    expectError(() => resolveSamplerSettings({ timeShift: -2 }), 'ERR_ARGUMENT', /timeShift/);
  });
});

describe('prompt magic', () => {
  it('is the official CLI default, character for character', () => {
    // stepvideo/config.py --pos_magic / --neg_magic defaults (spec §4).
    expect(POS_MAGIC).toBe('超高清、HDR 视频、环境光、杜比全景声、画面稳定、流畅动作、逼真的细节、专业级构图、超现实主义、自然、生动、超细节、清晰。');
    expect(NEG_MAGIC).toBe('画面暗、低分辨率、不良手、文本、缺少手指、多余的手指、裁剪、低质量、颗粒状、签名、水印、用户名、模糊。');
  });

  it('appends the positive magic with no separator; the negative prompt is the negative magic alone', () => {
    expect(guidedPrompts('一只猫在弹钢琴。')).toEqual([`一只猫在弹钢琴。${POS_MAGIC}`, NEG_MAGIC]);
    expect(guidedPrompts('a cat', { posMagic: '', negMagic: 'blurry' })).toEqual(['a cat', 'blurry']);
    expect(guidedPrompts('a cat', { posMagic: ' sharp' })).toEqual(['a cat sharp', NEG_MAGIC]);
  });
});
