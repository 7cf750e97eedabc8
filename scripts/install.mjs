#!/usr/bin/env node
// npm's install step. Where the platform package's prebuilt binary (@stepvideo/<platform>-<arch>,
// an optional dependency of a released stepvideo) is installed and loads, there is nothing to do:
// no compiler, CMake or nvcc is needed, and with install scripts disabled the package works the
// same. The source build (scripts/build-addon.mjs) runs only where no prebuilt binary fits, or when
// asked: `npm install stepvideo --build-from-source` or STEPVIDEO_BUILD_FROM_SOURCE=1.
// lib/native.ts makes the same choice at load time (a source build in the package, when present,
// is loaded before the prebuilt binary). STEPVIDEO_INSTALL_DRY_RUN=1 says what it would do, and stops.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'package.json'));

/** Why the prebuilt binary cannot serve this host ('' when it loads). */
function prebuiltProblem() {
  const glibc = process.platform === 'linux' && process.report?.getReport()?.header?.glibcVersionRuntime;
  if (!glibc) return `no prebuilt binary is published for ${process.platform}-${process.arch} without glibc`;
  const name = `@stepvideo/${process.platform}-${process.arch}`;
  let manifestPath;
  try {
    manifestPath = require.resolve(`${name}/package.json`);
  } catch {
    return `${name} is not installed (no prebuilt binary for this platform, or optional dependencies were omitted)`;
  }
  const { version } = JSON.parse(readFileSync(manifestPath, 'utf8'));
  const { version: ours } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
  if (version !== ours) return `${name}@${version} does not match stepvideo@${ours}`;
  // Loaded in a child process: a binary that needs a newer glibc fails there, not here.
  const binary = path.join(path.dirname(manifestPath), 'stepvideo.node');
  const probe = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(binary)})`], { encoding: 'utf8' });
  if (probe.status !== 0) return `${name}@${version} does not load here: ${(probe.stderr || '').trim().split('\n').find((l) => l.includes('Error')) ?? `exit ${probe.status}`}`;
  console.log(`stepvideo: using the prebuilt binary ${name}@${version}`);
  return '';
}

if (process.env.STEPVIDEO_SKIP_BUILD === '1') process.exit(0);
const asked = process.env.npm_config_build_from_source === 'true' || process.env.STEPVIDEO_BUILD_FROM_SOURCE === '1';
if (!asked) {
  const problem = prebuiltProblem();
  if (!problem) process.exit(0);
  console.log(`stepvideo: ${problem}; building from source`);
} else {
  console.log('stepvideo: building from source, as asked');
}
if (process.env.STEPVIDEO_INSTALL_DRY_RUN === '1') process.exit(0);
const build = spawnSync(process.execPath, [path.join(root, 'scripts', 'build-addon.mjs')], { cwd: root, stdio: 'inherit' });
process.exit(build.status ?? 1);
