// `stepvideo run vae-encode`: the VAE encoder on frames [B, 17k, 3, H, W] (the official encode's `x`,
// in [-1, 1]), output `encoded_moments` [B, 3k, 2z, H/16, W/16]: the raw moments (mean channels, then
// logvar) before clamping and sampling, as the golden cases store them; written as float32.
import type { TensorData } from '../../io/safetensors.js';
import { VAE_WEIGHTS_FILE, VideoVAE } from '../../models/vae/index.js';
import { type Component, type ComponentContext, resolvePartDir } from '../component.js';
import { videoInput } from './vae-decode.js';

const component: Component = {
  name: 'vae-encode',
  description: 'Video VAE encoder (vae/vae_v2.safetensors): frames to posterior moments, 17 frames -> 3 latent frames per chunk',
  inputs: [{ name: 'frames', description: 'frames [B, 17k, 3, H, W] (float, in [-1, 1]; H and W multiples of 16)' }],
  outputs: ['encoded_moments'],
  async run(context: ComponentContext): Promise<Record<string, TensorData>> {
    const dir = resolvePartDir(context.modelDir, 'vae', VAE_WEIGHTS_FILE);
    context.log(`vae-encode: loading ${dir} (${context.dtype} on ${context.device.name})`);
    using vae = await VideoVAE.load(dir, { device: context.device, dtype: context.dtype, signal: context.signal, parts: ['encoder'] });
    using frames = videoInput(context, 'frames', '[B, 17k, 3, H, W]');
    using moments = await vae.encodeMoments(frames, { signal: context.signal });
    return { encoded_moments: { dtype: 'f32', shape: [...moments.shape], data: await moments.toFloat32() } };
  },
};

export default component;
