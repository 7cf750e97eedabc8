#!/usr/bin/env node
// `npm run prebuild [-- --cpu-only]`: the release tarballs, in prebuilds/:
//   stepvideo-linux-x64-<version>.tgz   the platform package @stepvideo/linux-x64: the addon built
//                                       here (CPU backend and CUDA backend for sm_80 and sm_90a,
//                                       cudart linked statically, cuBLASLt loaded at run time), with
//                                       build.json saying what it holds and needs (glibc, libstdc++)
//   stepvideo-<version>.tgz             the main package, naming the platform package as an optional
//                                       dependency (the repository's package.json does not, so that
//                                       `npm ci` here never asks the registry for an unpublished one)
// Publishing is `npm publish` of both. The addon in build/ is reused when it is a CUDA build for
// both architectures; otherwise it is built first. --cpu-only accepts a build without CUDA (local
// trials on hosts without nvcc; such a package must not be published).
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cpuOnly = process.argv.includes('--cpu-only');
const out = path.join(root, 'prebuilds');
const addon = path.join(root, 'build', 'Release', 'stepvideo.node');
const manifest = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
const platform = `${process.platform}-${process.arch}`;
const platformPackage = `@stepvideo/${platform}`;

function fail(message) {
  console.error(`prebuild: ${message}`);
  process.exit(1);
}

function addonBuild() {
  const probe = spawnSync(process.execPath, ['-p', `JSON.stringify(require(${JSON.stringify(addon)}).build)`], { encoding: 'utf8' });
  return probe.status === 0 ? JSON.parse(probe.stdout) : undefined;
}

function fits(build) {
  if (!build || build.cudaEmulated) return false;
  if (cpuOnly) return true;
  const archs = build.cudaArchitectures.split(',');
  return build.cuda && archs.includes('80') && archs.includes('90a');
}

// Only the system's C and C++ runtimes may be needed: everything else is inside. (libstdc++ stays
// shared: linked statically it would pull in symbols of a newer glibc than it saves.)
const ALLOWED_LIBRARIES = /^(libc|libm|libdl|librt|libpthread|libgcc_s|libstdc\+\+|ld-linux-x86-64)\.so/;

function elfFacts(file) {
  const dynamic = execFileSync('readelf', ['-d', '-W', file], { encoding: 'utf8' });
  const needed = [...dynamic.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  const symbols = execFileSync('readelf', ['--dyn-syms', '-W', file], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const key = (version) => version.split('.').reduce((sum, part, i) => sum + Number(part) * 1000 ** (2 - i), 0);
  const newest = (pattern) => [...new Set([...symbols.matchAll(pattern)].map((m) => m[1]))].sort((a, b) => key(a) - key(b)).at(-1) ?? 'unknown';
  return { needed, glibc: newest(/@GLIBC_([0-9.]+)/g), glibcxx: newest(/@GLIBCXX_([0-9.]+)/g) };
}

function pack(folder) {
  const json = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', out], { cwd: folder, encoding: 'utf8' });
  return path.join(out, JSON.parse(json)[0].filename);
}

if (process.platform !== 'linux' || process.arch !== 'x64') fail(`platform packages are made on linux-x64 only (this is ${platform})`);

let build = addonBuild();
if (!fits(build)) {
  console.log('prebuild: building the addon (CPU + CUDA sm_80, sm_90a)');
  const env = { ...process.env, STEPVIDEO_CUDA_ARCHS: '90a;80' };
  delete env.STEPVIDEO_CUDA;
  delete env.STEPVIDEO_BUILD_DIR;
  delete env.STEPVIDEO_SANITIZE;
  const status = spawnSync(process.execPath, [path.join(root, 'scripts', 'build-addon.mjs')], { cwd: root, stdio: 'inherit', env }).status;
  build = addonBuild();
  if (status !== 0 || !fits(build)) fail(cpuOnly ? 'the addon did not build' : 'no CUDA build for sm_80 and sm_90a (is nvcc on PATH? --cpu-only makes a CPU-only package for local trials)');
}

const { needed, glibc, glibcxx } = elfFacts(addon);
const foreign = needed.filter((library) => !ALLOWED_LIBRARIES.test(library));
if (foreign.length > 0) fail(`${addon} needs ${foreign.join(', ')}: a prebuilt binary may need only the C library (see CMakeLists.txt)`);

rmSync(out, { recursive: true, force: true });
const stage = path.join(out, 'stage');
const platformDir = path.join(stage, platform);
mkdirSync(platformDir, { recursive: true });
copyFileSync(addon, path.join(platformDir, 'stepvideo.node'));
const facts = {
  cuda: build.cuda,
  cudaArchitectures: build.cudaArchitectures,
  napiVersion: build.napiVersion,
  glibcMinimum: glibc,
  glibcxxMinimum: glibcxx,
  needs: needed,
  commit: spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).stdout.trim(),
  built: new Date().toISOString(),
};
writeFileSync(path.join(platformDir, 'build.json'), JSON.stringify(facts, null, 2) + '\n');
writeFileSync(
  path.join(platformDir, 'README.md'),
  `# ${platformPackage}\n\nThe prebuilt native addon of [stepvideo](https://www.npmjs.com/package/stepvideo) for ${platform} with glibc ${glibc} and libstdc++ GLIBCXX_${glibcxx} or later: ` +
    `${build.cuda ? `CPU backend and CUDA backend for ${build.cudaArchitectures.split(',').map((a) => `sm_${a}`).join(', ')} (NVIDIA driver 580 or later; cuBLASLt is loaded at run time where installed)` : 'CPU backend only'}. ` +
    'Installed by stepvideo as an optional dependency; not meant to be used on its own.\n',
);
writeFileSync(
  path.join(platformDir, 'package.json'),
  JSON.stringify(
    {
      name: platformPackage,
      version: manifest.version,
      description: `stepvideo's prebuilt addon for ${platform} (${build.cuda ? `CPU + CUDA ${build.cudaArchitectures}` : 'CPU only'})`,
      license: manifest.license,
      os: [process.platform],
      cpu: [process.arch],
      libc: ['glibc'],
      files: ['stepvideo.node', 'build.json'],
    },
    null,
    2,
  ) + '\n',
);
const platformTarball = pack(platformDir);

// The main package as `npm pack` makes it, with the platform package added to its optional dependencies.
const mainDir = path.join(stage, 'stepvideo');
mkdirSync(mainDir, { recursive: true });
const plainTarball = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', stage], { cwd: root, encoding: 'utf8' });
execFileSync('tar', ['-xzf', path.join(stage, JSON.parse(plainTarball)[0].filename), '-C', mainDir, '--strip-components=1']);
// dist/ compiled afresh inside the package (never a stale one, and the checkout's dist/, which
// running tests may be reading, is left alone).
rmSync(path.join(mainDir, 'dist'), { recursive: true, force: true });
copyFileSync(path.join(root, 'tsconfig.json'), path.join(mainDir, 'tsconfig.json'));
execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(mainDir, 'tsconfig.json')], { stdio: 'inherit' });
rmSync(path.join(mainDir, 'tsconfig.json'));
chmodSync(path.join(mainDir, 'dist', 'cli', 'main.js'), 0o755);
const released = JSON.parse(readFileSync(path.join(mainDir, 'package.json'), 'utf8'));
released.optionalDependencies = { ...released.optionalDependencies, [platformPackage]: manifest.version };
writeFileSync(path.join(mainDir, 'package.json'), JSON.stringify(released, null, 2) + '\n');
const mainTarball = pack(mainDir);
rmSync(stage, { recursive: true, force: true });

console.log(`prebuild: ${path.relative(root, platformTarball)} (${build.cuda ? `CPU + CUDA ${build.cudaArchitectures}` : 'CPU only'}, glibc >= ${glibc}, GLIBCXX >= ${glibcxx})`);
console.log(`prebuild: ${path.relative(root, mainTarball)} (optional dependency ${platformPackage}@${manifest.version})`);
