// Devices: the CPU reference backend and CUDA GPUs. Each device has one ordered queue of work (a
// CUDA stream, or the CPU executor thread), reached through its execution contexts (lib/context.ts);
// ops enqueue and return at once, reads are async.
import { StepVideoError } from './errors.js';
import { ExecutionContext, contextFor } from './context.js';
import { DEFAULT_KERNEL_POLICY, type KernelPolicy, environmentKernelPolicy } from './kernel-policy.js';
import { type AddonSource, addonSource, native, type NativeMemoryStats } from './native.js';

export type DeviceKind = 'cpu' | 'cuda';
export type DeviceSpec = 'cpu' | 'cuda' | `cuda:${number}` | Device;

export interface MemoryStats {
  /** Bytes held by live tensors (and views' storages) on this device. */
  bytesInUse: number;
  /** Highest bytesInUse since start or the last resetPeakMemory(). */
  peakBytes: number;
  /** Number of live allocations. */
  liveBlocks: number;
}

export class Device {
  /** Native index: -1 for the CPU, the CUDA ordinal otherwise. */
  readonly index: number;
  readonly kind: DeviceKind;

  private constructor(kind: DeviceKind, index: number) {
    this.kind = kind;
    this.index = index;
  }

  static readonly cpu = new Device('cpu', -1);
  private static readonly cudaDevices = new Map<number, Device>();

  /** @internal */
  static cuda(ordinal: number): Device {
    let existing = Device.cudaDevices.get(ordinal);
    if (existing === undefined) {
      warnOnceIfNoCublasLt();
      existing = new Device('cuda', ordinal);
      existing.#context = new ExecutionContext(existing, environmentKernelPolicy());
      Device.cudaDevices.set(ordinal, existing);
    }
    return existing;
  }

  #context: ExecutionContext | undefined;

  /**
   * The device's default execution context (lib/context.ts): the one ops use unless another was made
   * current with context.run(). On CUDA its kernel policy starts as the environment's.
   */
  get context(): ExecutionContext {
    this.#context ??= new ExecutionContext(this, { ...DEFAULT_KERNEL_POLICY });
    return this.#context;
  }

  /** The kernel choices of the ops enqueued on this device now (the current context's). */
  kernelPolicy(): KernelPolicy {
    return { ...contextFor(this).policy };
  }

  /** Changes the kernel choices of the device's default context, for the ops enqueued from now on (CUDA devices only). */
  setKernelPolicy(changes: Partial<KernelPolicy>): void {
    if (!this.isCuda) throw new StepVideoError('ERR_DEVICE', 'the CPU backend has one kernel per op: no kernel policy to set', { got: this.name });
    this.#context = this.context.withPolicy(changes);
  }

  /**
   * Runs `fn` with these kernel choices (a context derived from the current one, made current for
   * fn and everything it awaits; see ExecutionContext.run). fn may be async.
   */
  withKernelPolicy<T>(changes: Partial<KernelPolicy>, fn: () => T): T {
    return contextFor(this).withPolicy(changes).run(fn);
  }

  get name(): string {
    return this.kind === 'cpu' ? 'cpu' : `cuda:${this.index}`;
  }

  get isCuda(): boolean {
    return this.kind === 'cuda';
  }

  /** Resolves once every op enqueued on this device so far has run (rejects if one failed). */
  async synchronize(): Promise<void> {
    await native.synchronize(this.index);
  }

  memory(): MemoryStats {
    const stats: NativeMemoryStats = native.memoryStats(this.index);
    return { ...stats };
  }

  resetPeakMemory(): void {
    native.resetPeak(this.index);
  }

  /** Name, compute capability and memory of a CUDA device. */
  info(): { name: string; computeCapability: string; multiprocessors: number; totalBytes: number; freeBytes: number } {
    if (this.kind === 'cpu') {
      return { name: 'cpu', computeCapability: '', multiprocessors: native.cpuThreadCount(), totalBytes: 0, freeBytes: 0 };
    }
    return native.cudaDeviceInfo(this.index);
  }

  toString(): string {
    return this.name;
  }
}

export function cudaDeviceCount(): number {
  return native.cudaDeviceCount();
}

export function cudaAvailable(): boolean {
  return cudaDeviceCount() > 0;
}

/** Why CUDA cannot be used here ('' when it can). */
export function cudaUnavailableReason(): string {
  return cudaAvailable() ? '' : native.cudaUnavailableReason();
}

/**
 * Resolves a device spec. 'cuda' means cuda:0. Asking for a CUDA device that does not exist is
 * ERR_DEVICE with the reason (no driver, no GPU, CPU-only build).
 */
export function getDevice(spec: DeviceSpec = defaultDevice()): Device {
  if (spec instanceof Device) return spec;
  if (spec === 'cpu') return Device.cpu;
  const match = /^cuda(?::(\d+))?$/.exec(spec);
  if (match === null) {
    throw new StepVideoError('ERR_ARGUMENT', 'unknown device', { expected: "'cpu', 'cuda' or 'cuda:N'", got: spec });
  }
  const ordinal = match[1] === undefined ? 0 : Number(match[1]);
  const count = cudaDeviceCount();
  if (ordinal >= count) {
    const reason = count === 0 ? native.cudaUnavailableReason() : `only ${count} CUDA device(s) visible`;
    throw new StepVideoError('ERR_DEVICE', `CUDA device ${spec} is not available: ${reason}`);
  }
  return Device.cuda(ordinal);
}

/**
 * The device used when none is given: STEPVIDEO_DEVICE if set ('cpu', 'cuda', 'cuda:N'),
 * otherwise cuda:0 when a GPU answers, otherwise the CPU.
 */
export function defaultDevice(): Device {
  const forced = process.env.STEPVIDEO_DEVICE;
  if (forced !== undefined && forced !== '') return getDevice(forced as DeviceSpec);
  return cudaAvailable() ? Device.cuda(0) : Device.cpu;
}

/** CUDA versions: the runtime this addon carries and what the installed driver supports. */
export interface CudaVersions {
  /** The addon's CUDA runtime, e.g. '13.0' ('' in builds without CUDA). */
  runtime: string;
  /** The newest CUDA version the installed driver supports ('' without a driver). */
  driver: string;
  /** The NVIDIA kernel module's release, e.g. '580.65.06' ('' when unknown). */
  driverRelease: string;
  /** The driver release the runtime needs, e.g. '580'. */
  driverMinimum: string;
}

function versionText(version: number): string {
  return version > 0 ? `${Math.floor(version / 1000)}.${Math.floor((version % 1000) / 10)}` : '';
}

/** What this build and host can do, for diagnostics (`stepvideo info`). */
export function backendInfo(): {
  /** Where the loaded addon came from: a prebuilt platform package, a source build, or STEPVIDEO_ADDON. */
  addon: AddonSource;
  cudaCompiled: boolean;
  /** The CUDA device is the SIMT emulator running the CUDA kernels on the CPU (STEPVIDEO_CUDA=emulate builds). */
  cudaEmulated: boolean;
  cudaArchitectures: string;
  cudaDevices: number;
  cudaUnavailableReason: string;
  cudaVersions: CudaVersions;
  cpuThreads: number;
} {
  const v = native.cudaVersions();
  return {
    addon: addonSource(),
    cudaCompiled: native.build.cuda,
    cudaEmulated: native.build.cudaEmulated,
    cudaArchitectures: native.build.cudaArchitectures,
    cudaDevices: cudaDeviceCount(),
    cudaUnavailableReason: cudaUnavailableReason(),
    cudaVersions: { runtime: versionText(v.runtime), driver: versionText(v.driver), driverRelease: v.driverRelease, driverMinimum: v.driverMinimum },
    cpuThreads: native.cpuThreadCount(),
  };
}

/**
 * The first GPU fault that left the device unusable ('' while it is healthy). After a fault every
 * call on the device fails with ERR_CUDA_FAULT naming it; only a new process recovers.
 */
export function deviceFault(device: Device): string {
  return device.isCuda ? native.cudaDeviceFault(device.index) : '';
}

/** Where the CUDA GEMMs' libcublasLt was loaded from, or path null with what was tried (then the own GEMM kernel runs). */
export interface CublasLtInfo {
  path: string | null;
  why: string;
}

/** cuBLASLt as the addon found it (searched and loaded on the first call; see cuda/library_search.h for the order). */
export function cublasLtInfo(): CublasLtInfo {
  const { path, why } = native.libraryInfo('cublasLt');
  return { path, why };
}

/** Where libcublasLt is looked for, in order, with the environment as it is now ([] without CUDA; diagnostics and tests). */
export function cublasLtCandidates(): string[] {
  return native.debugLibraryCandidates('cublasLt');
}

/** NCCL as the addon found it: the collectives of ranks on several GPUs (loaded only when asked: here, or by a multi-GPU job). */
export interface NcclInfo {
  path: string | null;
  why: string;
  /** e.g. '2.27.4' ('' when not loaded). */
  version: string;
}

export function ncclInfo(): NcclInfo {
  const { path, why, version } = native.libraryInfo('nccl');
  const text = version > 0 ? `${Math.floor(version / 10000)}.${Math.floor((version % 10000) / 100)}.${version % 100}` : '';
  return { path, why, version: text };
}

/** Where libnccl.so.2 is looked for, in order ([] without CUDA). */
export function ncclCandidates(): string[] {
  return native.debugLibraryCandidates('nccl');
}

export const NCCL_INSTALL_ADVICE =
  "install NCCL 2 (Debian/Ubuntu: `apt install libnccl2`, or NVIDIA's repositories), or `pip install nvidia-nccl-cu12`, or set STEPVIDEO_NCCL=/path/libnccl.so.2";

export const CUBLASLT_INSTALL_ADVICE =
  "install the CUDA toolkit's libcublas, or `pip install nvidia-cublas` (CUDA 13) / `pip install nvidia-cublas-cu12`, or set STEPVIDEO_CUBLASLT=/path/libcublasLt.so.13";

/**
 * The warning for a CUDA build that will run its GEMMs on the own kernel for want of cuBLASLt;
 * undefined when cuBLASLt is there, when there is no CUDA, or when the kernel policy chose the own kernel (gemm 'fallback').
 */
export function missingCublasLtWarning(info: CublasLtInfo, build: { cuda: boolean }, gemm: KernelPolicy['gemm']): string | undefined {
  if (!build.cuda || info.path !== null || gemm === 'fallback') return undefined;
  const reason = info.why.startsWith('STEPVIDEO_CUBLASLT') ? info.why : 'libcublasLt.so.13/.12 was not found';
  return `${reason}: the CUDA matrix products run on stepvideo's own GEMM kernel, which is slower. To use cuBLASLt, ${CUBLASLT_INSTALL_ADVICE} (\`stepvideo info\` shows where it looked)`;
}

let cublasLtChecked = false;

/** At the first CUDA device of the process: one warning (stderr, process.emitWarning) if cuBLASLt is missing. */
function warnOnceIfNoCublasLt(): void {
  if (cublasLtChecked) return;
  cublasLtChecked = true;
  const warning = missingCublasLtWarning(cublasLtInfo(), native.build, environmentKernelPolicy().gemm);
  if (warning !== undefined) process.emitWarning(warning, { type: 'StepVideoWarning', code: 'STEPVIDEO_NO_CUBLASLT' });
}
