// What the runtime can tell about the work it runs, for benchmarks, tests and diagnostics: ops
// enqueued per device (a CUDA op is one launch or one cuBLASLt call; data movement is not
// counted), the CPU executor's queue, the CUDA memory pool behind the allocator, and the
// cuBLASLt plans with their autotuning results.
import { type DeviceSpec, getDevice } from './device.js';
import { StepVideoError } from './errors.js';
import { native } from './native.js';

import type { CudaPoolStats, CudaStagingStats, GemmPlan } from './addon-types.js';
export type { CudaPoolStats, CudaStagingStats, GemmPlan };

/** Ops enqueued on the device since the process started (take differences around the work). */
export function opCount(device?: DeviceSpec): number {
  return native.opCount(getDevice(device).index);
}

/** Jobs queued on the CPU executor and not finished yet. */
export function cpuPendingJobs(): number {
  return native.cpuPendingJobs();
}

export function cudaPoolStats(device?: DeviceSpec): CudaPoolStats {
  const target = getDevice(device);
  if (!target.isCuda) throw new StepVideoError('ERR_DEVICE', 'the CPU has no CUDA memory pool', { expected: 'a CUDA device', got: target.name });
  return native.cudaPoolStats(target.index);
}

export function resetCudaPoolHigh(device?: DeviceSpec): void {
  const target = getDevice(device);
  if (!target.isCuda) throw new StepVideoError('ERR_DEVICE', 'the CPU has no CUDA memory pool', { expected: 'a CUDA device', got: target.name });
  native.cudaResetPoolHigh(target.index);
}

/**
 * Waits for the device, then returns the memory pool's unused blocks to the driver: afterwards the
 * device's free memory (`device.info().freeBytes`) is what a new allocation of any size can get.
 * (Freed blocks stay in the pool for reuse, and pieces of the wrong size cannot serve a request.)
 */
export async function trimCudaPool(device?: DeviceSpec): Promise<void> {
  const target = getDevice(device);
  if (!target.isCuda) throw new StepVideoError('ERR_DEVICE', 'the CPU has no CUDA memory pool', { expected: 'a CUDA device', got: target.name });
  await native.cudaTrimPool(target.index);
}

/** The pinned staging buffers behind CUDA reads, writes and transfers (zeros without CUDA). */
export function cudaStagingStats(): CudaStagingStats {
  const stats = native.cudaStagingStats();
  return { allocations: stats.allocations ?? 0, reuses: stats.reuses ?? 0, cachedBytes: stats.cachedBytes ?? 0 };
}

/** Every cuBLASLt plan made so far (none on the CPU or without cuBLASLt). */
export function gemmPlans(): GemmPlan[] {
  return native.gemmPlans();
}
