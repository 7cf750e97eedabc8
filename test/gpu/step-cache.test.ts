// The step cache on the CUDA DiT (the built-in model): the teacache probe against the CPU twin, and
// a cached sampling run taking the CPU twin's decisions with latents within the sampler's GPU bound.
// Bounds, before the run: the probe is a patch embedding, AdaLN modulation and a LayerNorm, f32 on
// both sides: within 1e-4 of its largest value (the GPU f32 bound of the kernel suites). The cached
// run: the decisions compare accumulated estimates with the threshold; the test first checks every
// CPU estimate is at least 2 % away from it, so f32 differences (about 1e-6 relative) cannot flip
// one; the final latents then agree within 1e-3 of their largest value (six Euler steps of a
// random-weight DiT with cfg 4, whose GPU/CPU f32 differences compound step by step).
import { expect, it } from 'vitest';

import { getDevice } from '../../lib/device.js';
import { StepVideoDiT } from '../../lib/models/dit/model.js';
import { ensureBuiltinModel } from '../../lib/pipeline/builtin/index.js';
import { type SampleProgress, sample } from '../../lib/sampler/index.js';
import { Tensor } from '../../lib/tensor.js';
import { describeGpu } from '../helpers/gpu.js';
import { testCacheDir } from '../helpers/pipeline.js';
import { Rng, randn } from '../helpers/random.js';

describeGpu('the step cache on the CUDA DiT', () => {
  it('probes as the CPU twin does, and caches the same steps', async () => {
    const dir = await ensureBuiltinModel({ cacheDir: testCacheDir });
    const threshold = 3;
    const run = async (device: 'cpu' | 'cuda') => {
      const dit = await StepVideoDiT.load(`${dir}/transformer`, { device: getDevice(device), dtype: 'f32' });
      try {
        const rng = new Rng(21);
        const [c0, c1] = dit.config.captionChannels;
        const opts = { device: dit.device };
        using latents = Tensor.from(randn(rng, 3 * dit.config.inChannels * 16), [1, 3, dit.config.inChannels, 4, 4], opts);
        const probe = await dit.cacheProbe(latents, 0.4);
        using y = Tensor.from(randn(rng, 2 * 6 * c0), [2, 6, c0], opts);
        using clip = Tensor.from(randn(rng, 2 * 3 * c1), [2, 3, c1], opts);
        const steps: SampleProgress[] = [];
        using out = await sample(dit, {
          latents,
          text: { y, clip, yMask: [1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0] },
          steps: 6,
          cfgScale: 4,
          timeShift: 3,
          cache: { method: 'auto', threshold },
          onProgress: (p) => void steps.push({ ...p, evaluated: [...p.evaluated] }),
        });
        return { probe, latents: await out.toFloat32(), steps };
      } finally {
        dit.dispose();
      }
    };
    const cpu = await run('cpu');
    const gpu = await run('cuda');
    const largestProbe = Math.max(...cpu.probe.map(Math.abs));
    expect(Math.max(...cpu.probe.map((v, i) => Math.abs(v - gpu.probe[i]!))) / largestProbe, 'probe').toBeLessThan(1e-4);
    for (const s of cpu.steps) for (const e of s.estimates ?? []) if (Number.isFinite(e)) expect(Math.abs(e - threshold) / threshold, `estimate ${e} at step ${s.step}`).toBeGreaterThan(0.02);
    expect(gpu.steps.map((s) => s.evaluated)).toEqual(cpu.steps.map((s) => s.evaluated));
    expect(cpu.steps.at(-1)!.evaluations, 'some branch estimated').toBeLessThan(12);
    const largest = Math.max(...cpu.latents.map(Math.abs));
    expect(Math.max(...cpu.latents.map((v, i) => Math.abs(v - gpu.latents[i]!))) / largest, 'latents').toBeLessThan(1e-3);
  });
});
