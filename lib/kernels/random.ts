// Typed wrapper of the random family (native/random.h): seeded Gaussian noise that is the same on
// the CPU and on CUDA (bit for bit in f32) for the same seed, shape and offset.
import type { DType } from '../dtype.js';
import { type DeviceSpec, getDevice } from '../device.js';
import { StepVideoError } from '../errors.js';
import { opsOn } from '../context.js';
import { type Shape, validateShape } from '../shape.js';
import { Tensor } from '../tensor.js';

const MAX_SEED = (1n << 64n) - 1n;

export interface RandomNormalOptions {
  /** Any integer in [0, 2^64): a number (safe integer) or a bigint. */
  seed: number | bigint;
  /** Position of the first element in the seed's stream (default 0): chunks of one stream line up. */
  offset?: number;
  /** f32 everywhere; bf16/f16 on CUDA only (the f32 value rounded once). */
  dtype?: DType;
  device?: DeviceSpec;
}

/** Splits a seed into its two 32-bit words, rejecting anything that is not an integer in [0, 2^64). */
export function seedWords(seed: number | bigint): [low: number, high: number] {
  if (typeof seed === 'number' && !Number.isSafeInteger(seed)) {
    throw new StepVideoError('ERR_ARGUMENT', 'seed must be a safe integer or a bigint', { got: seed });
  }
  const value = BigInt(seed);
  if (value < 0n || value > MAX_SEED) {
    throw new StepVideoError('ERR_ARGUMENT', 'seed out of range', { expected: 'an integer in [0, 2^64)', got: value.toString() });
  }
  return [Number(value & 0xffffffffn), Number(value >> 32n)];
}

/**
 * Standard-normal samples: element i is value (offset + i) of the stream of `seed`, made by
 * Philox4x32-10 (counter = i div 4, key = seed) and Box-Muller on word pairs. Enqueued; no wait.
 */
export function randomNormal(shape: Shape, options: RandomNormalOptions): Tensor {
  const { offset = 0, dtype = 'f32' } = options;
  const [low, high] = seedWords(options.seed);
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new StepVideoError('ERR_ARGUMENT', 'randomNormal offset must be a non-negative safe integer', { got: offset });
  }
  const device = getDevice(options.device);
  if (!(dtype === 'f32' || (device.isCuda && (dtype === 'bf16' || dtype === 'f16')))) {
    throw new StepVideoError('ERR_DTYPE', `randomNormal on ${device.name} produces f32${device.isCuda ? ', bf16 or f16' : ''}`, { got: dtype });
  }
  const out = Tensor.empty(validateShape(shape), dtype, device);
  try {
    opsOn(out.device).randomNormal(out.handle, low, high, offset);
  } catch (error) {
    out.dispose();
    throw error;
  }
  return out;
}
