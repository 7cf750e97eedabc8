// StepVideo.load's `weights: 'fp8'` and `streaming` on CUDA with the built-in test model: the DiT
// holds what the memory model counts (device and pinned host bytes), a job runs through FP8 block
// Linears uploaded slot by slot, its frames are finite, and device memory comes back to its
// baseline. One small job: about 12 s on the emulated device.
import { afterAll, beforeAll, expect, it } from 'vitest';

import { getDevice } from '../../lib/device.js';
import { estimateLoadMemory } from '../../lib/pipeline/memory.js';
import { StepVideo } from '../../lib/pipeline/pipeline.js';
import { allFinite } from '../helpers/compare.js';
import { describeGpu } from '../helpers/gpu.js';
import { testCacheDir } from '../helpers/pipeline.js';

describeGpu('StepVideo with FP8 streamed DiT weights (CUDA, built-in model)', () => {
  let sv: StepVideo;

  beforeAll(async () => {
    sv = await StepVideo.load({ device: 'cuda', cacheDir: testCacheDir, weights: 'fp8', streaming: true });
  }, 120_000);

  afterAll(() => {
    sv?.dispose();
  });

  it('holds the bytes the memory model counts and generates finite frames, memory back to its baseline', async () => {
    expect(sv.dit.execution).toMatchObject({ weights: 'fp8', fp8Activations: 'per-row', streaming: true });
    const estimate = estimateLoadMemory(sv.dims, sv.dtype, sv.dit.execution);
    expect(sv.dit.weightBytes).toBe(estimate.parts.dit);
    expect(sv.dit.hostWeightBytes).toBe(estimate.hostBytes);

    const cuda = getDevice('cuda');
    await cuda.synchronize();
    const baseline = cuda.memory().bytesInUse;
    const video = await sv.generate({ prompt: 'a paper boat on a river', frames: 17, height: 16, width: 16, steps: 1, seed: 3 });
    let frames = 0;
    for await (const chunk of video.chunks({ decoded: true })) {
      expect(allFinite(chunk.decoded!)).toBe(true);
      frames += chunk.decoded!.length / (3 * 16 * 16);
    }
    expect(frames).toBe(17);
    await cuda.synchronize();
    expect(cuda.memory().bytesInUse).toBe(baseline);
  }, 300_000);
});
