// `stepvideo run vae-decode`: the VAE decoder on latents [B, 3k, z, h, w] (the official decode's `z`),
// output `decoded` [B, 17k, 3, 16h, 16w] (after the boundary mix, not clamped), written as float32.
// Chunks are streamed to the host as they become final, so the device never holds the whole video.
import { f16BitsToF32 } from '../../dtype.js';
import { StepVideoError } from '../../errors.js';
import type { TensorData } from '../../io/safetensors.js';
import { FRAMES_PER_CHUNK, LATENTS_PER_CHUNK, VAE_WEIGHTS_FILE, VideoVAE } from '../../models/vae/index.js';
import { formatShape } from '../../shape.js';
import { Tensor } from '../../tensor.js';
import { type Component, type ComponentContext, requireInput, resolvePartDir } from '../component.js';

/** A floating-point input of rank 5 as a tensor on the context's device in its compute dtype. */
export function videoInput(context: ComponentContext, name: string, layout: string): Tensor {
  const host = requireInput(context, name);
  if (host.dtype !== 'f32' && host.dtype !== 'bf16' && host.dtype !== 'f16') {
    throw new StepVideoError('ERR_DTYPE', `${name} must hold floating-point values`, { tensor: name, expected: 'float32, bfloat16 or float16', got: host.dtype });
  }
  if (host.shape.length !== 5) throw new StepVideoError('ERR_SHAPE', `${name} must be ${layout}`, { tensor: name, got: formatShape(host.shape) });
  const data = host.dtype === 'f16' ? Float32Array.from(host.data as Uint16Array, f16BitsToF32) : (host.data as Float32Array | Uint16Array);
  return Tensor.from(data, host.shape, { dtype: context.dtype, device: context.device });
}

const component: Component = {
  name: 'vae-decode',
  description: 'Video VAE decoder (vae/vae_v2.safetensors): latents to frames, 3 latent frames -> 17 frames per chunk, chunk boundaries mixed',
  inputs: [{ name: 'latents', description: 'latents [B, 3k, z, h, w] (float; z = 64 released)' }],
  outputs: ['decoded'],
  async run(context: ComponentContext): Promise<Record<string, TensorData>> {
    const dir = resolvePartDir(context.modelDir, 'vae', VAE_WEIGHTS_FILE);
    context.log(`vae-decode: loading ${dir} (${context.dtype} on ${context.device.name})`);
    using vae = await VideoVAE.load(dir, { device: context.device, dtype: context.dtype, signal: context.signal, parts: ['decoder'] });
    using latents = videoInput(context, 'latents', '[B, 3k, z, h, w]');
    const [B, F, , h, w] = latents.shape as [number, number, number, number, number];
    const chunks = F / LATENTS_PER_CHUNK, frames = chunks * FRAMES_PER_CHUNK;
    const frameSize = 3 * h * w * 256;  // 3 channels at 16x the latent resolution
    const decoded = new Float32Array(B * frames * frameSize);
    await vae.decode(latents, {
      signal: context.signal,
      onChunk: async (chunk, index, total) => {
        const values = await chunk.toFloat32();
        for (let b = 0; b < B; b++) {
          const from = b * FRAMES_PER_CHUNK * frameSize;
          decoded.set(values.subarray(from, from + FRAMES_PER_CHUNK * frameSize), (b * frames + index * FRAMES_PER_CHUNK) * frameSize);
        }
        context.log(`vae-decode: chunk ${index + 1}/${total} (frames ${index * FRAMES_PER_CHUNK}-${(index + 1) * FRAMES_PER_CHUNK - 1})`);
      },
    });
    return { decoded: { dtype: 'f32', shape: [B, frames, 3, 16 * h, 16 * w], data: decoded } };
  },
};

export default component;
