// Installing from the release tarballs, as a user of a GPU host without a toolkit would: `npm run
// prebuild` packs the main package and the platform package @stepvideo/linux-x64, both go into an
// empty project with no compiler, CMake, nvcc or system ffmpeg on PATH, and `stepvideo generate`
// writes an MP4 there through the prebuilt addon and the bundled ffmpeg. npm fetches the runtime
// dependencies from its cache (filled by `npm ci`), else from the registry.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { BUILD_TOOLS, FFMPEG_TOOLS, pathWithout } from '../helpers/bare-path.js';
import { projectRoot } from '../helpers/cli.js';

const hasNvcc = spawnSync('nvcc', ['--version']).status === 0;
const version = (JSON.parse(readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;
const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-install-'));
const project = path.join(work, 'project');
const installed = path.join(project, 'node_modules', 'stepvideo');
let env: Record<string, string>;

function run(command: string, args: readonly string[], cwd: string, extra: Record<string, string> = {}): SpawnSyncReturns<string> {
  return spawnSync(command, args, { cwd, env: { ...env, ...extra }, encoding: 'utf8', timeout: 300_000 });
}

function expectSuccess(result: SpawnSyncReturns<string>): void {
  expect(result.error, String(result.error)).toBeUndefined();
  expect(result.status, `${result.stdout}\n${result.stderr}`).toBe(0);
}

beforeAll(() => {
  // Where nvcc exists (CI) the platform package must carry the CUDA backend; elsewhere a CPU-only one shows the mechanism.
  const prebuild = spawnSync(process.execPath, [path.join(projectRoot, 'scripts', 'prebuild.mjs'), ...(hasNvcc ? [] : ['--cpu-only'])], {
    cwd: projectRoot,
    encoding: 'utf8',
    timeout: 600_000,
  });
  expect(prebuild.status, `${prebuild.stdout}\n${prebuild.stderr}`).toBe(0);
  env = {
    HOME: process.env.HOME ?? os.homedir(),
    TMPDIR: os.tmpdir(),
    PATH: pathWithout(path.join(work, 'bin'), [BUILD_TOOLS, FFMPEG_TOOLS]),
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_prefer_offline: 'true',
    npm_config_update_notifier: 'false',
  };
  for (const tool of ['cc', 'g++', 'cmake', 'nvcc', 'ffmpeg']) {
    expect(spawnSync(tool, ['--version'], { env }).error, `${tool} must not be on the test's PATH`).toBeDefined();
  }
  mkdirSync(project, { recursive: true });
  writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'fresh-user', private: true }));
  const prebuilds = path.join(projectRoot, 'prebuilds');
  expectSuccess(run('npm', ['install', path.join(prebuilds, `stepvideo-${version}.tgz`), path.join(prebuilds, `stepvideo-linux-x64-${version}.tgz`)], project));
}, 900_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('install from the release tarballs on a host without build tools', () => {
  it('installs the platform package and compiles nothing', () => {
    const platform = path.join(project, 'node_modules', '@stepvideo', 'linux-x64');
    expect(existsSync(path.join(platform, 'stepvideo.node'))).toBe(true);
    const facts = JSON.parse(readFileSync(path.join(platform, 'build.json'), 'utf8')) as { cuda: boolean; cudaArchitectures: string; needs: string[] };
    if (hasNvcc) expect(facts).toMatchObject({ cuda: true, cudaArchitectures: '90a,80' });
    expect(facts.needs.filter((library) => /cudart|cublas|cuda/.test(library))).toEqual([]);
    expect(existsSync(path.join(installed, 'build'))).toBe(false);
    const manifest = JSON.parse(readFileSync(path.join(installed, 'package.json'), 'utf8')) as { optionalDependencies: Record<string, string> };
    expect(manifest.optionalDependencies['@stepvideo/linux-x64']).toBe(version);
  });

  it("its install script keeps the prebuilt binary, and builds from source only where none fits or when asked", () => {
    const script = path.join(installed, 'scripts', 'install.mjs');
    const fits = run(process.execPath, [script], project);
    expectSuccess(fits);
    expect(fits.stdout).toContain(`using the prebuilt binary @stepvideo/linux-x64@${version}`);
    expect(existsSync(path.join(installed, 'build'))).toBe(false);

    const asked = run(process.execPath, [script], project, { npm_config_build_from_source: 'true', STEPVIDEO_INSTALL_DRY_RUN: '1' });
    expectSuccess(asked);
    expect(asked.stdout).toContain('building from source, as asked');

    const platformManifest = path.join(project, 'node_modules', '@stepvideo', 'linux-x64', 'package.json');
    const original = readFileSync(platformManifest, 'utf8');
    try {
      writeFileSync(platformManifest, original.replace(`"version": "${version}"`, '"version": "0.0.1"'));
      const mismatch = run(process.execPath, [script], project, { STEPVIDEO_INSTALL_DRY_RUN: '1' });
      expectSuccess(mismatch);
      expect(mismatch.stdout).toContain(`@stepvideo/linux-x64@0.0.1 does not match stepvideo@${version}; building from source`);
    } finally {
      writeFileSync(platformManifest, original);
    }
  });

  it('says where its addon came from', () => {
    const info = run('npx', ['stepvideo', 'info', '--json'], project);
    expectSuccess(info);
    const parsed = JSON.parse(info.stdout) as { addon: { origin: string; packageName: string }; cudaCompiled: boolean };
    expect(parsed.addon).toMatchObject({ origin: 'prebuilt', packageName: `@stepvideo/linux-x64@${version}` });
    expect(parsed.cudaCompiled).toBe(hasNvcc);
    const text = run('npx', ['stepvideo', 'info'], project);
    expect(text.stdout).toContain(`prebuilt (@stepvideo/linux-x64@${version})`);
  });

  it('generates an MP4 with the built-in model through the bundled ffmpeg', () => {
    const out = path.join(project, 'ball.mp4');
    const generate = run('npx', ['stepvideo', 'generate', 'a red ball bouncing', '--out', out, '--frames', '17', '--height', '64', '--width', '64', '--steps', '3'], project);
    expectSuccess(generate);
    expect(generate.stdout.trim()).toBe(out);
    // The bundled ffmpeg decodes it (there is no ffprobe in that package): H.264, 64x64, 17 frames.
    const ffmpeg = path.join(project, 'node_modules', '@ffmpeg-installer', 'linux-x64', 'ffmpeg');
    const decode = run(ffmpeg, ['-hide_banner', '-i', out, '-f', 'null', '-'], project);
    expectSuccess(decode);
    expect(decode.stderr).toMatch(/Video: h264 .*yuv420p.*64x64/);
    expect(decode.stderr).toMatch(/frame=\s*17\b/);
  });
});
