// Loads the native addon, explicitly: an ordered list of candidates (STEPVIDEO_ADDON, a source build
// in this package, the prebuilt binary of the platform package @stepvideo/<platform>-<arch>), then
// the `bindings` package's search, and when everything fails one error that lists what was tried
// and what to do.
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
  /** Where libcublasLt was loaded from (searched on the first call), or path null and what was tried. */
  cublasLtInfo(): { path: string | null; why: string };
  /** The places libcublasLt is looked for, in order, with the environment as it is now ([] without CUDA). */
  debugCublasLtCandidates(): string[];
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

/** Where the loaded addon came from (`stepvideo info`). */
export interface AddonSource {
  /** explicit: STEPVIDEO_ADDON; source: built in this package's folder; prebuilt: a platform package. */
  origin: 'explicit' | 'source' | 'prebuilt';
  path: string;
  /** The platform package, for prebuilt binaries (e.g. '@stepvideo/linux-x64@0.1.0'). */
  packageName?: string;
}

interface Candidate extends AddonSource {
  /** Why this candidate cannot be used, found before loading it ('' when it can be tried). */
  unusable: string;
}

/** The platform package for this host, e.g. '@stepvideo/linux-x64' ('' where none is published: musl, other OSes). */
export function platformPackageName(): string {
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  const glibc = process.platform === 'linux' && report?.header?.glibcVersionRuntime !== undefined;
  return glibc ? `@stepvideo/${process.platform}-${process.arch}` : '';
}

function packageVersion(): string {
  return (require(path.join(projectRoot, 'package.json')) as { version: string }).version;
}

/** The prebuilt binary's candidate, when its platform package is installed beside this one. */
function prebuiltCandidate(): Candidate | undefined {
  const name = platformPackageName();
  if (!name) return undefined;
  let manifestPath: string;
  try {
    manifestPath = require.resolve(`${name}/package.json`);
  } catch {
    return undefined;
  }
  const manifest = require(manifestPath) as { version: string };
  const candidate: Candidate = {
    origin: 'prebuilt',
    path: path.join(path.dirname(manifestPath), 'stepvideo.node'),
    packageName: `${name}@${manifest.version}`,
    unusable: '',
  };
  // A binary of another version may miss functions this JavaScript calls: never mix them.
  if (manifest.version !== packageVersion()) candidate.unusable = `version ${manifest.version}, but stepvideo is ${packageVersion()}`;
  return candidate;
}

/**
 * The addons to try, in order: STEPVIDEO_ADDON; a source build in this package's folder (it exists
 * only where no prebuilt binary fitted, where one was asked for, or in a development checkout);
 * then the platform package's prebuilt binary.
 */
function candidates(): Candidate[] {
  const list: Candidate[] = [];
  const source = (buildDir: string): Candidate => ({ origin: 'source', path: path.join(projectRoot, buildDir, 'Release', 'stepvideo.node'), unusable: '' });
  if (process.env.STEPVIDEO_ADDON) list.push({ origin: 'explicit', path: path.resolve(process.env.STEPVIDEO_ADDON), unusable: '' });
  if (process.env.STEPVIDEO_BUILD_DIR) {
    // A named build folder (the emulated or sanitizer builds) is the one meant: nothing else is tried.
    list.push(source(process.env.STEPVIDEO_BUILD_DIR));
    return list;
  }
  list.push(source('build'));
  const prebuilt = prebuiltCandidate();
  if (prebuilt) list.push(prebuilt);
  return list;
}

function loadAddon(): { addon: NativeAddon; source: AddonSource } {
  const failures: string[] = [];
  for (const { unusable, ...candidate } of candidates()) {
    const label = candidate.packageName ?? candidate.path;
    if (unusable) {
      failures.push(`${label}: ${unusable}`);
    } else if (!existsSync(candidate.path)) {
      failures.push(`${candidate.path}: not found`);
    } else {
      try {
        return { addon: require(candidate.path) as NativeAddon, source: candidate };
      } catch (error) {
        failures.push(`${label}: ${(error as Error).message.split('\n')[0]}`);
      }
    }
  }
  try {
    const bindings = require('bindings') as (options: { bindings: string; module_root: string }) => NativeAddon & { path?: string };
    return { addon: bindings({ bindings: 'stepvideo.node', module_root: projectRoot }), source: { origin: 'source', path: 'found by the bindings package' } };
  } catch (error) {
    failures.push(`bindings search: ${(error as Error).message.split('\n')[0]}`);
  }
  const platform = platformPackageName();
  throw new StepVideoError(
    'ERR_NATIVE_LOAD',
    'the stepvideo native addon could not be loaded. Tried:\n  ' +
      failures.join('\n  ') +
      (platform ? `\nInstall the prebuilt binary (npm install ${platform}@${packageVersion()}), or build` : '\nNo prebuilt binary is published for this platform; build') +
      ' from source with `npm rebuild stepvideo --build-from-source` (needs CMake and a C++ compiler; nvcc adds the CUDA backend), ' +
      'or point STEPVIDEO_ADDON at a built stepvideo.node',
  );
}

const loaded = loadAddon();
export const native: NativeAddon = loaded.addon;
/** Where the loaded addon came from. */
export const addonSource: AddonSource = loaded.source;

// Native errors are constructed as StepVideoError, so every failure has one class and a code.
native.setErrorFactory((code, message) => new StepVideoError(code as never, message));
if (process.env.STEPVIDEO_POISON === '1') native.setPoison(true);
