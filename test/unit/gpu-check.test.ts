// The device check (scripts/gpu-check.mjs) where no GPU is needed: its plan (the steps and time
// budgets a session gets before spending device time) and the lines it reports per benchmark.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// @ts-expect-error: a plain ES module without type declarations
import { STEPS, TEST_ENV, TOTAL_BUDGET_S, benchmarkLines } from '../../scripts/gpu-check.mjs';

const script = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'gpu-check.mjs');
const check = (...args: string[]) => spawnSync(process.execPath, [script, ...args], { encoding: 'utf8' });

describe('the GPU check', () => {
  it('--plan prints every step with its budget, ending with the total, the same every time', () => {
    const first = check('--plan');
    expect(first.status).toBe(0);
    const steps = STEPS as Array<{ name: string; budget: number }>;
    const total = steps.reduce((sum, step) => sum + step.budget, 0);
    expect(total).toBeLessThanOrEqual(TOTAL_BUDGET_S);
    expect(TOTAL_BUDGET_S).toBeLessThanOrEqual(300);  // one call of at most 5 minutes
    const lines = first.stdout.trim().split('\n');
    expect(lines.at(-1)).toBe(`plan: ${steps.length} steps, budget ${total} s`);
    for (const step of steps) expect(first.stdout).toMatch(new RegExp(`\\b${step.name}\\s+${step.budget} s`));
    expect(check('--plan').stdout).toBe(first.stdout);
  });

  it('--only reruns a part (with the unpacking and the environment check), and refuses unknown steps', () => {
    const only = check('--plan', '--only', 'tests');
    expect(only.status).toBe(0);
    expect(only.stdout.trim().split('\n').at(-1)).toMatch(/^plan: 3 steps, budget \d+ s$/);
    const unknown = check('--plan', '--only', 'no-such-step');
    expect(unknown.status).toBe(2);
  });

  it('requires the GPU and the goldens in every test step, and checks the VAE against its CPU twin', () => {
    expect(TEST_ENV).toMatchObject({ STEPVIDEO_REQUIRE_GPU: '1', STEPVIDEO_REQUIRE_GOLDEN: '1', STEPVIDEO_VAE_GOLDEN: 'twin' });
  });

  it('reports every benchmark with its figure, the baseline of the same run and the ratio', () => {
    const lines = benchmarkLines([
      { benchmark: 'attention', name: 'DiT self', path: 'auto (mma)', medianMs: 200, tflops: 300 },
      { benchmark: 'attention-baseline', name: 'DiT self', backend: 'cudnn', ms: 100, tflops: 600 },
      { benchmark: 'attention-baseline', name: 'DiT self', backend: 'flash', ms: 170, tflops: 350 },
    ]) as Array<{ benchmark: string; figure: string; baseline: string; ratio: string }>;
    expect(lines.length).toBe(2);
    for (const line of lines) {
      expect(line.figure).toMatch(/ms/);
      expect(line.baseline).not.toBe('missing');
    }
    expect(lines.map((line) => line.ratio)).toEqual(['0.50x', '0.85x']);
  });
});
