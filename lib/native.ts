// Loads the native addon, explicitly: an ordered list of candidates (STEPVIDEO_ADDON, a source build
// in this package, the prebuilt binary of the platform package @stepvideo/<platform>-<arch>), then
// the `bindings` package's search, and when everything fails one error that lists what was tried
// and what to do.
// Everything else in lib/ reaches native code only through the `native` object exported here.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type { NativeAddon } from './addon-types.js';
import { StepVideoError } from './errors.js';

export type { NativeAddon, NativeCopyEvent, NativeDeviceInfo, NativeMemoryStats, NativeTensorHandle } from './addon-types.js';

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
 * The addons to try, in order. An explicit choice is the only candidate: STEPVIDEO_ADDON, or the
 * build folder STEPVIDEO_BUILD_DIR (the emulated and sanitizer builds), so a missing one is an error
 * rather than another binary loaded silently. Otherwise a source build in this package's folder (it
 * exists only where no prebuilt binary fitted, where one was asked for, or in a development
 * checkout), then the platform package's prebuilt binary, then `bindings`' search.
 */
function candidates(): { list: Candidate[]; explicit: boolean } {
  const source = (buildDir: string): Candidate => ({ origin: 'source', path: path.join(projectRoot, buildDir, 'Release', 'stepvideo.node'), unusable: '' });
  if (process.env.STEPVIDEO_ADDON) return { list: [{ origin: 'explicit', path: path.resolve(process.env.STEPVIDEO_ADDON), unusable: '' }], explicit: true };
  if (process.env.STEPVIDEO_BUILD_DIR) return { list: [source(process.env.STEPVIDEO_BUILD_DIR)], explicit: true };
  const prebuilt = prebuiltCandidate();
  return { list: prebuilt ? [source('build'), prebuilt] : [source('build')], explicit: false };
}

function loadAddon(): { addon: NativeAddon; source: AddonSource } {
  const failures: string[] = [];
  const { list, explicit } = candidates();
  for (const { unusable, ...candidate } of list) {
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
  if (!explicit) {
    try {
      const bindings = require('bindings') as (options: { bindings: string; module_root: string }) => NativeAddon & { path?: string };
      return { addon: bindings({ bindings: 'stepvideo.node', module_root: projectRoot }), source: { origin: 'source', path: 'found by the bindings package' } };
    } catch (error) {
      failures.push(`bindings search: ${(error as Error).message.split('\n')[0]}`);
    }
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

let loaded: { addon: NativeAddon; source: AddonSource } | undefined;

/** The addon, loaded on the first call (a failure throws ERR_NATIVE_LOAD then, not at import). */
function addon(): { addon: NativeAddon; source: AddonSource } {
  if (loaded === undefined) {
    const found = loadAddon();
    // Native errors are constructed as StepVideoError, so every failure has one class and a code.
    found.addon.setErrorFactory((code, message) => new StepVideoError(code as never, message));
    if (process.env.STEPVIDEO_POISON === '1') found.addon.setPoison(true);
    loaded = found;
  }
  return loaded;
}

/**
 * The addon's exports (lib/addon-types.ts). Importing this module loads nothing: the binary is
 * loaded at the first property read, so `import 'stepvideo'` works (and can report why the addon is
 * missing through the first call) where no binary fits.
 */
export const native: NativeAddon = new Proxy({} as NativeAddon, {
  // Every operation goes to the loaded exports object, so the proxy behaves as the addon itself
  // (its properties are plain configurable data properties: the proxy invariants hold).
  get: (_target, name) => Reflect.get(addon().addon, name),
  set: (_target, name, value) => Reflect.set(addon().addon, name, value),
  has: (_target, name) => Reflect.has(addon().addon, name),
  ownKeys: () => Reflect.ownKeys(addon().addon),
  getOwnPropertyDescriptor: (_target, name) => Reflect.getOwnPropertyDescriptor(addon().addon, name),
});

/** Where the loaded addon came from (loads it). */
export function addonSource(): AddonSource {
  return addon().source;
}
