// StepVideo.load's `weights` and `streaming` (and the CLI's --weights / --stream-weights) end to end
// on the CPU with the built-in model: FP8 weights and streamed blocks are accepted there (the DiT
// runs its CPU twins), the loaded DiT holds what the memory model says, a streamed DiT gives the
// resident one's video bit for bit, and budgets and formats that cannot be honoured fail clearly
// before any weight is read.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { isStepVideoError } from '../../lib/errors.js';
import { estimateLoadMemory } from '../../lib/pipeline/memory.js';
import { StepVideo } from '../../lib/pipeline/pipeline.js';
import { runCli } from '../helpers/cli.js';
import { testCacheDir } from '../helpers/pipeline.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-pipeline-weights-'));

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

/** A small job: 17 frames of 64×64, 2 steps. */
const small = { prompt: 'a lighthouse in a storm', frames: 17, height: 64, width: 64, steps: 2, seed: 5 } as const;

async function videoBytes(sv: StepVideo, name: string): Promise<Buffer> {
  const file = path.join(work, name);
  await (await sv.generate(small)).save(file);
  return readFileSync(file);
}

describe('DiT weight options of StepVideo.load (CPU, built-in model)', () => {
  it("FP8 weights: accepted on the CPU, the DiT holds what the memory model counts, and a video comes out", async () => {
    await using sv = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir, weights: 'fp8' });
    expect(sv.dit.execution).toMatchObject({ weights: 'fp8', streaming: false });
    const estimate = estimateLoadMemory(sv.dims, sv.dtype, sv.dit.execution);
    expect(sv.dit.weightBytes).toBe(estimate.parts.dit);
    expect(estimate.parts.dit).toBeLessThan(estimateLoadMemory(sv.dims, sv.dtype).parts.dit);
    expect(sv.estimateMemory(small).stages.denoise).toBeGreaterThan(0);
    const bytes = await videoBytes(sv, 'fp8.y4m');
    expect(bytes.subarray(0, 9).toString()).toBe('YUV4MPEG2');
  });

  it('streamed weights: accepted on the CPU with a warning, host bytes as counted, the same video as resident weights', async () => {
    const warnings: string[] = [];
    await using streamed = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir, streaming: true, onWarning: (m) => warnings.push(m) });
    expect(streamed.dit.execution).toMatchObject({ weights: 'model', streaming: true });
    expect(warnings.some((m) => /streaming on the CPU saves no memory/.test(m))).toBe(true);
    const estimate = estimateLoadMemory(streamed.dims, streamed.dtype, streamed.dit.execution);
    expect(streamed.dit.weightBytes).toBe(estimate.parts.dit);
    expect(streamed.dit.hostWeightBytes).toBe(estimate.hostBytes);
    expect(estimate.hostBytes).toBeGreaterThan(0);
    const fromStreamed = await videoBytes(streamed, 'streamed.y4m');

    await using resident = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir, streaming: { deviceBudgetBytes: 1e12 } });
    expect(resident.dit.execution.streaming).toBe(false); // the budget holds the resident weights
    expect(fromStreamed.equals(await videoBytes(resident, 'resident.y4m'))).toBe(true);
  });

  it('refuses an unknown weight format and a budget below the streamed weights with ERR_ARGUMENT, before loading', async () => {
    const started = performance.now();
    const format = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir, weights: 'int4' as never }).catch((e: unknown) => e);
    expect(isStepVideoError(format, 'ERR_ARGUMENT')).toBe(true);
    expect((format as Error).message).toMatch(/weights/);
    const budget = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir, streaming: { deviceBudgetBytes: 1000 } }).catch((e: unknown) => e);
    expect(isStepVideoError(budget, 'ERR_ARGUMENT')).toBe(true);
    expect((budget as Error).message).toMatch(/streaming\.deviceBudgetBytes is too small/);
    expect(performance.now() - started).toBeLessThan(5000);
  });
});

describe('stepvideo generate --weights / --stream-weights (CPU, built-in model)', () => {
  const env = { STEPVIDEO_CACHE_DIR: testCacheDir };
  const args = (out: string) => ['generate', small.prompt, '--device', 'cpu', '--frames', '17', '--height', '64', '--width', '64', '--steps', '2', '--seed', '5', '--out', path.join(work, out)];

  it('generates with FP8 weights and a budget that holds them, and says how the DiT holds its weights', async () => {
    const result = await runCli([...args('cli-fp8.y4m'), '--weights', 'fp8', '--stream-weights', '1'], { env });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim()).toBe(path.join(work, 'cli-fp8.y4m'));
    expect(result.stderr).toMatch(/\(cpu, float32, FP8 weights\)/);
  });

  it('names --stream-weights when its budget cannot hold even the streamed weights, and --weights for an unknown format', async () => {
    const budget = await runCli([...args('never.y4m'), '--stream-weights', '0.000001'], { env });
    expect(budget.code).toBe(1);
    expect(budget.stderr).toMatch(/ERR_USAGE/);
    expect(budget.stderr).toMatch(/--stream-weights 0\.000001 \(GB\) is too small/);
    const format = await runCli([...args('never.y4m'), '--weights', 'int4'], { env });
    expect(format.code).toBe(1);
    expect(format.stderr).toMatch(/ERR_USAGE.*--weights/);
  });
});
