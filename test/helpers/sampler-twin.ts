// The sampler golden case run on the CPU twin with the official bf16 quantisation points: 3 Euler
// steps over the tiny DiT in f32, from the case's initial latents and captions. Its distance to the
// official bf16 final latents is the official run's own rounding noise (docs/TOLERANCES.md).
import path from 'node:path';

import type { readSafetensors } from '../../lib/io/safetensors.js';
import { StepVideoDiT } from '../../lib/models/dit/index.js';
import { sample } from '../../lib/sampler/index.js';
import { Tensor } from '../../lib/tensor.js';
import { tinyModelDir } from './golden.js';

type Case = Awaited<ReturnType<typeof readSafetensors>>;

export async function officialNumericsSample(samplerCase: Case, ditCase: Case): Promise<Float32Array> {
  using dit = await StepVideoDiT.load(path.join(tinyModelDir, 'transformer'), { device: 'cpu', numerics: 'bf16-official' });
  const host = (t: { shape: number[]; data: unknown }) => Tensor.from(t.data as Float32Array, t.shape, { device: 'cpu' });
  using latents = host(samplerCase.get('latents_init')!);
  using y = host(ditCase.get('encoder_hidden_states')!);
  using clip = host(ditCase.get('encoder_hidden_states_2')!);
  const yMask = Array.from(ditCase.get('encoder_attention_mask')!.data as Float32Array);
  using out = await sample(dit, { latents, text: { y, yMask, clip }, steps: 3, cfgScale: 9, timeShift: 13 });
  return (await out.toFloat32()).slice();
}
