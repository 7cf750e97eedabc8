// LoRA adapters on the CUDA DiT (the built-in model): the adapter's forward on the GPU against the
// same adapter's forward on the f32 CPU twin. Bounds, before the run: the adapter adds Linears, adds
// and a GELU, computed like the block's own, so the forward keeps the DiT's contracts: f32 within
// 1e-4 of the largest value (the GPU f32 bound of test/gpu/dit.test.ts), bf16 within the golden
// contract of a bf16 DiT forward against float arithmetic, 1.25 x the official bf16 run's relative
// L2 error (the golden manifest's official_bf16_rel_err).
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { expect, it } from 'vitest';

import { getDevice } from '../../lib/device.js';
import type { HostTensor } from '../../lib/io/safetensors.js';
import { LORA_LINEARS, LoraAdapter, loraLinearShapes } from '../../lib/models/dit/lora.js';
import { StepVideoDiT } from '../../lib/models/dit/model.js';
import { ensureBuiltinModel } from '../../lib/pipeline/builtin/index.js';
import { Tensor } from '../../lib/tensor.js';
import { tinyModelDir } from '../helpers/golden.js';
import { describeGpu } from '../helpers/gpu.js';
import { testCacheDir } from '../helpers/pipeline.js';
import { Rng, randn } from '../helpers/random.js';

describeGpu('LoRA adapters on the CUDA DiT', () => {
  it('give what the CPU twin gives, in f32 and bf16', async () => {
    const dir = await ensureBuiltinModel({ cacheDir: testCacheDir });
    const cpu = await StepVideoDiT.load(`${dir}/transformer`, { device: 'cpu', dtype: 'f32' });
    const run = async (dit: StepVideoDiT): Promise<Float32Array> => {
      const rng = new Rng(5);
      const shapes = loraLinearShapes(dit.config);
      const tensors = new Map<string, HostTensor>();
      for (let i = 0; i < dit.config.numLayers; i++) {
        for (const linear of LORA_LINEARS) {
          const [inDim, outDim] = shapes[linear];
          tensors.set(`transformer_blocks.${i}.${linear}.lora_A.weight`, { dtype: 'f32', shape: [4, inDim], data: randn(rng, 4 * inDim, 0.1) });
          tensors.set(`transformer_blocks.${i}.${linear}.lora_B.weight`, { dtype: 'f32', shape: [outDim, 4], data: randn(rng, outDim * 4, 0.1) });
        }
      }
      using adapter = LoraAdapter.fromTensors(tensors, { config: dit.config, device: dit.device, dtype: dit.dtype, scale: 0.5 });
      const [c0, c1] = dit.config.captionChannels;
      const opts = { device: dit.device, dtype: dit.dtype };
      using latents = Tensor.from(randn(rng, 3 * dit.config.inChannels * 16), [1, 3, dit.config.inChannels, 4, 4], opts);
      using y = Tensor.from(randn(rng, 6 * c0), [1, 6, c0], opts);
      using clip = Tensor.from(randn(rng, 3 * c1), [1, 3, c1], opts);
      using context = dit.prepareContext({ y, clip, mask: [1, 1, 1, 1, 1, 1, 1, 0, 0], lora: adapter });
      using out = await dit.forward(latents, [0.6], context);
      return out.toFloat32();
    };
    try {
      const reference = await run(cpu);
      const largest = Math.max(...reference.map(Math.abs));
      for (const dtype of ['f32', 'bf16'] as const) {
        const gpu = await StepVideoDiT.load(`${dir}/transformer`, { device: getDevice('cuda'), dtype });
        try {
          const got = await run(gpu);
          if (dtype === 'f32') {
            expect(Math.max(...reference.map((v, i) => Math.abs(v - got[i]!))) / largest, 'f32').toBeLessThan(1e-4);
          } else {
            const manifest = JSON.parse(readFileSync(path.join(tinyModelDir, 'manifest.json'), 'utf8')) as { cases: { dit: { official_bf16_rel_err: number } } };
            const relL2 = Math.sqrt(reference.reduce((s, v, i) => s + (v - got[i]!) ** 2, 0) / reference.reduce((s, v) => s + v * v, 0));
            expect(relL2, 'bf16 relative L2').toBeLessThan(1.25 * manifest.cases.dit.official_bf16_rel_err);
          }
        } finally {
          gpu.dispose();
        }
      }
    } finally {
      cpu.dispose();
    }
  });
});

