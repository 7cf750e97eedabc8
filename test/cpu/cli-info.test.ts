// `stepvideo info` through the built CLI (dist/), and the two searches it reports: the ffmpeg MP4
// output uses (FFMPEG_PATH, PATH, bundled) and the libcublasLt the CUDA GEMMs load at run time
// (cuda/gemm.cu). The cuBLASLt search is host code: its order is checked here with made-up
// folder layouts, and its loading with stand-in libraries compiled by `cc` (CI has no cuBLAS).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { cublasLtCandidates, missingCublasLtWarning, ncclCandidates } from '../../lib/device.js';
import { native } from '../../lib/native.js';
import { runCliToEnd } from '../helpers/pipeline.js';
import { FFMPEG_TOOLS, pathWithout } from '../helpers/bare-path.js';
import { withEnv } from '../helpers/env.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-cli-info-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const realCuda = native.build.cuda && !native.build.cudaEmulated;

async function infoJson(env: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const { code, stdout, stderr } = await runCliToEnd(['info', '--json'], { env });
  expect(code, stderr).toBe(0);
  return JSON.parse(stdout) as Record<string, unknown>;
}

describe('stepvideo info', () => {
  it('reports the ffmpeg in use: where it is, where it came from, its version', async () => {
    const env = { PATH: pathWithout(path.join(work, 'no-ffmpeg'), [FFMPEG_TOOLS]), FFMPEG_PATH: '' };
    const { code, stdout, stderr } = await runCliToEnd(['info'], { env });
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/^ffmpeg \(MP4 output\): \S*@ffmpeg-installer\S*ffmpeg \(from bundled; ffmpeg version \S+/m);
    expect(stdout).toMatch(/^CPU backend: \d+ threads$/m); // the existing lines stay
    expect(await infoJson(env)).toMatchObject({ ffmpeg: { source: 'bundled', version: expect.stringMatching(/^ffmpeg version /) } });
    const broken = path.join(work, 'broken-ffmpeg');
    const json = await infoJson({ FFMPEG_PATH: broken });
    expect((json.ffmpeg as { error: string }).error).toContain(`FFMPEG_PATH names an ffmpeg that cannot be run`);
    expect((json.ffmpeg as { error: string }).error).toContain(broken);
  });

  it('reports the cuBLASLt the CUDA GEMMs use, or the own kernel and what to install', async () => {
    const { stdout } = await runCliToEnd(['info']);
    const json = await infoJson();
    if (!native.build.cuda) {
      expect(stdout).not.toContain('cuBLASLt');
      expect(json.cublasLt).toBeUndefined();
      return;
    }
    const cublasLt = json.cublasLt as { path: string | null; why: string };
    if (cublasLt.path === null) {
      expect(stdout).toMatch(/^cuBLASLt: not found: own GEMM kernel \(install .*nvidia-cublas.*STEPVIDEO_CUBLASLT/m);
      expect(cublasLt.why).toMatch(/^libcublasLt not found \(tried libcublasLt\.so\.13, libcublasLt\.so\.12, /);
    } else {
      expect(stdout).toContain(`cuBLASLt: ${cublasLt.path}`);
    }
  });
});

describe('NCCL in stepvideo info', () => {
  it('reports the NCCL it would use for several GPUs, or that it is missing, what to install, and where it looked', async () => {
    const { stdout } = await runCliToEnd(['info']);
    const json = await infoJson();
    if (!native.build.cuda) {
      expect(stdout).not.toContain('NCCL');
      expect(json.nccl).toBeUndefined();
      return;
    }
    const nccl = json.nccl as { path: string | null; why: string; version: string };
    if (nccl.path === null) {
      expect(stdout).toMatch(/^NCCL \(several GPUs per job\): not found; one GPU per job works without it \(install NCCL 2 .*libnccl2.*nvidia-nccl-cu12.*STEPVIDEO_NCCL/m);
      expect(nccl.why).toMatch(native.build.cudaEmulated ? /emulated CUDA device has no NCCL/ : /^libnccl not found \(tried libnccl\.so\.2, /);
    } else {
      expect(stdout).toContain(`NCCL (several GPUs per job): ${nccl.path} (${nccl.version})`);
      expect(nccl.version).toMatch(/^2\.\d+\.\d+$/);
    }
  });

  it.runIf(native.build.cuda)('looks for libnccl.so.2 through the loader, then the pip wheels; STEPVIDEO_NCCL alone when set', () => {
    const venv = path.join(work, 'nccl-venv');
    const site = path.join(venv, 'lib', 'python3.12', 'site-packages');
    mkdirSync(site, { recursive: true });
    const list = withEnv({ VIRTUAL_ENV: venv, CONDA_PREFIX: '', STEPVIDEO_NCCL: '' }, ncclCandidates);
    expect(list[0]).toBe('libnccl.so.2');
    expect(list.indexOf(`${site}/nvidia/nccl/lib/libnccl.so.2`)).toBeGreaterThan(0);
    expect(list.some((c) => c.includes('/usr/local/cuda'))).toBe(false);  // not a toolkit library
    expect(withEnv({ STEPVIDEO_NCCL: '/opt/nccl/libnccl.so.2' }, ncclCandidates)).toEqual(['/opt/nccl/libnccl.so.2']);
  });
});

describe.runIf(native.build.cuda)(`the cuBLASLt search${native.build.cuda ? '' : ' [skipped: this addon has no CUDA backend]'}`, () => {
  it('looks in LD_LIBRARY_PATH first, then the CUDA folders, then pip wheels (venv, conda, user, system), then conda', () => {
    const root = path.join(work, 'layouts');
    const site = (prefix: string) => {
      const dir = path.join(prefix, 'lib', 'python3.12', 'site-packages');
      mkdirSync(dir, { recursive: true });
      return dir;
    };
    const venv = path.join(root, 'venv'), conda = path.join(root, 'conda'), home = path.join(root, 'home'), cudaHome = path.join(root, 'cuda');
    const venvSite = site(venv), condaSite = site(conda);
    const userSite = path.join(home, '.local', 'lib', 'python3.11', 'site-packages');
    mkdirSync(userSite, { recursive: true });
    const list = withEnv({ VIRTUAL_ENV: venv, CONDA_PREFIX: conda, HOME: home, CUDA_HOME: cudaHome, CUDA_PATH: '', STEPVIDEO_CUBLASLT: '' }, cublasLtCandidates);
    const position = (candidate: string) => {
      const at = list.indexOf(candidate);
      expect(at, `${candidate} in ${list.join('\n')}`).toBeGreaterThanOrEqual(0);
      return at;
    };
    const order = [
      'libcublasLt.so.13',
      'libcublasLt.so.12',
      `${cudaHome}/lib64/libcublasLt.so.13`,
      `${cudaHome}/targets/${os.arch() === 'arm64' ? 'sbsa' : 'x86_64'}-linux/lib/libcublasLt.so.12`,
      '/usr/local/cuda/lib64/libcublasLt.so.13',
      `${venvSite}/nvidia/cu13/lib/libcublasLt.so.13`,
      `${venvSite}/nvidia/cublas/lib/libcublasLt.so.12`,
      `${condaSite}/nvidia/cu13/lib/libcublasLt.so.13`,
      `${userSite}/nvidia/cublas/lib/libcublasLt.so.12`,
      `${conda}/lib/libcublasLt.so.13`,
    ].map(position);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(new Set(list).size).toBe(list.length);
    // Versioned toolkits (whatever this machine has) come newest first.
    const versions = list.filter((c) => /^\/usr\/local\/cuda-[^/]+\/lib64\/libcublasLt\.so\.13$/.test(c)).map((c) => c.split('/')[3]!.slice('cuda-'.length).split('.').map(Number));
    expect(versions).toEqual([...versions].sort((a, b) => b[0]! - a[0]! || (b[1] ?? 0) - (a[1] ?? 0)));
  });

  it('takes STEPVIDEO_CUBLASLT alone when it is set', () => {
    expect(withEnv({ STEPVIDEO_CUBLASLT: '/opt/cublas/libcublasLt.so.13' }, cublasLtCandidates)).toEqual(['/opt/cublas/libcublasLt.so.13']);
  });

  it('warns once, naming what to install, only when a CUDA build has no cuBLASLt and the own kernel was not chosen', () => {
    const missing = { path: null, why: 'libcublasLt not found (tried ...)' };
    const warning = missingCublasLtWarning(missing, { cuda: true }, 'auto');
    for (const advice of ["CUDA toolkit's libcublas", 'pip install nvidia-cublas', 'nvidia-cublas-cu12', 'STEPVIDEO_CUBLASLT=/path/libcublasLt.so.13', 'own GEMM kernel']) expect(warning).toContain(advice);
    const explicit = { path: null, why: 'STEPVIDEO_CUBLASLT does not name a loadable libcublasLt (/x/lib.so: cannot open shared object file)' };
    expect(missingCublasLtWarning(explicit, { cuda: true }, 'auto')).toMatch(/^STEPVIDEO_CUBLASLT does not name a loadable libcublasLt \(\/x\/lib\.so/);
    expect(missingCublasLtWarning({ path: '/usr/lib/libcublasLt.so.13', why: '' }, { cuda: true }, 'auto')).toBeUndefined();
    expect(missingCublasLtWarning(missing, { cuda: false }, 'auto')).toBeUndefined();
    expect(missingCublasLtWarning(missing, { cuda: true }, 'fallback')).toBeUndefined();
  });

  // Loading happens once per process: each case is a `stepvideo info` child process.
  it.runIf(realCuda)(`loads STEPVIDEO_CUBLASLT and reports the file; a wrong one is named, never bypassed${realCuda ? '' : ' [skipped: the emulated device uses its own reference cuBLASLt]'}`, async (context) => {
    const symbols = ['cublasLtCreate', 'cublasLtMatmulDescCreate', 'cublasLtMatmulDescDestroy', 'cublasLtMatmulDescSetAttribute', 'cublasLtMatrixLayoutCreate', 'cublasLtMatrixLayoutDestroy', 'cublasLtMatrixLayoutSetAttribute', 'cublasLtMatmulPreferenceCreate', 'cublasLtMatmulPreferenceDestroy', 'cublasLtMatmulPreferenceSetAttribute', 'cublasLtMatmulAlgoGetHeuristic', 'cublasLtMatmul', 'cublasLtGetStatusName'];
    // Stand-ins with the entry points' names only: enough for the loader, never called by `info`.
    const standIn = (name: string, exported: readonly string[]) => {
      const dir = path.join(work, name);
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, 'stub.c'), exported.map((s) => `int ${s}(void) { return 0; }\n`).join(''));
      const library = path.join(dir, 'libcublasLt.so.13');
      const built = spawnSync('cc', ['-shared', '-fPIC', '-o', library, path.join(dir, 'stub.c')], { encoding: 'utf8' });
      return built.error || built.status !== 0 ? undefined : library;
    };
    const complete = standIn('complete', symbols);
    if (complete === undefined) context.skip('no C compiler (cc) to build the stand-in libcublasLt');
    const partial = standIn('partial', symbols.slice(0, -1))!;
    const missing = path.join(work, 'nowhere', 'libcublasLt.so.13');

    expect((await infoJson({ STEPVIDEO_CUBLASLT: complete! })).cublasLt).toEqual({ path: complete, why: '' });
    const lacking = (await infoJson({ STEPVIDEO_CUBLASLT: partial })).cublasLt as { path: null; why: string };
    expect(lacking).toEqual({ path: null, why: `${partial}: libcublasLt lacks cublasLtGetStatusName` });
    const absent = (await infoJson({ STEPVIDEO_CUBLASLT: missing })).cublasLt as { path: null; why: string };
    expect(absent.path).toBeNull();
    expect(absent.why).toBe(`STEPVIDEO_CUBLASLT does not name a loadable libcublasLt (${missing})`);
  });
});
