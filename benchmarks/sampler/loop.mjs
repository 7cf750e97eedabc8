// The sampler's own cost per step at 544x992x204 (latents [1, 36, 64, 34, 62], CFG batch 2, bf16
// model): everything but the DiT, measured with a stand-in DiT that does no work (its forward
// returns a view of one preallocated bf16 velocity). The goal is < 1% of a real step.
//   node benchmarks/sampler/loop.mjs [--steps=50] [--iterations=5] [--step-ms=40000] [--torch=FILE] [--device=cuda]
// --torch names the JSON written by loop_torch.py in the same run (the PyTorch baseline).
// --step-ms is the real DiT step time the overhead is compared with (default 40 s, the official
// single-GPU figure; pass the measured one when there is). --device=cpu is a smoke test of the
// script (f32 model) where there is no GPU; its figures mean nothing for the goal.
// One JSON line per measurement: the loop per step (fused guidance + Euler + next input,
// allocation, the per-step device sync and the JS around it), the fused kernel alone and the noise
// generator, each with achieved GB/s, the floor (bytes over the 4.0 TB/s copy ceiling) and the
// ratio to the torch baseline.
import { existsSync, readFileSync } from 'node:fs';

import { H200, environment, library, parseFlags, report, time } from '../lib/harness.mjs';

const flags = parseFlags();
const steps = Number(flags.steps ?? 50);
const iterations = Number(flags.iterations ?? 5);
const stepMs = Number(flags['step-ms'] ?? 40_000);
const torch = flags.torch && existsSync(flags.torch) ? JSON.parse(readFileSync(flags.torch, 'utf8')) : undefined;

const sv = await library();
const device = sv.getDevice(flags.device ?? 'cuda');
const modelDType = device.isCuda ? 'bf16' : 'f32';
const shape = sv.latentShape({ frames: 204, height: 544, width: 992 });
const n = shape.reduce((a, b) => a * b, 1);
const env = environment(device);

// The stand-in DiT: no work, just a velocity of the right shape and dtype (a fresh view each call,
// which the sampler disposes; the storage stays with `velocity`).
const velocity = sv.kernels.randomNormal([2, ...shape.slice(1)], { seed: 2, dtype: modelDType, device });
const idleDiT = {
  device,
  dtype: modelDType,
  prepareContext: () => ({ [Symbol.dispose]() {} }),
  forward: async (latents) => velocity.reshape(latents.shape),
};
// Text at the released sizes: [2, 320, 6144] and [2, 77, 1024] bf16, 77 + 320 and 77 + 120 valid keys.
const y = sv.Tensor.zeros([2, 320, 6144], modelDType, device);
const clip = sv.Tensor.zeros([2, 77, 1024], modelDType, device);
const yMask = [0, 1].flatMap((row) => Array.from({ length: 397 }, (_, j) => (j < 77 + (row === 0 ? 320 : 120) ? 1 : 0)));
const latents = sv.generateNoise(shape, 42, device);

async function loop(count) {
  const out = await sv.sample(idleDiT, { latents, text: { y, yMask, clip }, steps: count, cfgScale: 9, timeShift: 13 });
  out.dispose();
}

// Per step: the difference between a (steps + 1)-step and a 1-step run, so the one-time setup
// (latents copy, first cast and concat) is reported apart.
const one = await time(device, () => loop(1), { warmup: 1, iterations });
const many = await time(device, () => loop(steps + 1), { warmup: 1, iterations });
const perStepMs = (many.medianMs - one.medianMs) / steps;
const setupMs = one.medianMs - perStepMs;

// The fused kernel alone: reads v (2N bf16) and x (N f32), writes x (N f32) and the next input (2N bf16).
// (On the CPU smoke test v and the input are f32, so the byte count is a lower bound there.)
const x = latents.clone();
const next = sv.Tensor.empty([2, ...shape.slice(1)], modelDType, device);
const kernelRuns = 20;
const kernel = await time(device, () => {
  for (let i = 0; i < kernelRuns; i++) sv.kernels.cfgEulerStep(x, velocity, { guidanceScale: 9, dt: 0.0015674, nextInput: next });
}, { warmup: 1, iterations });
const kernelMs = kernel.medianMs / kernelRuns;
const kernelBytes = 16 * n;

// Noise: N f32 values written (once per video).
const noise = await time(device, () => sv.generateNoise(shape, 7, device).dispose(), { warmup: 2, iterations });
const noiseBytes = 4 * n;

const floorMs = (bytes) => (bytes / H200.copyBytesPerSecond) * 1e3;
const round = (v, digits = 4) => Number(v.toPrecision(digits));
report({
  benchmark: 'sampler loop overhead per step (everything but the DiT)',
  shape, cfgScale: 9, steps, ...env,
  perStepMs: round(perStepMs), setupMs: round(setupMs),
  floorMs: round(floorMs(kernelBytes)),
  realStepMs: stepMs, fractionOfStep: round(perStepMs / stepMs, 3), meetsGoal: perStepMs < 0.01 * stepMs,
  torchStepMs: torch?.stepMs ?? null, ratioToTorch: torch ? round(perStepMs / torch.stepMs, 3) : null,
});
report({
  benchmark: 'cfgEulerStep kernel (guidance in bf16 + f32 Euler + next input)',
  shape, ...env,
  ms: round(kernelMs), gbPerSecond: round(kernelBytes / kernelMs / 1e6), floorMs: round(floorMs(kernelBytes)),
  ratioToFloor: round(kernelMs / floorMs(kernelBytes), 3),
  torchStepMs: torch?.stepMs ?? null, ratioToTorch: torch ? round(kernelMs / torch.stepMs, 3) : null,
});
report({
  benchmark: 'generateNoise (Philox4x32-10 + Box-Muller, f32)',
  shape, ...env,
  ms: round(noise.medianMs), gbPerSecond: round(noiseBytes / noise.medianMs / 1e6), floorMs: round(floorMs(noiseBytes)),
  ratioToFloor: round(noise.medianMs / floorMs(noiseBytes), 3),
  torchNoiseMs: torch?.noiseMs ?? null, ratioToTorch: torch ? round(noise.medianMs / torch.noiseMs, 3) : null,
});
for (const t of [velocity, y, clip, latents, x, next]) t.dispose();
