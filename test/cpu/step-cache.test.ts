// Step caching in the sampler and the pipeline (CPU): a model whose conditional transformation
// v − x is constant is estimated exactly on the steps the cache skips, while its fast-changing
// unconditional branch is computed (branches decide alone); the built-in model with 'auto' and
// with 'teacache' after calibrate-cache, counting evaluations and returning every byte; the CLI's
// closing line; the server's `cache` field.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Device } from '../../lib/device.js';
import { StepVideoError } from '../../lib/errors.js';
import { StepVideo } from '../../lib/pipeline/pipeline.js';
import type { DenoiseProgress } from '../../lib/pipeline/progress.js';
import { type SampleProgress, type VelocityConditioning, type VelocityModel, sample } from '../../lib/sampler/index.js';
import { DEFAULT_LIMITS, parseVideoRequest } from '../../lib/server/requests.js';
import { Tensor } from '../../lib/tensor.js';
import { runCli } from '../helpers/cli.js';
import { testCacheDir } from '../helpers/pipeline.js';
import { Rng, randn } from '../helpers/random.js';

const CLIP = 2;
const LLM = 4;

/**
 * Conditional rows: v = x + c (a constant transformation, so the cache's estimate x + (v_last − x_last)
 * is exact). Unconditional rows: v = (1 + 400·t²)·x, whose transformation changes every step. A row's
 * branch is read from its text mask (conditional rows have one more valid token).
 */
class TwoBranchModel implements VelocityModel {
  readonly device = Device.cpu;
  readonly dtype = 'f32' as const;
  calls: { rows: number; branches: string }[] = [];

  prepareContext(cond: VelocityConditioning): Disposable & { branches: ('c' | 'u')[] } {
    const width = CLIP + LLM;
    const rows = cond.mask.length / width;
    const branches = Array.from({ length: rows }, (_, r) => (Array.from(cond.mask).slice(r * width, (r + 1) * width).filter((v) => v === 1).length === CLIP + 3 ? 'c' : 'u') as 'c' | 'u');
    return { branches, [Symbol.dispose]: () => undefined };
  }

  async forward(latents: Tensor, timestep: readonly number[], context: Disposable): Promise<Tensor> {
    const { branches } = context as unknown as { branches: ('c' | 'u')[] };
    this.calls.push({ rows: latents.size(0), branches: branches.join('') });
    const per = latents.numel / latents.size(0);
    const x = await latents.toFloat32();
    const out = new Float32Array(x.length);
    for (let r = 0; r < branches.length; r++) {
      for (let i = r * per; i < (r + 1) * per; i++) out[i] = branches[r] === 'c' ? x[i]! + 0.75 : (1 + 400 * timestep[r]! ** 2) * x[i]!;
    }
    return Tensor.from(out, [...latents.shape], { device: 'cpu' });
  }
}

function text(): { y: Tensor; clip: Tensor; yMask: number[] } & Disposable {
  const rng = new Rng(3);
  const y = Tensor.from(randn(rng, 2 * LLM * 8), [2, LLM, 8], { device: 'cpu' });
  const clip = Tensor.from(randn(rng, 2 * CLIP * 4), [2, CLIP, 4], { device: 'cpu' });
  // Row 0 (the prompt): 3 valid LLM tokens; row 1 (the negative): 2.
  const yMask = [1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0];
  return { y, clip, yMask, [Symbol.dispose]: () => [y, clip].forEach((t) => t.dispose()) };
}

describe('the step cache in sample()', () => {
  it('estimates the steady branch exactly, computes the changing one, and says which ran each step', async () => {
    using t = text();
    const shape = [1, 3, 4, 4, 4];
    const run = async (cache?: { method: 'auto'; threshold: number }) => {
      const model = new TwoBranchModel();
      const steps: SampleProgress[] = [];
      using latents = await sample(model, { noise: { seed: 5, shape }, text: t, steps: 12, cfgScale: 4, timeShift: 3, ...(cache ? { cache } : {}), onProgress: (p) => void steps.push({ ...p, evaluated: [...p.evaluated] }) });
      return { latents: await latents.toFloat32(), steps, calls: model.calls };
    };
    const plain = await run();
    expect(plain.steps.every((s) => s.evaluated.every(Boolean) && s.estimates === undefined)).toBe(true);
    expect(plain.steps.at(-1)!.evaluations).toBe(24);

    const cached = await run({ method: 'auto', threshold: 0.2 });
    const evaluated = cached.steps.map((s) => s.evaluated);
    // Forced: the first two and the last step, both branches.
    for (const i of [0, 1, 11]) expect(evaluated[i], `step ${i + 1}`).toEqual([true, true]);
    const condSkipped = evaluated.filter(([c]) => !c).length;
    const uncondSkipped = evaluated.filter(([, u]) => !u).length;
    expect(condSkipped, 'steady conditional steps estimated').toBeGreaterThan(0);
    expect(uncondSkipped, 'the changing branch is never estimated').toBe(0);
    expect(evaluated.some(([c, u]) => !c && u), 'a step computing one branch alone').toBe(true);
    // One-branch steps ran the model on that branch's rows with that branch's context.
    expect(cached.calls.filter((c) => c.rows === 1).map((c) => c.branches)).toContain('u');
    expect(cached.steps.at(-1)!.evaluations).toBe(24 - condSkipped - uncondSkipped);
    expect(cached.steps.at(-1)!.evaluations).toBe(cached.calls.reduce((n, c) => n + c.rows, 0));

    // Only the steady branch was estimated, and its estimate is exact but for f32 rounding of
    // x + (v_last − x_last): about 2^-24 of the values each step, times the guidance scale 4, over
    // 12 steps, so at most about 12·4·6e-8 ≈ 3e-6 of the largest value (the unconditional branch
    // grows the latents to about 1e8).
    const largest = Math.max(...plain.latents.map(Math.abs));
    const worst = Math.max(...plain.latents.map((v, i) => Math.abs(v - cached.latents[i]!)));
    expect(worst / largest).toBeLessThan(1e-5);
  });

  it('leaves no tensor behind, and stops on abort', async () => {
    using t = text();
    await Device.cpu.synchronize();
    const baseline = Device.cpu.memory().bytesInUse;
    const controller = new AbortController();
    await expect(
      sample(new TwoBranchModel(), {
        noise: { seed: 1, shape: [1, 3, 4, 4, 4] },
        text: t,
        steps: 12,
        cfgScale: 4,
        cache: { method: 'auto', threshold: 0.2 },
        signal: controller.signal,
        onProgress: (p) => {
          if (p.step === 5) controller.abort();
        },
      }),
    ).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    using done = await sample(new TwoBranchModel(), { noise: { seed: 1, shape: [1, 3, 4, 4, 4] }, text: t, steps: 12, cfgScale: 4, cache: { method: 'auto', threshold: 0.2 } });
    done.dispose();
    await Device.cpu.synchronize();
    expect(Device.cpu.memory().bytesInUse).toBe(baseline);
  });
});

describe('the step cache in the pipeline (built-in model)', () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-cache-'));
  const tiny = { frames: 17, height: 32, width: 32, steps: 10 };
  let sv: StepVideo;

  beforeAll(async () => {
    sv = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir });
  });

  afterAll(() => {
    sv?.dispose();
    rmSync(work, { recursive: true, force: true });
  });

  it("runs 'auto' and counts evaluations in the progress and the video's info; off by default", async () => {
    await Device.cpu.synchronize();
    const baseline = Device.cpu.memory().bytesInUse;
    const progress: DenoiseProgress[] = [];
    // The built-in model's random weights change their output a lot each step: a loose threshold makes it skip.
    const video = await sv.generate({ prompt: 'a cat', ...tiny, seed: 3, cache: 'auto:3', onProgress: (p) => p.stage === 'denoise' && p.block === undefined && progress.push(p) });
    expect(video.info.maxEvaluations).toBe(20);
    expect(video.info.evaluations).toBeLessThan(20);
    expect(video.info.evaluations).toBe(progress.at(-1)!.evaluations);
    expect(progress.map((p) => p.evaluated!.filter(Boolean).length).reduce((a, b) => a + b, 0)).toBe(video.info.evaluations);
    expect(progress.every((p) => p.estimates?.length === 2)).toBe(true);
    video.dispose();
    const plain = await sv.generate({ prompt: 'a cat', ...tiny, seed: 3 });
    expect([plain.info.evaluations, plain.info.maxEvaluations]).toEqual([20, 20]);
    plain.dispose();
    await Device.cpu.synchronize();
    expect(Device.cpu.memory().bytesInUse).toBe(baseline);
  });

  it("fits 'teacache' on the model, then runs it; without a calibration it says how to make one", async () => {
    await expect(sv.generate({ prompt: 'a cat', ...tiny, cache: 'teacache', cacheCoefficients: path.join(work, 'missing.json') })).rejects.toThrow(/calibrate-cache/);
    const calibration = await sv.calibrateCache({ prompts: ['a cat', 'a dog'], ...tiny });
    expect(calibration).toMatchObject({ method: 'teacache', degree: 4, runs: { prompts: 2, steps: 10, frames: 17 } });
    // Two runs of 10 steps: 9 consecutive pairs each.
    expect(calibration.fit.cond.samples).toBe(18);
    expect(calibration.coefficients.uncond).toHaveLength(5);
    const video = await sv.generate({ prompt: 'a cat', ...tiny, seed: 4, cache: 'teacache:2', cacheCoefficients: calibration.coefficients });
    expect(video.info.evaluations).toBeLessThan(video.info.maxEvaluations);
    video.dispose();
  });

  it('refuses a bad cache spec in the API and through the server’s request check', async () => {
    await expect(sv.generate({ prompt: 'x', ...tiny, cache: 'fast' })).rejects.toBeInstanceOf(StepVideoError);
    expect(parseVideoRequest({ prompt: 'x', cache: 'auto:0.1' }, DEFAULT_LIMITS).cache).toBe('auto:0.1');
    expect(() => parseVideoRequest({ prompt: 'x', cache: 'fast' }, DEFAULT_LIMITS)).toThrow(/'cache'/);
  });

  it('ends `stepvideo generate --cache` with the evaluation count and logs each decision', async () => {
    const out = path.join(work, 'cli.y4m');
    const result = await runCli(['generate', 'a cat', '--device', 'cpu', '--frames', '17', '--height', '32', '--width', '32', '--steps', '8', '--seed', '2', '--cache', 'auto:3', '--out', out], { env: { STEPVIDEO_CACHE_DIR: testCacheDir } });
    expect(result.code, result.stderr).toBe(0);
    const line = /^denoise: (\d+) of (\d+) model evaluations$/m.exec(result.stderr);
    expect(line).not.toBeNull();
    expect(Number(line![2])).toBe(16);
    expect(Number(line![1])).toBeLessThan(16);
    expect(result.stderr.match(/^step \d+\/8 cache: cond (computed|estimated) \([^)]+\), uncond (computed|estimated)/gm)).toHaveLength(8);
    const plain = await runCli(['generate', 'a cat', '--device', 'cpu', '--frames', '17', '--height', '32', '--width', '32', '--steps', '8', '--seed', '2', '--out', out], { env: { STEPVIDEO_CACHE_DIR: testCacheDir } });
    expect(plain.stderr).toMatch(/^denoise: 16 of 16 model evaluations$/m);
  });
});

