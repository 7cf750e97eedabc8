// Checks of the tensors the VAE route receives, shared by the single-process server and the queue
// workers that decode for API nodes.
import { type HostTensor, hostTensorToF32 } from '../io/safetensors.js';
import { FRAMES_PER_CHUNK, LATENTS_PER_CHUNK, SPATIAL_FACTOR } from '../models/vae/config.js';
import { HttpError } from './http.js';
import type { ServerLimits } from './requests.js';

/** The 'samples' tensor of a /vae-api body as f32, after checking its shape against the VAE and the limits. */
export function checkVaeSamples(samples: HostTensor | undefined, zChannels: number, limits: ServerLimits, names: readonly string[] = []): Float32Array {
  if (samples === undefined) throw new HttpError(400, 'missing_tensor', `the body must hold a tensor named 'samples' [B, F, z, h, w] (found: ${names.join(', ') || 'none'})`);
  const [B, F, Z, h, w] = samples.shape;
  if (samples.shape.length !== 5 || Z !== zChannels) throw new HttpError(400, 'bad_shape', `'samples' must be [B, F, ${zChannels}, h, w] (got [${samples.shape.join(', ')}])`);
  const maxLatentFrames = Math.floor(limits.maxFrames / FRAMES_PER_CHUNK) * LATENTS_PER_CHUNK;
  const maxLatentSize = Math.floor(limits.maxSize / SPATIAL_FACTOR);
  if (B! < 1 || B! > 4 || F! < LATENTS_PER_CHUNK || F! > maxLatentFrames || F! % LATENTS_PER_CHUNK !== 0 || h! < 1 || h! > maxLatentSize || w! < 1 || w! > maxLatentSize) {
    throw new HttpError(400, 'out_of_range', `'samples' [${samples.shape.join(', ')}] is outside the limits: B 1..4, F a multiple of ${LATENTS_PER_CHUNK} up to ${maxLatentFrames}, h and w up to ${maxLatentSize}`);
  }
  const values = toFloat32(samples);
  if (values.some((v) => !Number.isFinite(v))) throw new HttpError(400, 'not_finite', "'samples' holds NaN or infinite values");
  return values;
}

function toFloat32(tensor: HostTensor): Float32Array {
  const values = hostTensorToF32(tensor);
  if (values === undefined) throw new HttpError(400, 'bad_dtype', `'samples' must be F32, BF16 or F16 (got ${tensor.dtype})`);
  return values;
}
