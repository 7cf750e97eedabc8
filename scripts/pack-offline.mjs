#!/usr/bin/env node
// `npm run pack:offline`: the bundle for the air-gapped GPU host (Ubuntu 24.04, CUDA 13 driver, no
// Node, no npm, no network), written into offline/ (git-ignored) and carried by one device call:
//
//   offline/node.xz          this machine's node binary (debug symbols stripped), xz-compressed
//   offline/app.tar.xz       compiled JS, the built addon, lib/ and test/ sources, the test runner
//                            (vitest and its dependencies), benchmarks
//   offline/golden.tar.xz    the golden references, except the VAE's (40 MB of weights, 30 MB
//                            packed, which would not fit): the CPU VAE golden suite runs in CI
//                            here, and the GPU VAE suite must compare with the CPU twin on the host
//   offline/check.mjs        the GPU check (scripts/gpu-check.mjs) and its vitest reporter
//   offline/check-reporter.mjs   (scripts/check-reporter.mjs), outside the app: `check --plan` unpacks nothing
//   offline/bundle.json      what was packed: commit, the addon's architectures and CUDA runtime
//   offline/run.sh           unpacks into /tmp and runs `check` (default), `test` or `bench`
//
// A device call carries at most 64 MiB, the repository's working tree included: every part's
// size is printed and the script fails if the total passes that.
//   node scripts/pack-offline.mjs [--no-golden] [--out offline]
//   STEPVIDEO_OFFLINE_ARCHS="90a" (default) chooses the CUDA architectures of the packed addon.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const outDir = path.resolve(root, args.includes('--out') ? args[args.indexOf('--out') + 1] : 'offline');
const withGolden = !args.includes('--no-golden');
const goldenRoot = process.env.STEPVIDEO_GOLDEN_DIR ? path.resolve(process.env.STEPVIDEO_GOLDEN_DIR) : path.resolve(root, '..', 'shared', 'golden');
// What one device call may carry: offline/ plus the working tree (tracked and untracked files).
const carryLimitBytes = 64 * 2 ** 20;

function step(message) {
  console.log(`pack:offline: ${message}`);
}

function need(command) {
  const result = spawnSync(command, ['--version'], { stdio: 'ignore' });
  if (result.error || result.status !== 0) {
    console.error(`pack:offline: '${command}' is required`);
    process.exit(1);
  }
}

need('xz');
need('tar');

// The addon is built for the target GPU only (default sm_90a, the H200): half the size of the
// two-architecture build, which matters under the device's 64 MiB carry limit.
// STEPVIDEO_ADDON=<file> packs a given build instead.
const offlineArchs = process.env.STEPVIDEO_OFFLINE_ARCHS ?? '90a';
let addon = process.env.STEPVIDEO_ADDON && path.resolve(process.env.STEPVIDEO_ADDON);
if (addon === undefined) {
  step(`building the addon for sm_${offlineArchs} into build-offline/`);
  const built = spawnSync(process.execPath, [path.join(root, 'scripts', 'build-addon.mjs')], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, STEPVIDEO_BUILD_DIR: 'build-offline', STEPVIDEO_CUDA_ARCHS: offlineArchs },
  });
  if (built.status !== 0) process.exit(built.status ?? 1);
  addon = path.join(root, 'build-offline', 'Release', 'stepvideo.node');
}
if (!existsSync(addon)) {
  console.error(`pack:offline: no built addon at ${addon}`);
  process.exit(1);
}
const require = createRequire(import.meta.url);
const addonModule = require(addon);
const build = addonModule.build;
if (!build.cuda) {
  console.error('pack:offline: the addon was built without the CUDA backend (nvcc missing?); the bundle is for GPU hosts');
  process.exit(1);
}
if (build.cudaEmulated === true) {
  console.error('pack:offline: the addon runs CUDA on an emulator; the bundle is for a real GPU');
  process.exit(1);
}
// The CUDA runtime is linked statically: its version is the addon's, whatever the host has.
const runtime = addonModule.cudaVersions?.().runtime;
const cudart = runtime > 0 ? `${Math.floor(runtime / 1000)}.${Math.floor((runtime % 1000) / 10)}` : 'unknown';
step(`addon ${path.relative(root, addon)} (CUDA architectures ${build.cudaArchitectures}, cudart ${cudart})`);

step('compiling TypeScript');
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.json')], { stdio: 'inherit' });

rmSync(outDir, { recursive: true, force: true });
const stage = path.join(outDir, 'stage');
const app = path.join(stage, 'app');
mkdirSync(app, { recursive: true });

// ---- the application tree ----
for (const item of ['package.json', 'vitest.config.ts', 'tsconfig.json', 'dist', 'lib', 'test', 'benchmarks', 'native/sources.json']) {
  const from = path.join(root, item);
  if (!existsSync(from)) continue;
  cpSync(from, path.join(app, item), { recursive: true, filter: (p) => !p.includes(`${path.sep}out${path.sep}`) && !p.endsWith('.map') });
}
mkdirSync(path.join(app, 'build', 'Release'), { recursive: true });
copyFileSync(addon, path.join(app, 'build', 'Release', 'stepvideo.node'));
// The benchmarks and the check read COMMIT (there is no .git on the GPU host); -dirty marks a
// bundle made from uncommitted changes, whose figures no commit reproduces.
let commit = 'unknown';
try {
  commit = execFileSync('git', ['describe', '--always', '--dirty', '--abbrev=7'], { cwd: root }).toString().trim();
} catch {}
writeFileSync(path.join(app, 'COMMIT'), `${commit}\n`);

// ---- runtime node_modules: vitest and bindings with everything they depend on ----
function packageDir(name, from) {
  let dir = from;
  for (;;) {
    const candidate = path.join(dir, 'node_modules', name);
    if (existsSync(path.join(candidate, 'package.json'))) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}
const closure = new Set();
function visit(name, from, optional) {
  const dir = packageDir(name, from);
  if (dir === undefined) {
    if (!optional) throw new Error(`dependency ${name} not found from ${from}`);
    return;
  }
  if (closure.has(dir)) return;
  closure.add(dir);
  const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
  for (const dep of Object.keys(pkg.dependencies ?? {})) visit(dep, dir, false);
  for (const dep of Object.keys(pkg.optionalDependencies ?? {})) visit(dep, dir, true);
}
visit('vitest', root, false);
visit('bindings', root, false);
for (const dir of closure) {
  const relative = path.relative(root, dir);
  cpSync(dir, path.join(app, relative), { recursive: true, filter: (p) => !/\.(map|md|d\.ts)$/.test(p) || p.endsWith('package.json') });
}
step(`${closure.size} runtime packages (vitest and bindings closure)`);

// ---- compress ----
function xzTar(output, cwd, entries) {
  execFileSync('sh', ['-c', `tar -cf - ${entries.map((e) => `'${e}'`).join(' ')} | xz -T0 -9 > '${output}'`], { cwd, stdio: 'inherit' });
}
step('compressing the application');
xzTar(path.join(outDir, 'app.tar.xz'), stage, ['app']);

step('compressing node');
const nodeCopy = path.join(stage, 'node');
copyFileSync(process.execPath, nodeCopy);
if (spawnSync('strip', ['--strip-all', nodeCopy]).status !== 0) step('strip unavailable: node kept with its symbols');
execFileSync('sh', ['-c', `xz -T0 -9 -c '${nodeCopy}' > '${path.join(outDir, 'node.xz')}'`], { stdio: 'inherit' });

if (withGolden && existsSync(path.join(goldenRoot, 'stepvideo-tiny', 'manifest.json'))) {
  step('compressing the golden references (without the VAE weights and case)');
  const tiny = 'stepvideo-tiny';
  const all = [];
  const walk = (dir) => {
    for (const entry of readdirSync(path.join(goldenRoot, dir))) {
      const relative = path.join(dir, entry);
      if (statSync(path.join(goldenRoot, relative)).isDirectory()) walk(relative);
      else all.push(relative);
    }
  };
  walk(tiny);
  // Not carried (30 of the 37 MB packed): the check leaves out test/golden/vae.test.ts (CPU only,
  // run in CI here); test/gpu/vae.test.ts must compare the GPU with the CPU twin on the device.
  const notCarried = [path.join(tiny, 'vae', 'vae_v2.safetensors'), path.join(tiny, 'cases', 'vae_case.safetensors')];
  xzTar(path.join(outDir, 'golden.tar.xz'), goldenRoot, all.filter((f) => !notCarried.includes(f)));
} else if (withGolden) {
  step(`no golden references at ${goldenRoot}: bundle made without them`);
}

// ---- the check, outside the app: `run.sh check --plan` reads nothing else ----
copyFileSync(path.join(root, 'scripts', 'gpu-check.mjs'), path.join(outDir, 'check.mjs'));
copyFileSync(path.join(root, 'scripts', 'check-reporter.mjs'), path.join(outDir, 'check-reporter.mjs'));
writeFileSync(path.join(outDir, 'bundle.json'), `${JSON.stringify({ commit, cudaArchitectures: build.cudaArchitectures, cudart, node: process.version, packed: new Date().toISOString() }, null, 1)}\n`);

// ---- the runner ----
// Thin: it unpacks and hands over to check.mjs (or vitest, or benchmarks/run.mjs). Unpacking is
// timed, not stopped: cutting it short would leave nothing to run.
const runner = `#!/bin/bash
# The stepvideo offline bundle (scripts/pack-offline.mjs); docs/GPU-RUN.md. From the repository root:
#   bash offline/run.sh check [--plan] [--only a,b] [--budget step=s,...] [--keep-going]
#                                  the GPU check: $OUT/report.json, $OUT/summary.md (default mode)
#   bash offline/run.sh test [vitest arguments]      vitest, with a GPU and the goldens required
#   bash offline/run.sh bench [suite ...]            benchmarks/run.mjs (or STEPVIDEO_BENCH="suite ...")
# Results go to $OUT (the device tool's output folder), else to ./offline-results.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=\${STEPVIDEO_OFFLINE_WORK:-/tmp/stepvideo-offline}
RESULTS=\${OUT:-$PWD/offline-results}
MODE=\${1:-check}
[ $# -gt 0 ] && shift
case "$MODE" in
  check | test | bench) ;;
  *) echo "usage: bash offline/run.sh check|test|bench [arguments]" >&2; exit 2 ;;
esac
mkdir -p "$WORK" "$RESULTS"

unpack_node() {
  if [ ! -x "$WORK/node" ]; then
    xz -dc "$HERE/node.xz" > "$WORK/node.part" && chmod +x "$WORK/node.part" && mv "$WORK/node.part" "$WORK/node"
  fi
}

# The plan needs only check.mjs and a node: the one on PATH if there is one.
if [ "$MODE" = check ] && [[ " $* " == *" --plan "* ]]; then
  if command -v node > /dev/null; then exec node "$HERE/check.mjs" "$@"; fi
  unpack_node
  exec "$WORK/node" "$HERE/check.mjs" "$@"
fi

START=$EPOCHREALTIME
trap 'echo "run.sh: unpacking the bundle failed (line $LINENO)" | tee "$RESULTS/summary.md" >&2' ERR
unpack_node
rm -rf "$WORK/app" "$WORK/golden"
mkdir -p "$WORK/golden"
xz -dc "$HERE/app.tar.xz" | tar -xf - -C "$WORK"
if [ -f "$HERE/golden.tar.xz" ]; then xz -dc "$HERE/golden.tar.xz" | tar -xf - -C "$WORK/golden"; fi
trap - ERR
UNPACK_SECONDS=$(awk -v a="$START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
echo "run.sh: unpacked in $UNPACK_SECONDS s into $WORK"

export PATH="$WORK:$PATH"
export STEPVIDEO_GOLDEN_DIR="$WORK/golden"
cd "$WORK/app"
case "$MODE" in
  check)
    exec "$WORK/node" "$HERE/check.mjs" --app "$WORK/app" --out "$RESULTS" --unpack-seconds "$UNPACK_SECONDS" "$@" ;;
  test)
    STEPVIDEO_POISON=1 STEPVIDEO_REQUIRE_GPU=1 STEPVIDEO_REQUIRE_GOLDEN=1 \\
      "$WORK/node" node_modules/vitest/vitest.mjs run --reporter=verbose "$@" 2>&1 | tee "$RESULTS/tests.log" ;;
  bench)
    # shellcheck disable=SC2086  (STEPVIDEO_BENCH is a list of suite names)
    STEPVIDEO_POISON=0 "$WORK/node" benchmarks/run.mjs --out "$RESULTS/benchmarks.jsonl" \${STEPVIDEO_BENCH:-} "$@" 2>&1 | tee "$RESULTS/benchmarks.log" ;;
esac
`;
writeFileSync(path.join(outDir, 'run.sh'), runner);
chmodSync(path.join(outDir, 'run.sh'), 0o755);
rmSync(stage, { recursive: true, force: true });

// ---- what a device call carries ----
const sizes = readdirSync(outDir).map((file) => ({ file: `${path.basename(outDir)}/${file}`, bytes: statSync(path.join(outDir, file)).size }));
let worktree = 0;
try {
  // The device tool carries the working tree too: tracked files and untracked ones git does not ignore.
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, maxBuffer: 1 << 26 }).toString().split('\0').filter(Boolean);
  for (const file of files) if (existsSync(path.join(root, file))) worktree += statSync(path.join(root, file)).size;
} catch {
  step('git unavailable: the working tree is not counted');
}
const MiB = (bytes) => `${(bytes / 2 ** 20).toFixed(2).padStart(6)} MiB`;
for (const { file, bytes } of sizes) step(`${file.padEnd(28)} ${MiB(bytes)}`);
step(`${'working tree (git ls-files)'.padEnd(28)} ${MiB(worktree)}`);
const total = sizes.reduce((sum, p) => sum + p.bytes, 0) + worktree;
step(`carried by a device call with carry ["${path.relative(root, outDir)}"]: ${MiB(total)} of ${MiB(carryLimitBytes)}`);
if (total > carryLimitBytes) {
  console.error(`pack:offline: FAILED: ${MiB(total)} is more than the ${MiB(carryLimitBytes)} a device call carries; see the sizes above`);
  process.exit(1);
}
