// The compute dtype a model runs in on a device: the CPU backend computes in f32 only; CUDA runs
// f32 or bf16 (the official precision of the DiT, the VAE and Step-LLM). The one place that says
// what the default is: models, the pipeline, weight loading and the CLI all ask here.
import type { Device } from '../device.js';
import { StepVideoError } from '../errors.js';

export type ComputeDType = 'f32' | 'bf16';

/** The default on a device: `cudaDefault` (bf16 unless given) on CUDA, f32 on the CPU. */
export function defaultComputeDType(device: Pick<Device, 'isCuda'>, cudaDefault: ComputeDType = 'bf16'): ComputeDType {
  return device.isCuda ? cudaDefault : 'f32';
}

/** `requested`, or the device's default (defaultComputeDType); bf16 on the CPU is ERR_UNSUPPORTED. */
export function resolveComputeDType(device: Device, requested: ComputeDType | undefined, cudaDefault: ComputeDType, model: string): ComputeDType {
  const dtype = requested ?? defaultComputeDType(device, cudaDefault);
  if (dtype !== 'f32' && dtype !== 'bf16') {
    throw new StepVideoError('ERR_ARGUMENT', `${model}: unknown compute dtype`, { expected: "'f32' or 'bf16'", got: dtype });
  }
  if (dtype === 'bf16' && !device.isCuda) {
    throw new StepVideoError('ERR_UNSUPPORTED', `${model}: the CPU backend computes in f32 only`, { expected: 'f32 on the CPU (bf16 needs a CUDA device)', got: dtype });
  }
  return dtype;
}
