// Latent preview cost (lib/pipeline/preview.ts): LatentPreviewer.render() against one denoising
// step of the same pipeline, and the fit's one-off cost at load.
//   node benchmarks/pipeline/preview.mjs [--device=cpu|cuda] [--model=DIR] [--frames=34]
//        [--height=128] [--width=128] [--steps=6] [--iterations=30]
// Lines (JSON): `preview fit` (LatentPreviewer.fit on the pipeline's VAE, first and second run),
// `preview render vs step` (render of the sampled latents, median over iterations, against the
// median denoising step of a generate() at the same size: the steps' ends are the pipeline's
// progress events, as e2e.mjs times them, the first step left out as it carries the sampler's
// setup; goal ratio < 0.01), `preview render, released latent size` (render of [1, 36, 64, 34, 62]
// latents with a z = 64 map: the host work a released-size preview costs, to set against a released
// DiT step). No baseline exists: ratioToBaseline is null.
import path from 'node:path';

import { environment, library, parseFlags, report, root } from '../lib/harness.mjs';

const flags = parseFlags();
const sv = await library();
const { LatentPreviewer } = await import(path.join(root, 'dist', 'pipeline', 'preview.js'));
const device = sv.getDevice(flags.device ?? (sv.cudaAvailable() ? 'cuda' : 'cpu'));
const env = environment(device);
const round = (v, digits = 4) => (Number.isFinite(v) ? Number(v.toPrecision(digits)) : null);
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
/**
 * Median and min ms of `run` after warm-up. No device synchronisation around it (unlike the harness's
 * time()): render() is done when its promise resolves (its read-back waits for the queue), and a
 * synchronise would add its own round trip to a sub-millisecond figure.
 */
async function timeRender(run, iterations) {
  for (let i = 0; i < 5; i++) await run();
  const samples = [];
  for (let i = 0; i < iterations; i++) {
    const started = performance.now();
    await run();
    samples.push(performance.now() - started);
  }
  return { medianMs: median(samples), minMs: Math.min(...samples) };
}

const pipeline = await sv.StepVideo.load({ device, ...(flags.model ? { modelDir: flags.model } : {}) });
const model = pipeline.builtin ? 'built-in' : pipeline.modelDir;

// ---- the fit (a decode of small seeded latents), twice: the first also warms the kernels ----
const fitMs = [];
let previewer;
for (let run = 0; run < 2; run++) {
  await device.synchronize();
  const started = performance.now();
  previewer = await LatentPreviewer.fit(pipeline.vae);
  fitMs.push(performance.now() - started);
}
report({ benchmark: 'preview fit', ...env, device: device.name, model, zChannels: previewer.zChannels, samples: previewer.fitQuality.samples, fitR2: previewer.fitQuality.r2.map((v) => round(v, 3)), firstMs: round(fitMs[0]), secondMs: round(fitMs[1]), ratioToBaseline: null });

// ---- one denoising step, and render() of the latents it samples ----
const request = {
  prompt: 'A red fox runs through fresh snow in a pine forest at dawn.',
  frames: Number(flags.frames ?? pipeline.defaultSize.frames),
  height: Number(flags.height ?? pipeline.defaultSize.height),
  width: Number(flags.width ?? pipeline.defaultSize.width),
  steps: Number(flags.steps ?? 6),
  seed: 42,
};
let textDoneAt = Number.NaN;
const stepEnds = [];
const video = await pipeline.generate({
  ...request,
  onProgress: (p) => {
    if (p.stage === 'text' && p.done) textDoneAt = performance.now();
    if (p.stage === 'denoise' && p.block === undefined) stepEnds.push(performance.now());
  },
});
const stepMs = stepEnds.map((t, i) => t - (i === 0 ? textDoneAt : stepEnds[i - 1]));
const stepMedian = median(stepMs.length > 1 ? stepMs.slice(1) : stepMs);
const iterations = Number(flags.iterations ?? 50);
await device.synchronize();
const render = await timeRender(() => previewer.render(video.latents), iterations);
const mapOnly = await timeRender(() => previewer.renderFloat(video.latents), iterations);
const image = await previewer.render(video.latents);
report({
  benchmark: 'preview render vs step',
  ...env,
  device: device.name,
  model,
  video: `${request.frames}x${request.height}x${request.width}`,
  latents: `[${video.latents.shape.join(', ')}]`,
  preview: `${image.width}x${image.height}, ${image.png.length} B PNG`,
  renderMsMedian: round(render.medianMs),
  renderMsMin: round(render.minMs),
  readAndMapMsMedian: round(mapOnly.medianMs),
  stepMsMedian: round(stepMedian),
  stepMs: stepMs.map((v) => round(v, 3)),
  renderToStep: round(render.medianMs / stepMedian, 3),
  goalRenderToStep: 0.01,
  meetsGoal: render.medianMs / stepMedian < 0.01,
  ratioToBaseline: null,
});
video.dispose();
pipeline.dispose();

// ---- render at the released latent size (544x992, 204 frames; z = 64): host work only ----
const z = 64;
const shape = [1, 36, z, 34, 62];
let state = 1;
const weight = Array.from({ length: 3 }, () => Array.from({ length: z }, () => ((state = (state * 48271) % 2147483647) / 2147483647 - 0.5) * 0.1));
const released = LatentPreviewer.fromJSON({ format: 'stepvideo-latent-preview', version: 1, zChannels: z, weight, bias: [0, 0, 0], fit: { samples: 0, r2: [] } });
const values = new Float32Array(shape.reduce((a, b) => a * b, 1)).map((_, i) => Math.sin(i * 0.37));
const latents = sv.Tensor.from(values, shape, { device });
await device.synchronize();
const big = await timeRender(() => released.render(latents), iterations);
const bigImage = await released.render(latents);
latents.dispose();
report({
  benchmark: 'preview render, released latent size',
  ...env,
  device: device.name,
  latents: `[${shape.join(', ')}]`,
  preview: `${bigImage.width}x${bigImage.height}`,
  renderMsMedian: round(big.medianMs),
  renderMsMin: round(big.minMs),
  ratioToBaseline: null,
});
