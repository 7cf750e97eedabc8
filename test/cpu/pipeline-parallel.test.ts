// StepVideo.load's sequenceParallel / cfgParallel (and the CLI's --sequence-parallel / --cfg-parallel)
// end to end on the CPU with the built-in model: CFG parallelism gives the one-rank video bit for
// bit, a job without guidance runs unsplit with a warning, and a degree that does not divide the
// DiT's heads fails before any weight is read.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { isStepVideoError } from '../../lib/errors.js';
import { StepVideo } from '../../lib/pipeline/pipeline.js';
import { runCli } from '../helpers/cli.js';
import { testCacheDir } from '../helpers/pipeline.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-pipeline-parallel-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const small = { prompt: 'a heron at dawn', frames: 17, height: 64, width: 64, steps: 2, seed: 9 } as const;

async function videoBytes(sv: StepVideo, name: string, request: Record<string, unknown> = {}): Promise<Buffer> {
  const file = path.join(work, name);
  await (await sv.generate({ ...small, ...request })).save(file);
  return readFileSync(file);
}

describe('DiT parallelism of StepVideo.load (CPU, built-in model)', () => {
  it('CFG parallelism: the same video bit for bit; without guidance it runs unsplit and says so', async () => {
    await using plain = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir });
    const expected = await videoBytes(plain, 'plain.y4m');
    const warnings: string[] = [];
    await using split = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir, cfgParallel: true });
    expect(split.parallelism).toEqual({ sequenceParallel: 1, cfgParallel: true });
    expect((await videoBytes(split, 'split.y4m')).equals(expected)).toBe(true);
    const unguided = await split.generate({ ...small, cfgScale: 1, onWarning: (m) => warnings.push(m) });
    await unguided.save(path.join(work, 'unguided.y4m'));
    expect(warnings.some((m) => /no classifier-free guidance/.test(m))).toBe(true);
  });

  it('devices: one per rank, the first the pipeline device; ranks on one device share its DiT; a wrong list fails before loading', async () => {
    await using sv = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir, cfgParallel: true, devices: ['cpu', 'cpu'] });
    expect(sv.rankModels).toEqual([sv.dit, sv.dit]);
    await using plain = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir });
    expect((await videoBytes(sv, 'devices.y4m')).equals(await videoBytes(plain, 'devices-plain.y4m'))).toBe(true);
    const short = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir, cfgParallel: true, devices: ['cpu'] }).catch((e: unknown) => e);
    expect(isStepVideoError(short, 'ERR_ARGUMENT')).toBe(true);
    expect((short as Error).message).toMatch(/one device per DiT rank: 2 here \(sequenceParallel 1 x 2 CFG groups\)/);
  });

  it('placement.vae with several devices: a decoder replica per extra device shares the chunks, the same video', async () => {
    await using shared = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir, placement: { text: 'cpu', vae: ['cpu', 'cpu'] } });
    expect(shared.vaeHelpers).toHaveLength(1);
    // One device here: its figure is the largest stage with the margin, as the job check uses it.
    const estimate = shared.estimateMemory(small);
    expect(Object.keys(estimate.devices)).toEqual(['cpu']);
    expect(estimate.devices.cpu).toBe(estimate.peakBytes);
    await using plain = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir });
    const request = { frames: 34 };  // two chunks: one per decoder
    expect((await videoBytes(shared, 'vae-shared.y4m', request)).equals(await videoBytes(plain, 'vae-plain.y4m', request))).toBe(true);
  });

  it('refuses a sequence-parallel degree that does not divide the heads (or is not a positive integer) before loading', async () => {
    const notDividing = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir, sequenceParallel: 2 }).catch((e: unknown) => e);
    expect(isStepVideoError(notDividing, 'ERR_ARGUMENT')).toBe(true);
    expect((notDividing as Error).message).toMatch(/must divide the DiT's 1 attention heads/);
    const zero = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir, sequenceParallel: 0 }).catch((e: unknown) => e);
    expect(isStepVideoError(zero, 'ERR_ARGUMENT')).toBe(true);
  });

  it('stepvideo generate --cfg-parallel writes the same video; --sequence-parallel 0 is a usage error', async () => {
    const base = ['generate', 'a heron at dawn', '--device', 'cpu', '--frames', '17', '--height', '64', '--width', '64', '--steps', '2', '--seed', '9'];
    const env = { STEPVIDEO_CACHE_DIR: testCacheDir };
    const [a, b] = [path.join(work, 'cli-a.y4m'), path.join(work, 'cli-b.y4m')];
    const one = await runCli([...base, '--out', a], { env });
    expect(one.code, one.stderr).toBe(0);
    const two = await runCli([...base, '--out', b, '--cfg-parallel'], { env });
    expect(two.code, two.stderr).toBe(0);
    expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
    const placed = await runCli([...base, '--out', b, '--text-device', 'cpu', '--vae-device', 'cpu'], { env });
    expect(placed.code, placed.stderr).toBe(0);
    expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
    const bad = await runCli([...base, '--out', b, '--sequence-parallel', '0'], { env });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--sequence-parallel needs a positive integer/);
  });
});
