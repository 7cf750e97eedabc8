#!/usr/bin/env node
// Builds the native addon. The main build is CMake through cmake-js (CPU backend always, CUDA
// backend when nvcc is found). Hosts without CMake get the CPU-only node-gyp build instead.
//   STEPVIDEO_CUDA=OFF          build without the CUDA backend even if nvcc exists
//   STEPVIDEO_CUDA_ARCHS="90a"  CUDA architectures (default "90a;80")
//   STEPVIDEO_BUILD_DIR=dir     build directory (default "build")
//   STEPVIDEO_SKIP_BUILD=1      do nothing (prebuilt addon supplied by other means)
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

if (process.env.STEPVIDEO_SKIP_BUILD === '1') {
  console.log('stepvideo: STEPVIDEO_SKIP_BUILD=1, not building the addon');
  process.exit(0);
}
// `npx stepvideo` installs this checkout into npm's npx cache, which re-runs the install script:
// keep the addon the checkout already built instead of rebuilding it.
const builtAddon = path.join(root, process.env.STEPVIDEO_BUILD_DIR ?? 'build', 'Release', 'stepvideo.node');
if (process.env.npm_command === 'exec' && existsSync(builtAddon)) process.exit(0);

function run(command, args, env = process.env) {
  console.log(`stepvideo: ${command} ${args.join(' ')}`);
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', env });
  if (result.error) throw result.error;
  return result.status ?? 1;
}

function has(command) {
  const result = spawnSync(command, ['--version'], { stdio: 'ignore' });
  return !result.error && result.status === 0;
}

const buildDir = process.env.STEPVIDEO_BUILD_DIR ?? 'build';
const env = { ...process.env, CMAKE_BUILD_PARALLEL_LEVEL: process.env.CMAKE_BUILD_PARALLEL_LEVEL ?? String(os.cpus().length) };

let status;
if (has('cmake')) {
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  status = run(process.execPath, [cmakeJs, 'compile', '--out', buildDir], env);
} else {
  console.warn('stepvideo: cmake not found; building the CPU-only addon with node-gyp (no CUDA backend)');
  const nodeGyp = require.resolve('node-gyp/bin/node-gyp.js');
  status = run(process.execPath, [nodeGyp, 'rebuild'], env);
}
if (status !== 0) {
  console.error('stepvideo: building the native addon failed (see the compiler output above)');
  process.exit(status);
}
