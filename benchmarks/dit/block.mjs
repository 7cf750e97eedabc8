// One DiT block at 544x992x204 with CFG (batch 2, N = 75,888 tokens, D = 6144, 48 heads, text
// length 397), through the library's own model code: a transformer/ folder with the released
// widths, `--layers` blocks and random bf16 weights is written, loaded with StepVideoDiT.load,
// and run forward; a block's time is the spacing of consecutive onBlock events (the forward keeps
// the next block queued, so the GPU never waits for JavaScript). Also reports the activation
// peak of the forward and the extrapolated peak of the released 48-block model in bf16.
//   node benchmarks/dit/block.mjs [--layers=3] [--runs=2] [--torch=FILE] [--dir=/tmp]
// (--device=cpu --frames=1 --height=2 --width=3 is a quick check of the script itself, in f32.)
// --torch names the JSON written by block_torch.py in the same run (the PyTorch baseline).
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { H200, environment, library, parseFlags, report, root } from '../lib/harness.mjs';
import { officialRunShapes, randomTensor, writeRandomTransformer } from './random-transformer.mjs';

const flags = parseFlags();
const layers = Number(flags.layers ?? 3);
const runs = Number(flags.runs ?? 2);
const sv = await library();
const dit = await import(path.join(root, 'dist', 'models', 'dit', 'index.js'));
const device = sv.getDevice(flags.device ?? 'cuda');

const { B, F, C, H, W, N, D, heads, headDim, llmTokens, clipTokens } = officialRunShapes(flags);
const validLlm = [320, 120]; // prompt fills the context; the negative prompt is shorter

// FLOPs of one block (multiply-add = 2): the six projections and the FFN per token, the
// self-attention (QK^T and PV over all N keys) and the cross-attention over the kept keys.
const linearFlops = 2 * B * N * D * (3 * D + D + D + D + 2 * 4 * D);
const selfAttentionFlops = 4 * B * N * N * D;
const keys = clipTokens + llmTokens; // the longest item keeps every key (bf16 rounding: 396)
const crossAttentionFlops = 4 * B * N * keys * D;
const blockFlops = linearFlops + selfAttentionFlops + crossAttentionFlops;
const floorMs = (linearFlops / H200.bf16GemmFlops + (selfAttentionFlops + crossAttentionFlops) / H200.sdpaCudnnFlops) * 1e3;

const work = mkdtempSync(path.join(flags.dir ?? os.tmpdir(), 'stepvideo-dit-bench-'));
try {
  const started = performance.now();
  const { dir } = await writeRandomTransformer(path.join(work, 'transformer'), layers, { ...dit, writeSafetensors: sv.writeSafetensors });
  console.error(`dit block: wrote ${layers}-block random transformer in ${((performance.now() - started) / 1000).toFixed(1)} s`);

  const model = await dit.StepVideoDiT.load(dir, { device, dtype: device.isCuda ? 'bf16' : 'f32' });
  const latents = randomTensor(sv.Tensor, [B, F, C, H, W], 1, model.dtype, device);
  const y = randomTensor(sv.Tensor, [B, llmTokens, D], 2, model.dtype, device);
  const clip = randomTensor(sv.Tensor, [B, clipTokens, 1024], 3, model.dtype, device);
  const mask = new Float32Array(B * (clipTokens + llmTokens));
  for (let b = 0; b < B; b++) for (let j = 0; j < clipTokens + validLlm[b]; j++) mask[b * (clipTokens + llmTokens) + j] = 1;
  const context = model.prepareContext({ y, clip, mask });
  await device.synchronize();
  const baseline = device.memory().bytesInUse;
  const contextBytes = [context.kvLen, context.captionProjection, context.clipProjection].reduce((n, t) => n + t.byteLength, 0);
  const crossKvBytesPerBlock = context.crossKeys[0].byteLength + context.crossValues[0].byteLength;

  const timestep = [0.5, 0.5];
  const blockMs = [];
  const forwardMs = [];
  device.resetPeakMemory();
  for (let run = 0; run <= runs; run++) {
    const stamps = [];
    const start = performance.now();
    const out = await model.forward(latents, timestep, context, { onBlock: () => stamps.push(performance.now()) });
    forwardMs.push(performance.now() - start);
    out.dispose();
    // Run 0 is the warm-up (cuBLASLt plans, allocator pool); block 0 includes the embeddings.
    if (run > 0) for (let i = 1; i < stamps.length; i++) blockMs.push(stamps[i] - stamps[i - 1]);
  }
  const peak = device.memory().peakBytes;
  const transient = peak - baseline;
  const sorted = [...blockMs].sort((a, b) => a - b);
  const medianMs = sorted[Math.floor(sorted.length / 2)];

  // The released model: 48 blocks of bf16 weights, 48 blocks of cross-attention K/V in the context.
  const released = dit.parseDiTConfig({ ...JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')), num_layers: 48 });
  let releasedWeightBytes = 0;
  for (const shape of dit.ditWeightSpec(released).values()) releasedWeightBytes += shape.reduce((a, b) => a * b, 1) * 2;
  const peak48 = releasedWeightBytes + contextBytes + 48 * crossKvBytesPerBlock + latents.byteLength + transient;

  let torch;
  if (flags.torch && existsSync(flags.torch)) torch = JSON.parse(readFileSync(flags.torch, 'utf8'));
  const env = environment(device);
  report({
    benchmark: 'dit-block',
    ...env,
    shape: { batch: B, tokens: N, dim: D, heads, headDim, textTokens: keys, latent: [B, F, C, H, W] },
    layersMeasured: layers,
    blockMs: Number(medianMs.toFixed(2)),
    blockMsSamples: blockMs.map((v) => Number(v.toFixed(2))),
    forwardMs: forwardMs.map((v) => Number(v.toFixed(1))),
    tflops: Number((blockFlops / (medianMs / 1e3) / 1e12).toFixed(1)),
    floorMs: Number(floorMs.toFixed(1)),
    ratioToFloor: Number((medianMs / floorMs).toFixed(3)),
    officialMeasuredMs: 836,
    torchBlockMs: torch?.blockMs ?? null,
    ratioToTorch: torch ? Number((medianMs / torch.blockMs).toFixed(3)) : null,
    goalRatioToTorch: 0.8,
    meetsGoal: torch ? medianMs <= 0.8 * torch.blockMs : null,
  });
  report({
    benchmark: 'dit-memory',
    ...env,
    forwardPeakAboveWeightsGB: Number((transient / 1e9).toFixed(3)),
    weightsMeasuredGB: Number((model.weightBytes / 1e9).toFixed(3)),
    layersMeasured: layers,
    crossKvPerBlockGB: Number((crossKvBytesPerBlock / 1e9).toFixed(4)),
    releasedWeightsGB: Number((releasedWeightBytes / 1e9).toFixed(3)),
    extrapolated48BlockPeakGB: Number((peak48 / 1e9).toFixed(3)),
    goalGB: 80,
    meetsGoal: peak48 <= 80e9,
    torchBlockPeakGB: torch?.peakGB ?? null,
  });
  for (const t of [latents, y, clip]) t.dispose();
  context.dispose();
  model.dispose();
} finally {
  rmSync(work, { recursive: true, force: true });
}
