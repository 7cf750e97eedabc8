// Time of one Video-DPO training step (lib/training/dpo-step.ts: 2 reference + 2 trained forwards
// for the loss, then per video a checkpointed forward and the backward that recomputes each block)
// against the model's own forward on the same machine in the same run: the baseline, as no other
// engine trains Step-Video. The step's floor, counted in forwards: 3 forwards per video plus the
// backward (one recomputed forward and about twice a forward's GEMM and attention work for the
// input gradients): about 12 forward-equivalents for the pair. The ratio printed is step / forward.
//   node benchmarks/training/dpo-step.mjs [--device=cpu|cuda] [--model=DIR]
//        [--layers=2 --frames=6 --height=34 --width=62]   (released widths, random weights)
//        [--rank=64] [--steps=2]
// Without --model on CUDA, the DiT has the released widths and --layers random blocks; on the CPU
// without --model, the built-in model at 2x8x8 latents.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { releasedConfig, writeRandomTransformer } from '../dit/random-transformer.mjs';
import { environment, library, parseFlags, report, root } from '../lib/harness.mjs';

const flags = parseFlags();
const sv = await library();
const dit = await import(path.join(root, 'dist', 'models', 'dit', 'index.js'));
const io = await import(path.join(root, 'dist', 'io', 'index.js'));
const training = sv.training;
const device = sv.getDevice(flags.device ?? (sv.cudaAvailable() ? 'cuda' : 'cpu'));
const env = environment(device);
const dtype = device.isCuda ? 'bf16' : 'f32';
const rank = Number(flags.rank ?? 64);
const steps = Number(flags.steps ?? 2);

const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-dpo-bench-'));
let model;
let what;
try {
  if (flags.model) {
    model = await sv.StepVideoDiT.load(path.join(flags.model, 'transformer'), { device, dtype });
    what = flags.model;
  } else if (device.isCuda) {
    const layers = Number(flags.layers ?? 2);
    const { dir } = await writeRandomTransformer(path.join(work, 'transformer'), layers, { ...dit, writeSafetensors: sv.writeSafetensors });
    model = await dit.StepVideoDiT.fromIndex(dit.parseDiTConfig(releasedConfig(layers)), await io.openWeights(dir, { basename: 'diffusion_pytorch_model' }), { device, dtype });
    what = `released widths, ${layers} random blocks`;
  } else {
    const pipeline = await sv.StepVideo.load({ device });
    model = await sv.StepVideoDiT.load(path.join(pipeline.modelDir, 'transformer'), { device, dtype });
    pipeline.dispose();
    what = 'built-in model';
  }
  const cfg = model.config;
  const [F, H, W] = flags.model || device.isCuda ? [Number(flags.frames ?? 6), Number(flags.height ?? 34), Number(flags.width ?? 62)] : [2, 8, 8];
  const shape = [1, F, cfg.inChannels, H, W];
    const held = [];
  const randn = (seed, s) => {
    const raw = sv.kernels.randomNormal(s, { seed, device });
    const t = sv.ops.cast(raw, dtype);
    raw.dispose();
    held.push(t);
    return t;
  };
  const [chosen, rejected, noise] = [1, 2, 3].map((seed) => randn(seed, shape));
  const y = randn(4, [1, 320, cfg.captionChannels[0]]);
  const clip = randn(5, [1, 77, cfg.captionChannels[1]]);
  const mask = new Array(397).fill(1);
  const lora = training.TrainableLora.init(cfg, { rank, seed: 1, device });
  const adapter = lora.adapter(dtype);
  lora.dispose();
  const text = { y, clip, mask };

  // The baseline: the trained model's forward on one video.
  const context = model.prepareContext({ ...text, lora: adapter });
  const forwardMs = [];
  for (let i = 0; i < steps + 1; i++) {
    await device.synchronize();
    const t0 = performance.now();
    const v = await model.forward(chosen, [0.5], context);
    await device.synchronize();
    v.dispose();
    if (i > 0) forwardMs.push(performance.now() - t0);
  }
  const stepMs = [];
  const phases = {};
  for (let i = 0; i < steps + 1; i++) {
    await device.synchronize();
    const t0 = performance.now();
    let mark = t0;
    let phase;
    const result = await training.dpoStep(model, adapter, { chosen, rejected, noise, sigma: [0.7], text }, {
      beta: 500,
      onPhase: (next) => {
        const now = performance.now();
        if (phase && i > 0) phases[phase] = (phases[phase] ?? 0) + (now - mark) / steps;
        [phase, mark] = [next, now];
      },
    });
    await device.synchronize();
    const end = performance.now();
    if (phase && i > 0) phases[phase] = (phases[phase] ?? 0) + (end - mark) / steps;
    training.disposeGradients(result.grads);
    if (i > 0) stepMs.push(end - t0);
  }
  context.dispose();
  adapter.dispose();
  for (const t of held) t.dispose();
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const [step, forward] = [median(stepMs), median(forwardMs)];
  const tokens = F * (H / cfg.patchSize) * (W / cfg.patchSize);
  report({
    benchmark: 'dpo-step',
    ...env,
    model: what,
    dtype,
    rank,
    latent: shape,
    tokens,
    forwardMs: Number(forward.toFixed(1)),
    stepMs: Number(step.toFixed(1)),
    stepOverForward: Number((step / forward).toFixed(2)),
    floorForwards: 12,
    phasesMs: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, Number(v.toFixed(1))])),
  });
  console.log(`dpo step: ${step.toFixed(1)} ms = ${(step / forward).toFixed(2)} forwards of ${forward.toFixed(1)} ms (floor about 12) — ${what}, ${tokens} tokens, ${dtype}, rank ${rank}, ${env.gpu === 'none' ? env.cpu : env.gpu}`);
} finally {
  model?.dispose();
  rmSync(work, { recursive: true, force: true });
}
