#!/usr/bin/env node
// `npm run pack:offline`: a self-contained bundle for an air-gapped GPU host (Ubuntu 24.04, CUDA 13
// driver, no Node, no npm, no network). Written into offline/ (git-ignored):
//
//   offline/node.xz            this machine's node binary (debug symbols stripped), xz-compressed
//   offline/app.tar.xz         compiled JS, the built addon, lib/ and test/ sources, the test
//                              runner (vitest and its dependencies), benchmarks
//   offline/golden-core.tar.xz the golden references except the VAE ones
//   offline/golden-vae.tar.xz  the VAE golden weights (40 MB raw) and case, separate because a
//                              device call carries at most 64 MiB: node + app + golden-vae is one
//                              call (the VAE suites), node + app + golden-core another
//   offline/run.sh             unpacks into /tmp and runs the GPU suite and/or the benchmarks
//
// The bundle without golden-vae stays under 60 MiB.
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
const limitBytes = 60 * 1024 * 1024;

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
let addon = process.env.STEPVIDEO_ADDON;
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
const build = require(addon).build;
if (!build.cuda) {
  console.error('pack:offline: the addon was built without the CUDA backend (nvcc missing?); the bundle is for GPU hosts');
  process.exit(1);
}
step(`addon ${path.relative(root, addon)} (CUDA architectures ${build.cudaArchitectures})`);

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
try {
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root }).toString().trim();
  writeFileSync(path.join(app, 'COMMIT'), `${commit}\n`);
} catch {}

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
  step('compressing the golden references');
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
  // The VAE pack is self-sufficient for the VAE suites (weights, case, manifest), so a device call
  // can carry node + app + golden-vae alone and stay under the 64 MiB carry limit.
  const vaeOnly = [path.join(tiny, 'vae', 'vae_v2.safetensors'), path.join(tiny, 'cases', 'vae_case.safetensors')];
  const shared = [path.join(tiny, 'manifest.json'), path.join(tiny, 'README.md'), path.join(tiny, 'vae', 'config.json')];
  xzTar(path.join(outDir, 'golden-core.tar.xz'), goldenRoot, all.filter((f) => !vaeOnly.includes(f)));
  xzTar(path.join(outDir, 'golden-vae.tar.xz'), goldenRoot, [...vaeOnly, ...shared.filter((f) => all.includes(f))]);
} else if (withGolden) {
  step(`no golden references at ${goldenRoot}: bundle made without them`);
}

// ---- the runner ----
const runner = `#!/bin/bash
# Unpacks the stepvideo offline bundle and runs the GPU suite and/or the benchmarks.
#   bash offline/run.sh [test|bench|all] [extra vitest arguments, e.g. test/gpu]
#   STEPVIDEO_BENCH="attention dit" bash offline/run.sh bench   (default: every benchmark)
# Results go to $OUT when set (the device tool's output folder), else to ./offline-results.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=\${STEPVIDEO_OFFLINE_WORK:-/tmp/stepvideo-offline}
RESULTS=\${OUT:-$PWD/offline-results}
MODE=\${1:-all}
[ $# -gt 0 ] && shift
mkdir -p "$WORK/golden" "$RESULTS"
if [ ! -x "$WORK/node" ]; then xz -dc "$HERE/node.xz" > "$WORK/node"; chmod +x "$WORK/node"; fi
rm -rf "$WORK/app"
xz -dc "$HERE/app.tar.xz" | tar -xf - -C "$WORK"
for pack in "$HERE"/golden-*.tar.xz; do
  [ -f "$pack" ] && xz -dc "$pack" | tar -xf - -C "$WORK/golden"
done
export PATH="$WORK:$PATH"
export STEPVIDEO_GOLDEN_DIR="$WORK/golden"
export STEPVIDEO_POISON=1
cd "$WORK/app"
"$WORK/node" -e "const a=require('./build/Release/stepvideo.node'); console.log('addon', JSON.stringify(a.build), 'cuda devices', a.cudaDeviceCount(), a.cudaUnavailableReason())" | tee "$RESULTS/environment.txt"
status=0
if [ "$MODE" = test ] || [ "$MODE" = all ]; then
  "$WORK/node" node_modules/vitest/vitest.mjs run --reporter=verbose "$@" 2>&1 | tee "$RESULTS/tests.log" || status=1
fi
if [ "$MODE" = bench ] || [ "$MODE" = all ]; then
  STEPVIDEO_POISON=0 "$WORK/node" benchmarks/run.mjs --out "$RESULTS/benchmarks.jsonl" \${STEPVIDEO_BENCH:-} 2>&1 | tee "$RESULTS/benchmarks.log" || status=1
fi
exit $status
`;
writeFileSync(path.join(outDir, 'run.sh'), runner);
chmodSync(path.join(outDir, 'run.sh'), 0o755);
rmSync(stage, { recursive: true, force: true });

let total = 0;
for (const file of readdirSync(outDir)) {
  const size = statSync(path.join(outDir, file)).size;
  if (file !== 'golden-vae.tar.xz') total += size;
  step(`${file}: ${(size / 2 ** 20).toFixed(1)} MiB`);
}
step(`bundle without golden-vae: ${(total / 2 ** 20).toFixed(1)} MiB (limit 60 MiB)`);
if (existsSync(path.join(outDir, 'golden-vae.tar.xz'))) {
  const size = (file) => statSync(path.join(outDir, file)).size;
  const vaeCall = size('node.xz') + size('app.tar.xz') + size('golden-vae.tar.xz') + size('run.sh');
  // The device carries at most 64 MiB per call, the repository's tracked files (~2 MiB) included.
  step(`VAE call (node + app + golden-vae): ${(vaeCall / 2 ** 20).toFixed(1)} MiB of the 64 MiB carry limit, plus the working tree`);
}
if (total > limitBytes) {
  console.error('pack:offline: the bundle exceeds 60 MiB');
  process.exit(1);
}
