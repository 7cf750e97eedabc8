// The compute dtype a model runs in on a device: the CPU backend computes in f32 only; CUDA runs
// f32 or bf16 (the official precision of the DiT, the VAE and Step-LLM).
import type { Device } from '../device.js';
import { StepVideoError } from '../errors.js';

export type ComputeDType = 'f32' | 'bf16';

/** `requested`, or `cudaDefault` on CUDA and f32 on the CPU; bf16 on the CPU is ERR_UNSUPPORTED. */
export function resolveComputeDType(device: Device, requested: ComputeDType | undefined, cudaDefault: ComputeDType, model: string): ComputeDType {
  const dtype = requested ?? (device.isCuda ? cudaDefault : 'f32');
  if (dtype !== 'f32' && dtype !== 'bf16') {
    throw new StepVideoError('ERR_ARGUMENT', `${model}: unknown compute dtype`, { expected: "'f32' or 'bf16'", got: dtype });
  }
  if (dtype === 'bf16' && !device.isCuda) {
    throw new StepVideoError('ERR_UNSUPPORTED', `${model}: the CPU backend computes in f32 only`, { expected: 'f32 on the CPU (bf16 needs a CUDA device)', got: dtype });
  }
  return dtype;
}
