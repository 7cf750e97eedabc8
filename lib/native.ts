// Loads the native addon, explicitly: an ordered list of candidate paths, then the `bindings`
// package's search, and when everything fails one error that lists what was tried and what to do.
// Everything else in lib/ reaches native code only through the `native` object exported here.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { StepVideoError } from './errors.js';

/** The opaque native tensor handle (see native/tensor_handle.h). */
export interface NativeTensorHandle {
  dispose(): void;
  view(dtype: number, shape: number[], byteOffset: number): NativeTensorHandle;
  sharesStorageWith(other: NativeTensorHandle): boolean;
  readonly disposed: boolean;
  readonly byteLength: number;
}

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

type H = NativeTensorHandle;

/** The addon's exports. Model-level kernel families add their functions to this interface. */
export interface NativeAddon {
  NativeTensor: new (device: number, dtype: number, shape: number[]) => H;
  build: { cuda: boolean; cudaEmulated: boolean; cudaArchitectures: string; napiVersion: number };
  setErrorFactory(factory: (code: string, message: string) => Error): void;
  setPoison(on: boolean): void;
  cpuThreadCount(): number;
  cudaDeviceCount(): number;
  cudaUnavailableReason(): string;
  cudaDeviceInfo(device: number): NativeDeviceInfo;
  cudaVersions(): { runtime: number; driver: number; driverRelease: string; driverMinimum: string };
  cudaDeviceFault(device: number): string;
  cudaStagingStats(): { allocations: number; reuses: number; cachedBytes: number };
  /** Launches a kernel that traps (tests of the fault path: the device is lost for the process). */
  debugFaultDevice(device: number): void;
  /** Emulated builds only (STEPVIDEO_CUDA=emulate): the emulated device's test hooks. */
  emulatorInjectFailure?(site: 'cudaMallocAsync' | 'kernel' | 'cublasLtCreate' | 'cudaEventRecord', after: number): void;
  emulatorSetMemoryCapacity?(bytes: number): void;
  emulatorMemory?(): { capacity: number; reserved: number; used: number };
  memoryStats(device: number): NativeMemoryStats;
  resetPeak(device: number): void;
  synchronize(device: number): Promise<void>;
  write(tensor: H, data: ArrayBufferView, srcDtype: number): void;
  read(tensor: H): Promise<ArrayBuffer>;
  transfer(dst: H, src: H): Promise<void>;
  loadTensors(entries: Array<{ tensor: H; path: string; offset: number; byteLength: number; srcDtype: number }>): Promise<void>;
  copy(dst: H, src: H, shape: number[], srcStrides: number[], srcOffset: number, dstStrides: number[], dstOffset: number): void;
  binary(out: H, a: H, b: H, op: number): void;
  unary(out: H, x: H, op: number, alpha: number, beta: number): void;
  matmul(out: H, a: H, b: H, bias: H | null, transB: boolean, alpha: number, epilogue?: number): void;
  softmax(out: H, x: H): void;
  reduce(out: H, x: H, axis: number, op: number): void;
  fill(out: H, value: number): void;
  [family: string]: unknown;
}

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

function candidatePaths(): string[] {
  const candidates: string[] = [];
  if (process.env.STEPVIDEO_ADDON) candidates.push(path.resolve(process.env.STEPVIDEO_ADDON));
  const buildDir = process.env.STEPVIDEO_BUILD_DIR ?? 'build';
  candidates.push(path.join(projectRoot, buildDir, 'Release', 'stepvideo.node'));
  candidates.push(path.join(projectRoot, 'build', 'Release', 'stepvideo.node'));
  return [...new Set(candidates)];
}

function loadAddon(): NativeAddon {
  const failures: string[] = [];
  for (const candidate of candidatePaths()) {
    if (!existsSync(candidate)) {
      failures.push(`${candidate}: not found`);
      continue;
    }
    try {
      return require(candidate) as NativeAddon;
    } catch (error) {
      failures.push(`${candidate}: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  try {
    const bindings = require('bindings') as (options: { bindings: string; module_root: string }) => NativeAddon;
    return bindings({ bindings: 'stepvideo.node', module_root: projectRoot });
  } catch (error) {
    failures.push(`bindings search: ${(error as Error).message.split('\n')[0]}`);
  }
  throw new StepVideoError(
    'ERR_NATIVE_LOAD',
    'the stepvideo native addon could not be loaded. Tried:\n  ' +
      failures.join('\n  ') +
      '\nBuild it with `npm run build:addon` (CMake) or `npm run build:gyp` (CPU only), ' +
      'or point STEPVIDEO_ADDON at a built stepvideo.node',
  );
}

export const native: NativeAddon = loadAddon();

// Native errors are constructed as StepVideoError, so every failure has one class and a code.
native.setErrorFactory((code, message) => new StepVideoError(code as never, message));
if (process.env.STEPVIDEO_POISON === '1') native.setPoison(true);
