// Initial latents: seeded Gaussian noise that is identical on the CPU and on CUDA, and the latent
// shape of a video size.
//
// The official pipeline draws its noise from an unseeded torch CUDA generator (spec §4), which no
// port can reproduce; this library's noise is its own, reproducible stream instead (Philox4x32-10
// + Box-Muller, lib/kernels/random.ts). Parity with official outputs therefore passes the noise
// in as a tensor.
import type { DeviceSpec } from '../device.js';
import { StepVideoError } from '../errors.js';
import { randomNormal } from '../kernels/random.js';
import { FRAMES_PER_CHUNK, LATENT_CHANNELS, LATENTS_PER_CHUNK, SPATIAL_FACTOR } from '../models/vae/config.js';
import type { Shape } from '../shape.js';
import type { Tensor } from '../tensor.js';

/**
 * f32 standard-normal latents of `shape` for `seed` (an integer in [0, 2^64), number or bigint),
 * the same values on every device. Enqueued; the caller owns the tensor.
 */
export function generateNoise(shape: Shape, seed: number | bigint, device?: DeviceSpec): Tensor {
  return randomNormal(shape, { seed, ...(device !== undefined ? { device } : {}) });
}

export interface VideoSize {
  /** Frames; a multiple of 17 (each 17-frame chunk becomes 3 latent frames). */
  frames: number;
  /** Pixels; a multiple of 16. */
  height: number;
  width: number;
  /** Videos per batch (default 1). */
  batch?: number;
  /** Latent channels: the VAE's z_channels (default LATENT_CHANNELS, the released 64). */
  channels?: number;
}

export { LATENT_CHANNELS };

/** The latent shape [B, 3·frames/17, channels, height/16, width/16] of a video size (544×992×204 → [1, 36, 64, 34, 62]). */
export function latentShape(size: VideoSize): [number, number, number, number, number] {
  const { frames, height, width, batch = 1, channels = LATENT_CHANNELS } = size;
  const check = (name: string, value: number, multiple: number): void => {
    if (!Number.isInteger(value) || value < multiple || value % multiple !== 0) {
      throw new StepVideoError('ERR_ARGUMENT', `${name} must be a positive multiple of ${multiple}`, { got: value });
    }
  };
  check('frames', frames, FRAMES_PER_CHUNK);
  check('height', height, SPATIAL_FACTOR);
  check('width', width, SPATIAL_FACTOR);
  check('batch', batch, 1);
  check('channels', channels, 1);
  return [batch, (frames / FRAMES_PER_CHUNK) * LATENTS_PER_CHUNK, channels, height / SPATIAL_FACTOR, width / SPATIAL_FACTOR];
}
