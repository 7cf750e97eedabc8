// The whole pipeline on CUDA with the built-in test model: f32 against its CPU twin, bf16 finite
// and close to f32 (bounds derived in docs/TOLERANCES.md, "Pipeline on CUDA"), the official 540p crop at the real frame size, device memory back to its
// baseline after a job and after an abort, the memory estimate against the measured peak, the
// fail-fast check against the GPU's free memory, and the event loop staying free.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, beforeAll, expect, it } from 'vitest';

import { Device, getDevice } from '../../lib/device.js';
import { isStepVideoError } from '../../lib/errors.js';
import { SAFETY_MARGIN } from '../../lib/pipeline/memory.js';
import { StepVideo } from '../../lib/pipeline/pipeline.js';
import { allFinite, maxAbsErr, relErr } from '../helpers/compare.js';
import { describeGpu, emulatedDevice, fitEmulated, gpuAvailable, itUnlessEmulated } from '../helpers/gpu.js';
import { testCacheDir } from '../helpers/pipeline.js';

let work = '';

/** Decoder floats and RGB frames of one generated video. */
async function run(sv: StepVideo, request: Parameters<StepVideo['generate']>[0]): Promise<{ decoded: Float32Array; rgb: Uint8Array }> {
  const video = await sv.generate(request);
  const decoded: Float32Array[] = [];
  const rgb: Uint8Array[] = [];
  for await (const chunk of video.chunks({ decoded: true })) {
    decoded.push(chunk.decoded!);
    rgb.push(chunk.frames.data);
  }
  const join = <T extends Float32Array | Uint8Array>(parts: T[], make: (n: number) => T): T => {
    const out = make(parts.reduce((n, p) => n + p.length, 0));
    let offset = 0;
    for (const p of parts) {
      out.set(p as never, offset);
      offset += p.length;
    }
    return out;
  };
  return { decoded: join(decoded, (n) => new Float32Array(n)), rgb: join(rgb, (n) => new Uint8Array(n)) };
}

// On the emulated device (test/helpers/gpu.ts) a job of this size takes minutes (the VAE decode at
// about 1 GFLOP/s): one chunk of 16x48 frames there, whose amplifications were re-measured on the CPU
// (docs/TOLERANCES.md, "Pipeline on CUDA"); the jobs at the real frame size are a GPU's alone.
const size = fitEmulated({ frames: 34, height: 64, width: 96 }, { frames: 17, height: 16, width: 48 }, '34 frames of 64x96 -> 17 of 16x48 to fit CI time');
const request = { prompt: 'a paper boat on a river', ...size.value, steps: 4, seed: 31 };
const REAL_FRAME_SIZE = 'a GPU-only size: a job at 544x992 takes hours there';

// The bounds for this request (docs/TOLERANCES.md, "Pipeline on CUDA"). The amplifications were
// measured on the CPU for this request: a relative perturbation of the DiT's velocity at every call
// reaches the decoded video x8.4 (4 steps, guidance 9), one of the text states x2.1, one of the
// latents before decoding x1.5.
// f32: each stage's f32 error as measured on the goldens (DiT 3.6e-6 per call, Step-LLM 4.9e-7,
// VAE decode 6.8e-7), the GPU's own at most 4x the CPU's, so 5x between them:
// 8.4·5·3.6e-6 + 2.1·5·4.9e-7 + 5·6.8e-7 = 1.6e-4.
const F32_VS_CPU_TWIN = 2e-4;
// bf16 against f32: the official quantisation points of the bf16 path (measured on the CPU for this
// request: 7.63e-2), plus each stage's bf16 noise allowance: the DiT's rho (8.5e-3) and the bf16
// guidance (1.66e-3) per call x8.4, Step-LLM's 1.25 x 6.0e-3 x2.1, the VAE's 1.25 x 1.49e-2 and its
// bf16 latents (1.66e-3) x1.5, plus the f32 bound: 0.199.
const BF16_VS_F32 = 0.2;
// One RGB level is 1/127.5 of the decoded range: floats closer than that truncate at most one level apart.
const RGB_LEVEL = 1 / 127.5;

describeGpu('pipeline on CUDA (built-in model)', () => {
  let bf16: StepVideo;
  let f32: StepVideo;
  let cpu: StepVideo;
  let cuda: Device;

  beforeAll(async () => {
    if (!gpuAvailable) return;
    work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-gpu-pipeline-'));
    cuda = getDevice('cuda');
    bf16 = await StepVideo.load({ device: 'cuda', cacheDir: testCacheDir });
    f32 = await StepVideo.load({ device: 'cuda', dtype: 'f32', cacheDir: testCacheDir });
    cpu = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir });
  });

  afterAll(() => {
    for (const sv of [bf16, f32, cpu]) sv?.dispose();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('loads bf16 by default on CUDA, f32 when asked', () => {
    expect(bf16.dtype).toBe('bf16');
    expect(f32.dtype).toBe('f32');
    expect(bf16.device.isCuda).toBe(true);
  });

  it(`f32 on CUDA matches the CPU twin (decoder floats and RGB frames)${size.note}`, async () => {
    const gpu = await run(f32, request);
    const host = await run(cpu, request);
    expect(gpu.decoded).toHaveLength(request.frames * 3 * request.height * request.width);
    expect(allFinite(gpu.decoded)).toBe(true);
    const rel = relErr(gpu.decoded, host.decoded);
    const worst = maxAbsErr(gpu.decoded, host.decoded);
    console.log(`pipeline f32 CUDA vs CPU twin: decoded rel ${rel.toExponential(3)} (bound ${F32_VS_CPU_TWIN}), max abs ${worst.toExponential(3)}`);
    expect(rel, `rel ${rel}`).toBeLessThanOrEqual(F32_VS_CPU_TWIN);
    // f32 differences are rounding-sized everywhere: far inside one RGB level, so truncation moves a pixel by one level at most.
    expect(worst).toBeLessThan(RGB_LEVEL);
    let maxDiff = 0;
    for (let i = 0; i < gpu.rgb.length; i++) maxDiff = Math.max(maxDiff, Math.abs(gpu.rgb[i]! - host.rgb[i]!));
    expect(maxDiff).toBeLessThanOrEqual(1);
  });

  it(`placement: caption encoders and VAE on the CPU, only the DiT on the GPU; f32 within the CPU-twin bound${size.note}`, async () => {
    await cuda.synchronize();
    const before = cuda.memory().bytesInUse;
    await using placed = await StepVideo.load({ device: 'cuda', dtype: 'f32', cacheDir: testCacheDir, placement: { text: 'cpu', vae: 'cpu' } });
    expect([placed.text.device.name, placed.vae.device.name, placed.dit.device.name]).toEqual(['cpu', 'cpu', 'cuda:0']);
    await cuda.synchronize();
    expect(cuda.memory().bytesInUse - before).toBe(placed.dit.weightBytes);  // the GPU holds the DiT alone
    const split = await run(placed, request);
    const host = await run(cpu, request);
    const rel = relErr(split.decoded, host.decoded);
    console.log(`pipeline f32, DiT on CUDA, text and VAE on the CPU, vs the CPU twin: decoded rel ${rel.toExponential(3)} (bound ${F32_VS_CPU_TWIN})`);
    // A subset of the f32 CUDA run's differences (the DiT's only): the same bound holds.
    expect(rel).toBeLessThanOrEqual(F32_VS_CPU_TWIN);
  });

  // Its bound is derived for 34 frames of 64x96. For the emulated device's request the official
  // quantisation points alone move the video by 9.4e-2 and the DiT's noise is amplified x8.0, so the
  // same analysis gives 0.22 there, and the VAE's bf16 noise at 16-pixel frames exceeds the golden
  // rho (2.3e-2 against 1.87e-2 measured at 16x16): no derived bound exists at an affordable size.
  itUnlessEmulated('bf16 gives finite frames close to f32 (far closer than unrelated videos)', 'its bound 0.2 holds for 34 frames of 64x96 (minutes there); at an affordable size the same analysis gives 0.22 (docs/TOLERANCES.md)', async () => {
    const half = await run(bf16, request);
    const full = await run(f32, request);
    expect(allFinite(half.decoded)).toBe(true);
    const rel = relErr(half.decoded, full.decoded);
    console.log(`pipeline bf16 vs f32 on CUDA: decoded rel ${rel.toExponential(3)} (bound ${BF16_VS_F32})`);
    expect(rel, `rel ${rel}`).toBeLessThanOrEqual(BF16_VS_F32);
    const other = await run(bf16, { ...request, seed: 32 });
    expect(relErr(other.decoded, full.decoded)).toBeGreaterThan(2 * rel);
  });

  itUnlessEmulated('writes the official 540p crop at the real frame size (544x992 -> 960x540)', REAL_FRAME_SIZE, async () => {
    const video = await bf16.generate({ ...request, frames: 17, height: 544, width: 992, steps: 2 });
    expect(video.info).toMatchObject({ width: 960, height: 540, decodedWidth: 992, decodedHeight: 544 });
    const file = await video.save(path.join(work, 'crop.y4m'));
    expect(readFileSync(file).subarray(0, 30).toString('latin1')).toMatch(/^YUV4MPEG2 W960 H540 /);
  });

  it(`frees device memory after a job and after an abort; the next job works${size.note}`, async () => {
    await cuda.synchronize();
    const baseline = cuda.memory().bytesInUse;
    await (await bf16.generate(request)).save(path.join(work, 'a.y4m'));
    await cuda.synchronize();
    expect(cuda.memory().bytesInUse).toBe(baseline);

    const controller = new AbortController();
    const aborted = bf16.generate({ ...request, steps: 50, signal: controller.signal, onProgress: (p) => {
      if (p.stage === 'denoise' && p.step === 2) controller.abort();
    } });
    await expect(aborted).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    await cuda.synchronize();
    expect(cuda.memory().bytesInUse).toBe(baseline);

    const decoding = new AbortController();
    // Aborted while decoding its second chunk (of three; of two on the emulated device).
    const video = await bf16.generate({ ...request, frames: emulatedDevice ? 34 : 51, steps: 1, signal: decoding.signal, onProgress: (p) => {
      if (p.stage === 'decode' && p.chunk === 1) decoding.abort();
    } });
    await expect(video.save(path.join(work, 'b.y4m'))).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    await cuda.synchronize();
    expect(cuda.memory().bytesInUse).toBe(baseline);

    await (await bf16.generate(request)).save(path.join(work, 'c.y4m'));
    await cuda.synchronize();
    expect(cuda.memory().bytesInUse).toBe(baseline);
  });

  itUnlessEmulated('estimates at least the device memory a job uses, bf16 and f32, at a real frame size', REAL_FRAME_SIZE, async () => {
    for (const sv of [bf16, f32]) {
      const job = { ...request, frames: 34, height: 544, width: 992, steps: 2 };
      const estimate = sv.estimateMemory(job);
      await cuda.synchronize();
      const baseline = cuda.memory().bytesInUse;
      cuda.resetPeakMemory();
      const video = await sv.generate(job);
      const sampled = cuda.memory().peakBytes - baseline;
      expect(Math.max(estimate.stages.text, estimate.stages.denoise) * SAFETY_MARGIN, `${sv.dtype} sampling`).toBeGreaterThanOrEqual(sampled);
      await video.save(path.join(work, `estimate-${sv.dtype}.y4m`));
      const used = cuda.memory().peakBytes - baseline;
      expect(estimate.peakBytes, `${sv.dtype}: estimate ${estimate.peakBytes}, used ${used}`).toBeGreaterThanOrEqual(used);
      expect(estimate.peakBytes).toBeLessThan(4 * used);
    }
  });

  it('fails fast with ERR_CUDA_OOM when a job cannot fit the free GPU memory', async () => {
    const error = await bf16.generate({ prompt: 'too large', frames: 204, height: 8192, width: 8192, seed: 1 }).catch((e: unknown) => e);
    expect(isStepVideoError(error, 'ERR_CUDA_OOM')).toBe(true);
    expect((error as Error).message).toMatch(/GPU memory on cuda:0 .* it needs about [\d.]+ GiB .* is free/);
  });

  itUnlessEmulated('keeps the event loop free (max delay < 50 ms) during a job at the real frame size', REAL_FRAME_SIZE, async () => {
    const histogram = monitorEventLoopDelay({ resolution: 5 });
    histogram.enable();
    await (await bf16.generate({ ...request, frames: 34, height: 544, width: 992, steps: 10 })).save(path.join(work, 'loop.y4m'));
    histogram.disable();
    expect(histogram.max / 1e6).toBeLessThan(50);
  });
});
