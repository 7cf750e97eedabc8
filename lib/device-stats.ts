// What the runtime can tell about the work it runs, for benchmarks, tests and diagnostics: ops
// enqueued per device (a CUDA op is one launch or one cuBLASLt call; data movement is not
// counted), the CPU executor's queue, the CUDA memory pool behind the allocator, and the
// cuBLASLt plans with their autotuning results.
import { type DeviceSpec, getDevice } from './device.js';
import { StepVideoError } from './errors.js';
import { native } from './native.js';

export interface CudaPoolStats {
  /** Bytes the pool holds from the driver (allocations are served from it without a cudaMalloc). */
  reservedBytes: number;
  /** Highest reservedBytes since the last resetCudaPoolHigh(). */
  reservedHighBytes: number;
  /** Bytes handed out by the pool (live stream-ordered allocations). */
  usedBytes: number;
  usedHighBytes: number;
}

export interface CudaStagingStats {
  /** Page-locked buffers made for reads, writes and transfers since the process started. */
  allocations: number;
  /** Reads, writes and transfers served from a cached buffer. */
  reuses: number;
  /** Bytes of page-locked buffers kept for reuse. */
  cachedBytes: number;
}

export interface GemmPlan {
  kind: 'matmul' | 'residual' | 'fp8';
  device: number;
  /** Rows, output features and inner size as cuBLASLt sees them (per group for 'residual'). */
  m: number;
  n: number;
  k: number;
  batch: number;
  /** Algorithms the heuristic offered (1 without autotuning). */
  candidates: number;
  /** The one in use once tuned. */
  chosen: number;
  tuned: boolean;
  /** Each candidate's time, once measured (-1: not measured or refused). */
  candidateMs: number[];
}

interface StatsNative {
  opCount(device: number): number;
  cpuPendingJobs(): number;
  cudaPoolStats(device: number): CudaPoolStats;
  cudaResetPoolHigh(device: number): void;
  cudaTrimPool(device: number): Promise<void>;
  cudaStagingStats(): CudaStagingStats;
  gemmPlans(): GemmPlan[];
}
const n = native as unknown as StatsNative;

/** Ops enqueued on the device since the process started (take differences around the work). */
export function opCount(device?: DeviceSpec): number {
  return n.opCount(getDevice(device).index);
}

/** Jobs queued on the CPU executor and not finished yet. */
export function cpuPendingJobs(): number {
  return n.cpuPendingJobs();
}

export function cudaPoolStats(device?: DeviceSpec): CudaPoolStats {
  const target = getDevice(device);
  if (!target.isCuda) throw new StepVideoError('ERR_DEVICE', 'the CPU has no CUDA memory pool', { expected: 'a CUDA device', got: target.name });
  return n.cudaPoolStats(target.index);
}

export function resetCudaPoolHigh(device?: DeviceSpec): void {
  const target = getDevice(device);
  if (!target.isCuda) throw new StepVideoError('ERR_DEVICE', 'the CPU has no CUDA memory pool', { expected: 'a CUDA device', got: target.name });
  n.cudaResetPoolHigh(target.index);
}

/**
 * Waits for the device, then returns the memory pool's unused blocks to the driver: afterwards the
 * device's free memory (`device.info().freeBytes`) is what a new allocation of any size can get.
 * (Freed blocks stay in the pool for reuse, and pieces of the wrong size cannot serve a request.)
 */
export async function trimCudaPool(device?: DeviceSpec): Promise<void> {
  const target = getDevice(device);
  if (!target.isCuda) throw new StepVideoError('ERR_DEVICE', 'the CPU has no CUDA memory pool', { expected: 'a CUDA device', got: target.name });
  await n.cudaTrimPool(target.index);
}

/** The pinned staging buffers behind CUDA reads, writes and transfers (zeros without CUDA). */
export function cudaStagingStats(): CudaStagingStats {
  const stats = n.cudaStagingStats();
  return { allocations: stats.allocations ?? 0, reuses: stats.reuses ?? 0, cachedBytes: stats.cachedBytes ?? 0 };
}

/** Every cuBLASLt plan made so far (none on the CPU or without cuBLASLt). */
export function gemmPlans(): GemmPlan[] {
  return n.gemmPlans();
}
