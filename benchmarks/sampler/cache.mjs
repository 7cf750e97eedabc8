// Step caching: what it saves and what it costs in quality. The same seeds are sampled without a
// cache and with each method; each line gives the speed-up (model evaluations and wall time of the
// denoising), the final latents' relative L2 error, and PSNR/SSIM of the decoded frames, all
// against the uncached video of the same seed, averaged over the seeds.
//   node benchmarks/sampler/cache.mjs [--model=DIR] [--device=cpu|cuda] [--frames=17] [--height=64]
//        [--width=64] [--steps=50] [--seeds=3] [--methods=auto:0.05,auto:0.2,...]
// 'teacache' is calibrated first on this model (the calibration's own prompts and seeds 0..3, not
// the measured ones) unless the model folder holds a calibration. The published anchors (other
// models, other machines) are in benchmarks/RESULTS.md beside the table; none is Step-Video's.
import { environment, library, parseFlags, report } from '../lib/harness.mjs';
import { psnr, ssim } from '../lib/quality.mjs';

const flags = parseFlags();
const sv = await library();
const device = sv.getDevice(flags.device ?? (sv.cudaAvailable() ? 'cuda' : 'cpu'));
const env = environment(device);
const pipeline = await sv.StepVideo.load({ device, ...(flags.model ? { modelDir: flags.model } : {}) });
const size = {
  frames: Number(flags.frames ?? 17),
  height: Number(flags.height ?? 64),
  width: Number(flags.width ?? 64),
  steps: Number(flags.steps ?? 50),
};
const seeds = Array.from({ length: Number(flags.seeds ?? 3) }, (_, i) => 1000 + i);
const methods = (flags.methods ?? 'auto:0.05,auto:0.1,auto:0.2,auto:0.5,auto:1,teacache:0.1,teacache:0.3,teacache:1').split(',');
const prompts = ['A red fox runs through fresh snow in a pine forest at dawn', 'Waves crash on black rocks in slow motion', 'A city street at night in the rain'];

let coefficients;
if (methods.some((m) => m.startsWith('teacache'))) {
  try {
    await pipeline.generate({ prompt: 'probe', ...size, steps: 2, cache: 'teacache' }).then((v) => v.dispose());
  } catch {
    const calibration = await pipeline.calibrateCache({ prompts: ['A dog catches a frisbee', 'Clouds roll over peaks', 'A chef slices vegetables', 'Two dancers spin'], ...size });
    coefficients = calibration.coefficients;
    console.error(`teacache calibrated here on ${calibration.fit.cond.samples} step pairs (rms residual ${calibration.fit.cond.rmse.toPrecision(3)})`);
  }
}

/** One video: denoising time, evaluations, final latents, decoded RGB frames. */
async function run(seed, prompt, cache) {
  let denoiseMs = 0;
  let started;
  const video = await pipeline.generate({
    prompt,
    ...size,
    seed,
    ...(cache ? { cache, ...(coefficients && cache.startsWith('teacache') ? { cacheCoefficients: coefficients } : {}) } : {}),
    onProgress: (p) => {
      if (p.stage === 'text' && p.done) started = performance.now();
      if (p.stage === 'denoise' && p.block === undefined && p.step === p.total) denoiseMs = performance.now() - started;
    },
  });
  const latents = await video.latents.toFloat32();
  const chunks = [];
  let shape;
  for await (const chunk of video) {
    chunks.push(chunk.frames.data);
    shape = { width: chunk.frames.width, height: chunk.frames.height };
  }
  const rgb = Buffer.concat(chunks.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength)));
  return { denoiseMs, evaluations: video.info.evaluations, maxEvaluations: video.info.maxEvaluations, latents, rgb, frames: { ...shape, count: rgb.length / (shape.width * shape.height * 3) } };
}

const relativeL2 = (a, b) => {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
};

// Warm-up (first-call costs out of the timings), then the uncached reference of each seed.
await run(1, 'warm-up');
const baselines = [];
for (const [i, seed] of seeds.entries()) baselines.push(await run(seed, prompts[i % prompts.length]));
const mean = (values) => values.reduce((a, b) => a + b, 0) / values.length;
for (const method of methods) {
  const rows = [];
  for (const [i, seed] of seeds.entries()) {
    const base = baselines[i];
    // Wall times paired: the uncached run again right before the cached one, so a busy machine slows both.
    const again = await run(seed, prompts[i % prompts.length]);
    const cached = await run(seed, prompts[i % prompts.length], method);
    rows.push({
      evaluationSpeedup: base.evaluations / cached.evaluations,
      wallSpeedup: again.denoiseMs / cached.denoiseMs,
      evaluations: cached.evaluations,
      latentError: relativeL2(cached.latents, base.latents),
      psnr: psnr(cached.rgb, base.rgb),
      ssim: ssim(cached.rgb, base.rgb, base.frames),
    });
  }
  const round = (v, d = 4) => (Number.isFinite(v) ? Number(v.toPrecision(d)) : v === Infinity ? 'inf' : null);
  report({
    benchmark: 'step cache quality',
    method,
    model: pipeline.builtin ? 'built-in (random weights)' : flags.model,
    ...size,
    seeds: seeds.length,
    evaluations: `${round(mean(rows.map((r) => r.evaluations)), 3)} of ${baselines[0].maxEvaluations}`,
    speedupEvaluations: round(mean(rows.map((r) => r.evaluationSpeedup)), 3),
    speedupWall: round(mean(rows.map((r) => r.wallSpeedup)), 3),
    latentRelError: round(mean(rows.map((r) => r.latentError)), 3),
    psnrDb: round(mean(rows.map((r) => r.psnr)), 3),
    ssim: round(mean(rows.map((r) => r.ssim)), 4),
    ...env,
  });
}
pipeline.dispose();
