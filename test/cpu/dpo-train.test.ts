// Video-DPO training on the built-in model (CPU): on a toy preference set (chosen and rejected
// videos of two clearly different kinds) the loss falls and the implicit reward accuracy rises,
// and sampling with the trained LoRA moves toward the chosen kind; the same seed gives the same
// adapter, and a run resumed from a checkpoint ends where the uninterrupted run does.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { HostTensor } from '../../lib/io/safetensors.js';
import { StepVideo } from '../../lib/pipeline/pipeline.js';
import { sample } from '../../lib/sampler/sample.js';
import { Tensor } from '../../lib/tensor.js';
import { type PreparedPair, saveLora, trainDpo } from '../../lib/training/trainer.js';
import { testCacheDir } from '../helpers/pipeline.js';
import { Rng, randn } from '../helpers/random.js';

const SHAPE: [number, number, number, number, number] = [1, 2, 8, 4, 4];
const NUMEL = 256;
const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-dpo-train-'));
let sv: StepVideo;
let text: PreparedPair['text'];
let deviceText: { y: Tensor; clip: Tensor; yMask: Int32Array };

/** The chosen kind: a smooth pattern (cosine in space, alternating sign by channel); the rejected kind is its negative. */
const PATTERN = Float32Array.from({ length: NUMEL }, (_, i) => {
  const w = i % 4;
  const h = Math.floor(i / 4) % 4;
  const c = Math.floor(i / 16) % 8;
  return Math.cos((Math.PI * (h + w)) / 4) * (c % 2 === 0 ? 1 : -1);
});

function toyPairs(count: number): PreparedPair[] {
  const rng = new Rng(99);
  return Array.from({ length: count }, () => {
    const jitter = () => randn(rng, NUMEL, 0.1);
    const [a, b] = [jitter(), jitter()];
    return {
      chosen: { shape: SHAPE, data: PATTERN.map((v, i) => v + a[i]!) },
      rejected: { shape: SHAPE, data: PATTERN.map((v, i) => -v + b[i]!) },
      text,
    };
  });
}

/** Cosine similarity of sampled latents with the chosen kind's pattern (the rejected kind scores its negative). */
async function kindScore(lora: Awaited<ReturnType<typeof trainDpo>>['lora'] | undefined, seed: number): Promise<number> {
  using adapter = lora?.adapter('f32');
  using latents = await sample(sv.dit, { noise: { seed, shape: SHAPE }, text: deviceText, steps: 10, cfgScale: 1, timeShift: 13, ...(adapter ? { lora: adapter } : {}) });
  const x = await latents.toFloat32();
  let [dot, xx, pp] = [0, 0, 0];
  for (let i = 0; i < NUMEL; i++) {
    dot += x[i]! * PATTERN[i]!;
    xx += x[i]! ** 2;
    pp += PATTERN[i]! ** 2;
  }
  return dot / Math.sqrt(xx * pp);
}

beforeAll(async () => {
  sv = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir });
  const encoded = await sv.text.encodePrompts(['a pattern of light and shadow']);
  deviceText = { y: encoded.y, clip: encoded.clip, yMask: encoded.yMask };
  const host = async (t: Tensor): Promise<HostTensor> => ({ dtype: 'f32', shape: [...t.shape], data: await t.toFloat32() });
  text = { y: await host(encoded.y), clip: await host(encoded.clip), mask: encoded.yMask };
});

afterAll(() => {
  deviceText?.y.dispose();
  deviceText?.clip.dispose();
  sv?.dispose();
  rmSync(work, { recursive: true, force: true });
});

describe('DPO training (built-in model, toy preference set)', () => {
  it('the loss falls, the reward accuracy rises, and sampling with the LoRA moves toward the chosen kind', async () => {
    const pairs = toyPairs(4);
    const result = await trainDpo(sv.dit, pairs, { steps: 40, rank: 4, lr: 5e-3, beta: 500, seed: 3 });
    try {
      const losses = result.history.map((h) => h.loss);
      expect(losses[0]).toBeCloseTo(Math.log(2), 10); // B = 0: the adapter starts as the reference
      const tail = result.history.slice(-8);
      const tailLoss = tail.reduce((a, h) => a + h.loss, 0) / tail.length;
      const tailAccuracy = tail.reduce((a, h) => a + h.accuracy, 0) / tail.length;
      expect(tailLoss).toBeLessThan(0.5 * Math.log(2));
      expect(tailAccuracy).toBeGreaterThanOrEqual(0.75);
      for (const seed of [1, 2, 3]) {
        const [before, after] = [await kindScore(undefined, seed), await kindScore(result.lora, seed)];
        expect(after, `seed ${seed}: score ${before} -> ${after}`).toBeGreaterThan(before);
      }
    } finally {
      result.lora.dispose();
    }
  }, 300_000);

  it('the same seed gives the same adapter; a resumed run ends where the uninterrupted one does', async () => {
    const pairs = toyPairs(3);
    const options = { rank: 2, lr: 1e-3, beta: 500, seed: 8 };
    const files = ['a', 'b', 'c'].map((n) => path.join(work, `${n}.safetensors`));
    const straight = await trainDpo(sv.dit, pairs, { ...options, steps: 4 });
    await saveLora(files[0]!, straight.lora);
    straight.lora.dispose();
    const again = await trainDpo(sv.dit, pairs, { ...options, steps: 4 });
    await saveLora(files[1]!, again.lora);
    again.lora.dispose();
    expect(readFileSync(files[1]!).equals(readFileSync(files[0]!))).toBe(true);

    const checkpoint = path.join(work, 'run.checkpoint.safetensors');
    const first = await trainDpo(sv.dit, pairs, { ...options, steps: 2, checkpoint: { file: checkpoint, every: 0 } });
    first.lora.dispose();
    const resumed = await trainDpo(sv.dit, pairs, { ...options, steps: 4, resume: checkpoint });
    await saveLora(files[2]!, resumed.lora);
    resumed.lora.dispose();
    expect(resumed.history).toHaveLength(4);
    expect(resumed.history.map((h) => h.loss)).toEqual(straight.history.map((h) => h.loss));
    expect(readFileSync(files[2]!).equals(readFileSync(files[0]!))).toBe(true);

    await expect(trainDpo(sv.dit, pairs, { ...options, seed: 9, steps: 4, resume: checkpoint })).rejects.toMatchObject({ code: 'ERR_ARGUMENT' });
    await expect(trainDpo(sv.dit, toyPairs(2), { ...options, steps: 4, resume: checkpoint })).rejects.toMatchObject({ code: 'ERR_ARGUMENT' });
  }, 300_000);
});
