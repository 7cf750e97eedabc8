// Everything the native addon exports, typed in one place (as node-llama-cpp's AddonTypes.ts does):
// the opaque handles, the result shapes, and one interface per op family, joined into NativeAddon.
// lib/native.ts loads the addon as this type; `ADDON_EXPORTS` lists the names so a test can check
// that the binary exports exactly what is typed here (test/cpu/addon-types.test.ts).

/** The opaque native tensor handle (see native/tensor_handle.h). */
export interface NativeTensorHandle {
  dispose(): void;
  view(dtype: number, shape: number[], byteOffset: number): NativeTensorHandle;
  sharesStorageWith(other: NativeTensorHandle): boolean;
  readonly disposed: boolean;
  readonly byteLength: number;
}

/** A CUDA event recorded on the copy stream by a context's upload (opaque: only waitFor reads it). */
export type NativeCopyEvent = { readonly __brand: 'NativeCopyEvent' };

type H = NativeTensorHandle;

export interface NativeMemoryStats {
  bytesInUse: number;
  peakBytes: number;
  liveBlocks: number;
}

export interface NativeDeviceInfo {
  name: string;
  computeCapability: string;
  multiprocessors: number;
  totalBytes: number;
  freeBytes: number;
}

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

/** Tensors, devices, memory, copies and the foundation ops (native/addon.cc, device_glue.cc, io_glue.cc, ops_core.cc). */
interface CoreFamily {
  /** A tensor of `shape` on `device` (-1: the CPU); `pinned` makes a CPU tensor page-locked (streamed weights). */
  NativeTensor: new (device: number, dtype: number, shape: number[], pinned?: boolean) => H;
  build: { cuda: boolean; cudaEmulated: boolean; cudaArchitectures: string; napiVersion: number };
  setErrorFactory(factory: (code: string, message: string) => Error): void;
  setPoison(on: boolean): void;
  cpuThreadCount(): number;
  cudaDeviceCount(): number;
  cudaUnavailableReason(): string;
  cudaDeviceInfo(device: number): NativeDeviceInfo;
  cudaVersions(): { runtime: number; driver: number; driverRelease: string; driverMinimum: string };
  cudaDeviceFault(device: number): string;
  /** Where an optional library (cuBLASLt, NCCL) was loaded from (searched on the first call), or path null and what was tried; NCCL's version. */
  libraryInfo(library: 'cublasLt' | 'nccl'): { path: string | null; why: string; version: number };
  /** The places the library is looked for, in order, with the environment as it is now ([] without CUDA). */
  debugLibraryCandidates(library: 'cublasLt' | 'nccl'): string[];
  /** Launches a kernel that traps (tests of the fault path: the device is lost for the process). */
  debugFaultDevice(device: number): void;
  memoryStats(device: number): NativeMemoryStats;
  resetPeak(device: number): void;
  synchronize(device: number): Promise<void>;
  write(tensor: H, data: ArrayBufferView, srcDtype: number): void;
  read(tensor: H): Promise<ArrayBuffer>;
  transfer(dst: H, src: H): Promise<void>;
  loadTensors(entries: Array<{ tensor: H; path: string; offset: number; byteLength: number; srcDtype: number }>): Promise<void>;
  /** An execution context on `device` (-1: the CPU) with these kernel choices (native/exec_context.h; lib/context.ts). */
  NativeContext: new (
    device: number, attention: string, hopperSchedule: string, hopperStages: number, hopperInAuto: boolean, conv: string, gemm: string,
    gemmAutotune: boolean, fp8FastAccum: boolean,
  ) => NativeContextHandle;
  /** Each op family's names in code order (native/kernels.h). */
  opCodes(): { binary: string[]; unary: string[]; reduce: string[] };
}

/** The foundation ops (native/ops_core.cc). */
interface CoreOps {
  copy(dst: H, src: H, shape: number[], srcStrides: number[], srcOffset: number, dstStrides: number[], dstOffset: number): void;
  binary(out: H, a: H, b: H, op: number): void;
  unary(out: H, x: H, op: number, alpha: number, beta: number): void;
  matmul(out: H, a: H, b: H, bias: H | null, transB: boolean, alpha: number, epilogue?: number): void;
  softmax(out: H, x: H): void;
  reduce(out: H, x: H, axis: number, op: number): void;
  fill(out: H, value: number): void;
}

/** Runtime statistics (native/diagnostics_glue.cc, device_glue.cc). */
interface StatsFamily {
  opCount(device: number): number;
  cpuPendingJobs(): number;
  cudaPoolStats(device: number): CudaPoolStats;
  cudaResetPoolHigh(device: number): void;
  cudaTrimPool(device: number): Promise<void>;
  cudaStagingStats(): CudaStagingStats;
  gemmPlans(): GemmPlan[];
}

/** An NCCL group over distinct CUDA devices (opaque; native/comm_glue.cc). */
export type NativeNcclGroup = { readonly __brand: 'NativeNcclGroup' };

/** Collectives between ranks on several GPUs (native/comm_glue.cc, cuda/nccl.h). */
interface CommFamily {
  /** One NCCL communicator per device; ERR_UNSUPPORTED naming what to install when NCCL is missing. */
  ncclGroupCreate(devices: number[]): NativeNcclGroup;
  /** sends[s][r] (on rank s's device) to recvs[r][s]; enqueued on each device's work stream. */
  ncclAllToAll(group: NativeNcclGroup, sends: H[][], recvs: H[][]): void;
}

/** Weight streaming through a context: uploads on its copy stream, waits on its work stream (native/context_glue.cc). */
interface StreamingMethods {
  /** The upload's event on CUDA; null on the CPU (there the copy runs in program order). */
  upload(dst: H, src: H): NativeCopyEvent | null;
  waitFor(event: NativeCopyEvent | null): void;
}

/** native/norm.h */
interface NormFamily {
  layerNorm(out: H, x: H, weight: H | null, bias: H | null, scale: H | null, shift: H | null, eps: number): void;
  layerNormBackward(dx: H, dy: H, x: H, weight: H | null, scale: H | null, eps: number): void;
  rmsNorm(out: H, x: H, weight: H | null, eps: number): void;
  groupNorm(out: H, x: H, weight: H, bias: H, groups: number, eps: number, silu: boolean): void;
}

/** native/residual.h */
interface ResidualFamily {
  gatedResidual(out: H, x: H, y: H, gate: H | null): void;
}

/** native/attention.h */
interface AttentionFamily {
  attention(out: H, q: H, k: H, v: H, kvLen: H | null, scale: number, causal: boolean, alibiSqrt: boolean): void;
  attentionKernelName(out: H, q: H, k: H, v: H, kvLen: H | null, scale: number, causal: boolean, alibiSqrt: boolean): string;
  attentionBackward(dq: H, dk: H, dv: H, q: H, k: H, v: H, out: H, dOut: H, kvLen: H | null, scale: number): void;
}

/** native/conv.h */
interface ConvFamily {
  conv3d(out: H, x: H, weight: H, bias: H | null, residual: H | null, stride: number[], pads: number[], upsample: number[]): void;
  conv3dKernelName(out: H, x: H, weight: H, bias: H | null, residual: H | null, stride: number[], pads: number[], upsample: number[]): string;
}

/** native/embedding.h, native/linear.h, native/swiglu.h, native/vae.h, native/random.h, native/sampler.h */
interface ModelOpsFamily {
  embedding(out: H, table: H, ids: H): void;
  linearResidual(out: H, x: H, weight: H, residual: H, gate: H | null): void;
  swiglu(out: H, x: H): void;
  upsampleResidual(out: H, h: H, x: H, upT: number, upS: number): void;
  randomNormal(out: H, seedLow: number, seedHigh: number, offset: number): void;
  cfgEulerStep(x: H, velocity: H, nextInput: H | null, guidance: boolean, guidanceScale: number, dt: number): void;
}

/** The head split with QK-Norm and 3D RoPE (native/split_heads.h). */
interface SplitHeadsFamily {
  splitHeads(
    proj: H, q: H | null, k: H | null, v: H | null, qNorm: H | null, kNorm: H | null, ropeTable: H | null,
    grid: number[], split: number[], heads: number, parts: number, qPart: number, kPart: number, vPart: number, eps: number,
  ): void;
  splitHeadsBackward(
    dproj: H, proj: H, dq: H | null, dk: H | null, dv: H | null, qNorm: H | null, kNorm: H | null, ropeTable: H | null,
    grid: number[], split: number[], heads: number, parts: number, qPart: number, kPart: number, vPart: number, eps: number,
  ): void;
}

/** native/fp8.h */
interface Fp8Family {
  fp8Quantize(codes: H, scales: H, x: H): void;
  fp8Dequantize(out: H, codes: H, scales: H): void;
  linearFp8(out: H, x: H, codes: H, scales: H, activations: number, epilogue: number): void;
}

/** The emulated CUDA device's test hooks: present in STEPVIDEO_CUDA=emulate builds only. */
interface EmulatorHooks {
  emulatorInjectFailure?(site: 'cudaMallocAsync' | 'kernel' | 'cublasLtCreate' | 'cudaEventRecord', after: number): void;
  emulatorSetMemoryCapacity?(bytes: number): void;
  emulatorMemory?(): { capacity: number; reserved: number; used: number };
}

/**
 * The native execution context (opaque apart from its methods): every op is a method of it, so the
 * glue finds the op's streams, workspace, cuBLASLt handle and kernel policy as `this`.
 */
export type NativeOps = CoreOps & NormFamily & ResidualFamily & AttentionFamily & ConvFamily & ModelOpsFamily & SplitHeadsFamily & Fp8Family;
export type NativeContextHandle = NativeOps & StreamingMethods & { readonly device: number };

/** The addon's exports. */
export type NativeAddon = CoreFamily & StatsFamily & CommFamily & EmulatorHooks;

/** Every name the addon exports (the emulator's hooks only in emulated builds). */
export const ADDON_EXPORTS = [
  'NativeTensor', 'build', 'setErrorFactory', 'setPoison', 'cpuThreadCount', 'cudaDeviceCount', 'cudaUnavailableReason',
  'cudaDeviceInfo', 'cudaVersions', 'cudaDeviceFault', 'libraryInfo', 'debugLibraryCandidates', 'cudaStagingStats', 'debugFaultDevice',
  'memoryStats', 'resetPeak', 'synchronize', 'write', 'read', 'transfer', 'loadTensors', 'NativeContext', 'opCodes',
  'opCount', 'cpuPendingJobs', 'cudaPoolStats', 'cudaResetPoolHigh', 'cudaTrimPool', 'gemmPlans',
  'ncclGroupCreate', 'ncclAllToAll',
  'emulatorInjectFailure', 'emulatorSetMemoryCapacity', 'emulatorMemory',
] as const satisfies ReadonlyArray<keyof NativeAddon>;

/** Every method of a native context: the ops and weight streaming's upload and wait. */
export const CONTEXT_METHODS = [
  'copy', 'binary', 'unary', 'matmul', 'softmax', 'reduce', 'fill',
  'layerNorm', 'layerNormBackward', 'rmsNorm', 'groupNorm', 'gatedResidual', 'attention', 'attentionKernelName', 'attentionBackward', 'conv3d', 'conv3dKernelName',
  'embedding', 'linearResidual', 'swiglu', 'upsampleResidual', 'randomNormal', 'cfgEulerStep', 'splitHeads', 'splitHeadsBackward',
  'fp8Quantize', 'fp8Dequantize', 'linearFp8', 'upload', 'waitFor',
] as const satisfies ReadonlyArray<keyof NativeContextHandle>;

// Every typed name is listed: a name typed but missing from ADDON_EXPORTS or CONTEXT_METHODS fails to compile here.
type Unlisted = Exclude<keyof NativeAddon, (typeof ADDON_EXPORTS)[number]>;
const everyTypedNameListed: [Unlisted] extends [never] ? true : Unlisted = true;
void everyTypedNameListed;
type UnlistedMethod = Exclude<keyof NativeContextHandle, (typeof CONTEXT_METHODS)[number] | 'device'>;
const everyMethodListed: [UnlistedMethod] extends [never] ? true : UnlistedMethod = true;
void everyMethodListed;
