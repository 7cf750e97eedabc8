// End-to-end pipeline benchmark: one prompt to a video file with StepVideo (the built-in model by
// default, or --model DIR), timed stage by stage, with peak memory and the event-loop delay.
//   node benchmarks/pipeline/e2e.mjs [--device=cpu|cuda] [--dtype=f32|bf16] [--model=DIR]
//        [--frames=17] [--height=128] [--width=128] [--steps=50] [--format=y4m|mp4] [--cli]
// Lines (JSON): `pipeline stages` (load, text encoding, each denoising step, each VAE chunk
// decoded, each chunk written, total; achieved TFLOP/s of the DiT step and of the VAE against
// their floors: GEMM FLOPs over the 700 TFLOP/s bf16 ceiling, attention over SDPA's 610, the
// decoder's convolutions over cuDNN conv3d's 440), `pipeline memory` (activation peak on the
// device, the estimate made before the job, weights, process max RSS), `pipeline event loop`
// (monitorEventLoopDelay during the job: goal max < 50 ms). With --cli, also the wall time of
// `stepvideo generate` as a user runs it (a fresh process: start-up, loading, the job, the file).
// There is no PyTorch baseline for the whole run (the official pipeline needs the released weights
// and its closed Step-LLM kernel); each stage's baseline is its component suite (text, dit,
// sampler, attention). ratioToBaseline is therefore null here.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';

import { H200, environment, library, parseFlags, report, root } from '../lib/harness.mjs';

const flags = parseFlags();
const sv = await library();
const device = sv.getDevice(flags.device ?? (sv.cudaAvailable() ? 'cuda' : 'cpu'));
const env = environment(device);
const round = (v, digits = 4) => (Number.isFinite(v) ? Number(v.toPrecision(digits)) : null);
const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? Number.NaN : sorted[Math.floor(sorted.length / 2)];
};

// ---- load ----
let loadStarted = performance.now();
const pipeline = await sv.StepVideo.load({
  device,
  ...(flags.dtype ? { dtype: flags.dtype } : {}),
  ...(flags.model ? { modelDir: flags.model } : {}),
});
const loadMs = performance.now() - loadStarted;
const request = {
  prompt: flags.prompt ?? 'A red fox runs through fresh snow in a pine forest at dawn, the camera tracking beside it.',
  frames: Number(flags.frames ?? pipeline.defaultSize.frames),
  height: Number(flags.height ?? pipeline.defaultSize.height),
  width: Number(flags.width ?? pipeline.defaultSize.width),
  steps: Number(flags.steps ?? 50),
  seed: 42,
};
const format = flags.format ?? 'y4m';
const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-bench-pipeline-'));

// ---- FLOPs (multiply-adds count 2) ----
const { dit, vae } = pipeline.dims;
const rows = 2; // classifier-free guidance
const tokens = (request.frames / 17) * 3 * (request.height / 16) * (request.width / 16);
const D = dit.innerDim;
const contextKeys = 397;
const ditGemm = rows * (2 * tokens * dit.inChannels * D + dit.numLayers * (2 * tokens * D * 3 * D + 2 * tokens * D * D * 3 + 2 * 2 * tokens * D * dit.ffnDim) + 2 * tokens * D * dit.outChannels);
const ditAttention = rows * dit.numLayers * (4 * tokens * tokens * D + 4 * tokens * contextKeys * D);
const ditFloorMs = (ditGemm / H200.bf16GemmFlops + ditAttention / H200.sdpaCudnnFlops) * 1e3;

/** FLOPs of decoding one chunk of 3 latent frames of h×w (spec §3.4, walked level by level). */
function decoderChunkFlops(h, w) {
  const { ch, chMult, blocksPerLevel } = vae.decoder;
  const P = 4 * vae.zChannels * 8;
  let flops = 0;
  const conv = (cin, cout, taps, t, hh, ww) => (flops += 2 * cin * cout * taps * t * hh * ww);
  let width = ch * chMult[chMult.length - 1];
  conv(vae.zChannels, P, 27, 3, h, w);
  conv(P, 8 * width, 27, 3, h, w);
  let [t, hh, ww] = [5, 2 * h, 2 * w];
  const res = (cin, cout) => {
    conv(cin, cout, 27, t, hh, ww);
    conv(cout, cout, 27, t, hh, ww);
    if (cin !== cout) conv(cin, cout, 1, t, hh, ww);
  };
  res(width, width);
  const n = t * hh * ww;
  flops += 4 * 2 * width * width * n + 2 * n * n * width; // q, k, v, proj_out and causal attention
  res(width, width);
  for (let level = chMult.length - 1; level >= 0; level--) {
    const out = ch * chMult[level];
    for (let b = 0; b < blocksPerLevel; b++) {
      res(width, out);
      width = out;
    }
    if (level >= 2) {
      [t, hh, ww] = [2 * t, 2 * hh, 2 * ww];
      conv(width, width, 27, t, hh, ww);
      conv(width, width, 27, t, hh, ww);
    } else if (level === 1) {
      [hh, ww] = [2 * hh, 2 * ww];
      conv(width, width, 9, t, hh, ww);
    }
  }
  conv(width, 3, 27, t, hh, ww);
  return flops;
}
const vaeChunkFlops = decoderChunkFlops(request.height / 16, request.width / 16);
const vaeFloorMs = (vaeChunkFlops / H200.conv3dCudnnFlops) * 1e3;

// ---- the job ----
await device.synchronize();
const baseline = device.memory().bytesInUse;
device.resetPeakMemory();
const estimate = pipeline.estimateMemory(request);
const stepEnds = [];
const events = [];
const histogram = monitorEventLoopDelay({ resolution: 5 });
histogram.enable();
const jobStarted = performance.now();
let textMs = Number.NaN;
let textDoneAt = Number.NaN;
const video = await pipeline.generate({
  ...request,
  onProgress: (p) => {
    const now = performance.now();
    if (p.stage === 'text' && p.done) [textMs, textDoneAt] = [p.elapsedMs, now];
    if (p.stage === 'denoise' && p.block === undefined) stepEnds.push(now);
    if (p.stage === 'decode' || (p.stage === 'write' && !p.done)) events.push({ stage: p.stage, at: now });
  },
});
const samplingEnded = performance.now();
const saveStarted = performance.now();
const file = await video.save(path.join(work, `video${format === 'png' ? '' : `.${format}`}`), { format });
const jobMs = performance.now() - jobStarted;
histogram.disable();
await device.synchronize();
const peakActivationBytes = device.memory().peakBytes - baseline;

// Step i ends at stepEnds[i]; the first one also carries the sampler's setup (noise, context).
const stepMs = stepEnds.map((t, i) => t - (i === 0 ? textDoneAt : stepEnds[i - 1]));
const firstStepMs = stepMs[0] ?? Number.NaN;
const decodeMs = [];
const writeMs = [];
let last = saveStarted;
for (const e of events) {
  (e.stage === 'decode' ? decodeMs : writeMs).push(e.at - last);
  last = e.at;
}
const finishMs = performance.now() - last;
const stepMedian = median(stepMs.slice(1).length > 0 ? stepMs.slice(1) : stepMs);
const decodeMedian = median(decodeMs);

report({
  benchmark: 'pipeline stages',
  ...env,
  device: device.name,
  dtype: pipeline.dtype,
  model: pipeline.builtin ? 'built-in' : pipeline.modelDir,
  video: `${request.frames}x${request.height}x${request.width}`,
  steps: request.steps,
  format,
  loadMs: round(loadMs),
  textMs: round(textMs),
  stepMsMedian: round(stepMedian),
  firstStepMs: round(firstStepMs),
  stepMs: stepMs.map((v) => round(v, 3)),
  samplingMs: round(samplingEnded - jobStarted),
  decodeMsPerChunk: decodeMs.map((v) => round(v, 3)),
  writeMsPerChunk: writeMs.map((v) => round(v, 3)),
  finishFileMs: round(finishMs),
  jobMs: round(jobMs),
  fileBytes: format === 'png' ? null : statSync(file).size,
  ditStepTflops: round((ditGemm + ditAttention) / (stepMedian * 1e9)),
  ditStepFloorMs: round(ditFloorMs),
  ditStepRatioToFloor: round(stepMedian / ditFloorMs),
  vaeChunkTflops: round(vaeChunkFlops / (decodeMedian * 1e9)),
  vaeChunkFloorMs: round(vaeFloorMs),
  vaeChunkRatioToFloor: round(decodeMedian / vaeFloorMs),
  ratioToBaseline: null,
});
report({
  benchmark: 'pipeline memory',
  ...env,
  device: device.name,
  video: `${request.frames}x${request.height}x${request.width}`,
  peakActivationBytes,
  estimatedPeakBytes: estimate.peakBytes,
  estimateToPeak: round(estimate.peakBytes / peakActivationBytes, 3),
  weightsBytes: baseline,
  maxRssBytes: process.resourceUsage().maxRSS * 1024,
});
report({
  benchmark: 'pipeline event loop',
  ...env,
  device: device.name,
  video: `${request.frames}x${request.height}x${request.width}`,
  maxMs: round(histogram.max / 1e6),
  p99Ms: round(histogram.percentile(99) / 1e6),
  meanMs: round(histogram.mean / 1e6),
  goalMaxMs: 50,
  meetsGoal: histogram.max / 1e6 < 50,
});
pipeline.dispose();

// ---- the CLI as a user runs it ----
if (flags.cli) {
  const out = path.join(work, `cli.${format === 'mp4' ? 'mp4' : 'y4m'}`);
  loadStarted = performance.now();
  const args = [path.join(root, 'dist', 'cli', 'main.js'), 'generate', request.prompt, '--out', out, '--frames', String(request.frames), '--height', String(request.height), '--width', String(request.width), '--steps', String(request.steps), '--seed', '42', '--device', device.kind];
  if (flags.model) args.push('--model', flags.model);
  const time = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, ...args], { encoding: 'utf8' });
  const usable = !time.error;
  const result = usable ? time : spawnSync(process.execPath, args, { encoding: 'utf8' });
  const wallMs = performance.now() - loadStarted;
  const rssKb = usable ? Number(result.stderr.trim().split('\n').pop()) : Number.NaN;
  report({
    benchmark: 'stepvideo generate (CLI, fresh process)',
    ...env,
    device: device.name,
    video: `${request.frames}x${request.height}x${request.width}`,
    steps: request.steps,
    exitCode: result.status,
    wallMs: round(wallMs),
    maxRssBytes: Number.isFinite(rssKb) ? rssKb * 1024 : null,
    goalMs: pipeline.builtin ? 60_000 : null,
  });
}
rmSync(work, { recursive: true, force: true });
