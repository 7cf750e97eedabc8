// One Video-DPO step on the CUDA DiT (the built-in model): the four squared errors, the loss and the
// LoRA gradients (the tape's backward: attentionBackward, layerNormBackward, splitHeadsBackward,
// geluTanhBackward and GEMMs on the GPU) against the same step on the f32 CPU twin.
//
// Bounds, before the run. f32: the CUDA forward is within 1e-4 of the largest value of the CPU
// twin's (test/gpu/dit.test.ts); an error e is a mean of squares of v − target, so it moves by about
// 2·1e-4 of itself: 5e-4 relative. The backward runs about twice the forward's ops on the same
// values, each within a few ulp of f32 of the twin's, plus the forward's 1e-4 carried into the
// checkpoints and dOut: the gradients agree to 1e-3 in relative L2. bf16: the forward's contract
// is a relative L2 error of 1.25 x the official bf16 run's (the golden manifest's, about 1e-2):
// e within 3e-2 relative; every backward op rounds its output to bf16 (3.9e-3) and a gradient
// passes through about 15 of them per block, √15·3.9e-3 ≈ 1.5e-2 per block, two blocks and the
// forward's error on top: 6e-2 in relative L2.
import { expect, it } from 'vitest';

import { getDevice } from '../../lib/device.js';
import type { HostTensor } from '../../lib/io/safetensors.js';
import { LORA_LINEARS, LoraAdapter, loraLinearShapes } from '../../lib/models/dit/lora.js';
import { StepVideoDiT } from '../../lib/models/dit/model.js';
import { ensureBuiltinModel } from '../../lib/pipeline/builtin/index.js';
import { Tensor } from '../../lib/tensor.js';
import { dpoStep } from '../../lib/training/dpo-step.js';
import { trainDpo } from '../../lib/training/trainer.js';
import { describeGpu } from '../helpers/gpu.js';
import { testCacheDir } from '../helpers/pipeline.js';
import { Rng, randn } from '../helpers/random.js';

interface StepValues {
  errors: number[];
  loss: number;
  grads: Map<string, Float32Array>;
}

async function runStep(dit: StepVideoDiT, offloadCheckpoints = false): Promise<StepValues> {
  const rng = new Rng(12);
  const shapes = loraLinearShapes(dit.config);
  const tensors = new Map<string, HostTensor>();
  for (let i = 0; i < dit.config.numLayers; i++)
    for (const linear of LORA_LINEARS) {
      const [inDim, outDim] = shapes[linear];
      tensors.set(`transformer_blocks.${i}.${linear}.lora_A.weight`, { dtype: 'f32', shape: [2, inDim], data: randn(rng, 2 * inDim, 0.1) });
      tensors.set(`transformer_blocks.${i}.${linear}.lora_B.weight`, { dtype: 'f32', shape: [outDim, 2], data: randn(rng, outDim * 2, 0.02) });
    }
  using adapter = LoraAdapter.fromTensors(tensors, { config: dit.config, device: dit.device, dtype: dit.dtype });
  const [c0, c1] = dit.config.captionChannels;
  const opts = { device: dit.device, dtype: dit.dtype };
  const shape = [1, 3, dit.config.inChannels, 4, 4];
  const n = 3 * dit.config.inChannels * 16;
  using chosen = Tensor.from(randn(rng, n), shape, opts);
  using rejected = Tensor.from(randn(rng, n, 0.5), shape, opts);
  using noise = Tensor.from(randn(rng, n), shape, opts);
  using y = Tensor.from(randn(rng, 6 * c0), [1, 6, c0], opts);
  using clip = Tensor.from(randn(rng, 3 * c1), [1, 3, c1], opts);
  const result = await dpoStep(dit, adapter, { chosen, rejected, noise, sigma: [0.6], text: { y, clip, mask: [1, 1, 1, 1, 1, 1, 1, 0, 0] } }, { beta: 5, offloadCheckpoints });
  const grads = new Map<string, Float32Array>();
  for (const [key, g] of result.grads!) {
    grads.set(`${key}.A`, await g.a.toFloat32());
    grads.set(`${key}.B`, await g.b.toFloat32());
    g.a.dispose();
    g.b.dispose();
  }
  const e = result.errors;
  return { errors: [e.chosen[0]!, e.rejected[0]!, e.chosenRef[0]!, e.rejectedRef[0]!], loss: result.loss.loss, grads };
}

function relativeL2(reference: Map<string, Float32Array>, got: Map<string, Float32Array>): number {
  let [diff, norm] = [0, 0];
  for (const [name, r] of reference) {
    const g = got.get(name)!;
    for (let i = 0; i < r.length; i++) {
      diff += (r[i]! - g[i]!) ** 2;
      norm += r[i]! ** 2;
    }
  }
  return Math.sqrt(diff / norm);
}

describeGpu('Video-DPO step on the CUDA DiT', () => {
  it('gives the errors, loss and LoRA gradients of the CPU twin, in f32 and bf16', async () => {
    const dir = await ensureBuiltinModel({ cacheDir: testCacheDir });
    const cpu = await StepVideoDiT.load(`${dir}/transformer`, { device: 'cpu', dtype: 'f32' });
    let reference: StepValues;
    try {
      reference = await runStep(cpu);
    } finally {
      cpu.dispose();
    }
    expect(reference.grads.size).toBe(4 * LORA_LINEARS.length);
    for (const [dtype, errorBound, gradBound] of [['f32', 5e-4, 1e-3], ['bf16', 3e-2, 6e-2]] as const) {
      const gpu = await StepVideoDiT.load(`${dir}/transformer`, { device: getDevice('cuda'), dtype });
      try {
        const got = await runStep(gpu);
        got.errors.forEach((e, i) => expect(Math.abs(e - reference.errors[i]!) / reference.errors[i]!, `${dtype} error ${i}`).toBeLessThan(errorBound));
        expect(relativeL2(reference.grads, got.grads), `${dtype} gradients`).toBeLessThan(gradBound);
        // Checkpoints kept in host memory and brought back per block: the same numbers, bit for bit.
        const offloaded = await runStep(gpu, true);
        expect(offloaded.errors).toEqual(got.errors);
        for (const [name, g] of got.grads) expect(Array.from(offloaded.grads.get(name)!), name).toEqual(Array.from(g));
      } finally {
        gpu.dispose();
      }
    }
  });

  it('refuses, before any work, a step the memory model says cannot fit, naming what would help', async () => {
    const dir = await ensureBuiltinModel({ cacheDir: testCacheDir });
    const gpu = await StepVideoDiT.load(`${dir}/transformer`, { device: getDevice('cuda'), dtype: 'bf16' });
    try {
      // 36 x 272 x 496 latents on the built-in model: 4.9 M tokens, far past the emulated 8 GiB (or a GPU's memory).
      const shape: [number, number, number, number, number] = [1, 36, gpu.config.inChannels, 272, 496];
      const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
      const text = { y: { dtype: 'f32' as const, shape: [1, 1, gpu.config.captionChannels[0]], data: new Float32Array(gpu.config.captionChannels[0]) }, clip: { dtype: 'f32' as const, shape: [1, 1, gpu.config.captionChannels[1]], data: new Float32Array(gpu.config.captionChannels[1]) }, mask: [1, 1] };
      const pair = { chosen: { shape, data }, rejected: { shape, data }, text };
      await expect(trainDpo(gpu, [pair], { steps: 1 })).rejects.toMatchObject({ code: 'ERR_CUDA_OOM', message: expect.stringMatching(/a DPO step on 36x272x496 latents needs about .* GB of GPU memory.*--offload-checkpoints/) });
    } finally {
      gpu.dispose();
    }
  });
});
