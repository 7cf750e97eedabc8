// One denoising step of the released 30B DiT at 544x992x204 with CFG (48 blocks, batch 2, 75,888
// tokens per item) on one GPU, with real-size random weights: bf16 resident, FP8 resident, or
// streamed from pinned host memory (optionally under a device-memory budget). Reports the step
// time and its 50-step and Turbo 15-step extrapolations, per-block times, ops per block and the
// measured cost of one op (the launch-overhead argument), peak memory (the library's count, the
// pool's reserved high-water mark, the driver's view) against the memory model, and the event-loop
// delay during the step.
//   node benchmarks/step/step.mjs [--weights=model|fp8] [--stream] [--fused] [--budget-gb=24]
//                                 [--layers=48] [--runs=1] [--dir=/tmp]
//                                 [--frames=36|fit] latent frames (36 = 204 video frames); fit: the
//                                     most (a multiple of 3) whose memory-model estimate fits the device
//                                 [--warmup=1] warm-up steps before the timed ones (0: the timed step
//                                     includes the one-off setup; the block times after block 0 do not)
//                                 [--torch-block=FILE] block_torch.py's result: the same-run baseline
//                                     (layers x its block time) when it measured the same tokens
//                                 [--block-report-after=K] also print the median of the first K block
//                                     times as soon as they exist (a figure even if the step is cut short)
// Weights: one block of random bf16 weights is written once, and the checkpoint index names that
// block's bytes for every one of the 48 blocks (identical blocks cost exactly what distinct ones
// do); the global tensors are random too. Nothing is downloaded.
// (--device=cpu --frames=1 --height=2 --width=3 --layers=2 is a quick check of the script, in f32.)
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';

import { releasedConfig, writeRandomTransformer } from '../dit/random-transformer.mjs';
import { H200, environment, library, parseFlags, report, root } from '../lib/harness.mjs';

const flags = parseFlags();
const layers = Number(flags.layers ?? 48);
const runs = Number(flags.runs ?? 1);
const warmupSteps = Number(flags.warmup ?? 1);
const weights = flags.weights ?? 'model';
const streaming = Boolean(flags.stream);
const fusedResidual = Boolean(flags.fused);
const sv = await library();
const dit = await import(path.join(root, 'dist', 'models', 'dit', 'index.js'));
const io = await import(path.join(root, 'dist', 'io', 'index.js'));
const random = await import(path.join(root, 'dist', 'kernels', 'random.js'));
const sampler = await import(path.join(root, 'dist', 'kernels', 'sampler.js'));
const device = sv.getDevice(flags.device ?? 'cuda');
const dtype = device.isCuda ? 'bf16' : 'f32';
const env = environment(device);
const GB = 1e9;

const [B, C, H, W] = [2, 64, Number(flags.height ?? 34), Number(flags.width ?? 62)];
const [llmTokens, clipTokens] = [320, 77];
const validLlm = [320, 120];
const freeAtStart = device.isCuda ? device.info().freeBytes : os.freemem();

/** --frames=fit: the most latent frames whose memory-model estimate fits the free memory. */
function largestFittingFrames() {
  const config = dit.parseDiTConfig(releasedConfig(layers));
  const available = flags['budget-gb'] ? Math.min(freeAtStart, Number(flags['budget-gb']) * GB) : freeAtStart;
  for (let frames = 36; frames >= 3; frames -= 3) {
    const estimate = dit.estimateDiTMemory({
      config, batch: B, latent: [frames, H, W], text: { llm: llmTokens, clip: clipTokens }, dtype,
      backend: device.isCuda ? 'cuda' : 'cpu', execution: { weights, streaming, fusedResidual },
    });
    // 5 % + 1 GB beyond the model's count: cuBLASLt workspace, the pool's rounding, fragmentation.
    if (estimate.totalBytes * 1.05 + GB <= available) return frames;
  }
  throw new Error(`step: not even 3 latent frames fit in ${(available / GB).toFixed(1)} GB`);
}
const F = flags.frames === 'fit' ? largestFittingFrames() : Number(flags.frames ?? 36);
const N = F * H * W;
const D = 6144;

// FLOPs of one block (multiply-add = 2) and the step's floor over the measured H200 ceilings.
const keys = clipTokens + llmTokens;
const linearFlops = 2 * B * N * D * (3 * D + D + D + D + 2 * 4 * D);
const attentionFlops = 4 * B * N * N * D + 4 * B * N * keys * D;
const blockFloorMs = (linearFlops / H200.bf16GemmFlops + attentionFlops / H200.sdpaCudnnFlops) * 1e3;
const OFFICIAL_STEP_S = 40.1; // the official code (cuDNN attention) on this GPU
// The PyTorch block measured in the same run (block_torch.py), when it ran these tokens.
const torchBlock = flags['torch-block'] && existsSync(flags['torch-block']) ? JSON.parse(readFileSync(flags['torch-block'], 'utf8')) : undefined;
const torchBlockMs = torchBlock && torchBlock.tokens === N ? torchBlock.blockMs : null;
const GOAL_STEP_S = 32;

/** Host and device cost of one op: many tiny adds enqueued back to back. */
async function opCost() {
  const a = sv.Tensor.zeros([1024], dtype, device);
  const b = sv.Tensor.zeros([1024], dtype, device);
  const count = 20000;
  for (let i = 0; i < 200; i++) sv.ops.add(a, b).dispose();
  await device.synchronize();
  const start = performance.now();
  for (let i = 0; i < count; i++) sv.ops.add(a, b).dispose();
  const enqueued = performance.now();
  await device.synchronize();
  const drained = performance.now();
  a.dispose();
  b.dispose();
  // The device is busy for at most the whole span; the host's share is the enqueue loop.
  return { hostUsPerOp: ((enqueued - start) * 1e3) / count, deviceUsPerOp: ((drained - start) * 1e3) / count };
}

/** A 48-block index over a checkpoint with one block: every block's names point at block 0's bytes. */
function aliasedIndex(index, blocks) {
  const records = [];
  for (const record of index) {
    const match = /^transformer_blocks\.0\.(.*)$/.exec(record.name);
    if (!match) {
      records.push(record);
      continue;
    }
    for (let i = 0; i < blocks; i++) records.push({ ...record, name: `transformer_blocks.${i}.${match[1]}` });
  }
  return new io.TensorIndex({ format: 'safetensors', source: `${index.source} (block 0 for all ${blocks})`, records });
}

const launchCost = await opCost();
const work = mkdtempSync(path.join(flags.dir ?? os.tmpdir(), 'stepvideo-step-bench-'));
let ballast;
try {
  const written = performance.now();
  const { dir } = await writeRandomTransformer(path.join(work, 'transformer'), 1, { ...dit, writeSafetensors: sv.writeSafetensors });
  console.error(`step: wrote a 1-block random checkpoint in ${((performance.now() - written) / 1000).toFixed(1)} s`);
  const config = dit.parseDiTConfig(releasedConfig(layers));
  const index = aliasedIndex(await io.openWeights(dir, { basename: 'diffusion_pytorch_model' }), layers);

  // A budget: leave only that much device memory free (a ballast takes the rest).
  if (flags['budget-gb'] && device.isCuda) {
    const free = device.info().freeBytes;
    const bytes = Math.max(0, free - Number(flags['budget-gb']) * GB);
    if (bytes > 0) ballast = sv.Tensor.empty([bytes], 'u8', device);
    console.error(`step: ${(bytes / GB).toFixed(1)} GB ballast, ${((free - bytes) / GB).toFixed(1)} GB left to the model`);
  }
  const ballastBytes = ballast?.byteLength ?? 0;

  const loading = performance.now();
  const model = await dit.StepVideoDiT.fromIndex(config, index, { device, dtype, weights, streaming, fusedResidual });
  const loadSeconds = (performance.now() - loading) / 1000;
  console.error(`step: loaded (${weights}${streaming ? ', streamed' : ''}) in ${loadSeconds.toFixed(1)} s`);

  const latents = random.randomNormal([1, F, C, H, W], { seed: 5, device });
  const both = sv.ops.concat([latents, latents], 0);
  const input = sv.ops.cast(both, dtype);
  both.dispose();
  const y = random.randomNormal([B, llmTokens, D], { seed: 6, dtype, device });
  const clip = random.randomNormal([B, clipTokens, 1024], { seed: 7, dtype, device });
  const mask = new Float32Array(B * (clipTokens + llmTokens));
  for (let b = 0; b < B; b++) for (let j = 0; j < clipTokens + validLlm[b]; j++) mask[b * (clipTokens + llmTokens) + j] = 1;
  const contextStart = performance.now();
  const context = model.prepareContext({ y, clip, mask });
  await device.synchronize();
  const contextSeconds = (performance.now() - contextStart) / 1000;
  const estimate = dit.estimateDiTMemory({
    config, batch: B, latent: [F, H, W], text: { llm: llmTokens, clip: clipTokens, keys: Math.max(...context.kvLengths) },
    dtype, backend: device.isCuda ? 'cuda' : 'cpu', execution: model.execution,
  });

  /** One step: the DiT over [x, x] with the text rows [prompt, negative], then CFG + Euler. */
  const step = async (onBlock) => {
    const velocity = await model.forward(input, [0.5, 0.5], context, { onBlock });
    sampler.cfgEulerStep(latents, velocity, { guidanceScale: 9, dt: 0.02 });
    velocity.dispose();
    await device.synchronize();
  };

  // Warm-up step: cuBLASLt plans and autotuning, the pool's growth, the streamed slots' first fill.
  const poolBefore = device.isCuda ? sv.cudaPoolStats(device) : undefined;
  const firstStart = performance.now();
  for (let i = 0; i < warmupSteps; i++) await step();
  const firstSeconds = warmupSteps > 0 ? (performance.now() - firstStart) / 1000 / warmupSteps : null;
  const poolAfterFirst = device.isCuda && warmupSteps > 0 ? sv.cudaPoolStats(device) : undefined;
  const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  const earlyReport = Number(flags['block-report-after'] ?? 0);
  const shape = { batch: B, tokens: N, dim: D, layers, latent: [B, F, C, H, W] };

  const stepSeconds = [];
  const blockMs = [];
  let opsPerStep = 0;
  let peakBytes = 0;
  const delay = monitorEventLoopDelay({ resolution: 10 });
  if (device.isCuda) sv.resetCudaPoolHigh(device);
  for (let run = 0; run < runs; run++) {
    await device.synchronize();
    const baseline = device.memory().bytesInUse;
    device.resetPeakMemory();
    const ops = sv.opCount(device);
    const stamps = [];
    delay.enable();
    const start = performance.now();
    await step(() => {
      stamps.push(performance.now());
      if (run === 0 && stamps.length === earlyReport + 1) {
        const first = stamps.slice(1).map((t, i) => t - stamps[i]);
        report({ benchmark: 'dit-block', ...env, source: `step.mjs, blocks 1-${earlyReport} of the timed step`, shape, blockMs: Number(median(first).toFixed(1)), torchBlockMs, ratioToTorch: torchBlockMs ? Number((median(first) / torchBlockMs).toFixed(3)) : null });
      }
    });
    stepSeconds.push((performance.now() - start) / 1000);
    delay.disable();
    opsPerStep = sv.opCount(device) - ops;
    peakBytes = Math.max(peakBytes, device.memory().peakBytes - baseline);
    for (let i = 1; i < stamps.length; i++) blockMs.push(stamps[i] - stamps[i - 1]);
  }
  const pool = device.isCuda ? sv.cudaPoolStats(device) : undefined;
  const info = device.info();
  const sorted = [...stepSeconds].sort((a, b) => a - b);
  const seconds = sorted[Math.floor(sorted.length / 2)];
  const blocksSorted = [...blockMs].sort((a, b) => a - b);
  const medianBlockMs = blocksSorted[Math.floor(blocksSorted.length / 2)];
  const opsPerBlock = (opsPerStep - 13) / layers; // 12 outside the blocks + the CFG/Euler step
  const weightsResident = model.weightBytes;
  const forwardTotal = weightsResident + estimate.contextBytes + input.byteLength;

  report({
    benchmark: 'dit-step',
    ...env,
    mode: `${weights}${streaming ? ' streamed' : ' resident'}${fusedResidual ? ' fused-residual' : ''}`,
    budgetGB: flags['budget-gb'] ? Number(flags['budget-gb']) : null,
    shape: { ...shape, textKeys: Math.max(...context.kvLengths) },
    videoFrames: (17 * F) / 3,
    framesChosen: flags.frames === 'fit' ? 'fit: the most whose memory-model estimate fits the free memory' : 'flag',
    freeGBAtStart: Number((freeAtStart / GB).toFixed(2)),
    warmupSteps,
    stepSeconds: Number(seconds.toFixed(2)),
    stepSecondsSamples: stepSeconds.map((s) => Number(s.toFixed(2))),
    firstStepSeconds: firstSeconds === null ? null : Number(firstSeconds.toFixed(2)),
    steps50Seconds: Number((50 * seconds + contextSeconds).toFixed(1)),
    turbo15Seconds: Number((15 * seconds + contextSeconds).toFixed(1)),
    contextSeconds: Number(contextSeconds.toFixed(2)),
    loadSeconds: Number(loadSeconds.toFixed(1)),
    blockMs: Number(medianBlockMs.toFixed(1)),
    blockFloorMs: Number(blockFloorMs.toFixed(1)),
    stepFloorSeconds: Number(((layers * blockFloorMs) / 1e3).toFixed(2)),
    ratioToFloor: Number(((seconds * 1e3) / (layers * blockFloorMs)).toFixed(3)),
    officialStepSeconds: OFFICIAL_STEP_S,
    speedupOverOfficial: Number((OFFICIAL_STEP_S / seconds).toFixed(3)),
    torchBlockMs,
    torchStepSeconds: torchBlockMs ? Number(((layers * torchBlockMs) / 1e3).toFixed(2)) : null,
    ratioToTorchBlocks: torchBlockMs ? Number(((seconds * 1e3) / (layers * torchBlockMs)).toFixed(3)) : null,
    goalStepSeconds: GOAL_STEP_S,
    meetsGoal: seconds <= GOAL_STEP_S,
    // Launch overhead: ops per block x the host's cost per op, against the block's time. The
    // forward keeps the next block queued, so the host's enqueue overlaps the device's work.
    opsPerBlock,
    hostUsPerOp: Number(launchCost.hostUsPerOp.toFixed(2)),
    deviceUsPerOp: Number(launchCost.deviceUsPerOp.toFixed(2)),
    launchMsPerBlock: Number(((opsPerBlock * Math.max(launchCost.hostUsPerOp, launchCost.deviceUsPerOp)) / 1e3).toFixed(3)),
    launchFractionOfBlock: Number(((opsPerBlock * Math.max(launchCost.hostUsPerOp, launchCost.deviceUsPerOp)) / 1e3 / medianBlockMs).toFixed(6)),
    // Memory: the library's count (weights + context + input + the step's peak), the pool, the driver.
    weightsGB: Number((weightsResident / GB).toFixed(2)),
    hostWeightsGB: Number((model.hostWeightBytes / GB).toFixed(2)),
    contextGB: Number((estimate.contextBytes / GB).toFixed(3)),
    stepTransientPeakGB: Number((peakBytes / GB).toFixed(2)), // above weights + context + input
    peakGB: Number(((forwardTotal + peakBytes) / GB).toFixed(2)),
    modelPredictedPeakGB: Number((estimate.totalBytes / GB).toFixed(2)),
    modelPredictedStepPeakGB: Number((estimate.forwardPeakBytes / GB).toFixed(2)),
    poolReservedHighGB: pool ? Number(((pool.reservedHighBytes - ballastBytes) / GB).toFixed(2)) : null,
    poolGrewAfterFirstStep: pool && poolAfterFirst ? pool.reservedHighBytes > poolAfterFirst.reservedBytes : null, // null without a warm-up step
    poolReservedBeforeGB: poolBefore ? Number((poolBefore.reservedBytes / GB).toFixed(2)) : null,
    driverUsedGB: device.isCuda ? Number(((info.totalBytes - info.freeBytes - ballastBytes) / GB).toFixed(2)) : null,
    goalPeakGB: streaming ? Number(flags['budget-gb'] ?? 24) : 80,
    // Event loop during the step (ms): it must stay free while the GPU works.
    eventLoopDelayMaxMs: Number((delay.max / 1e6).toFixed(2)),
    eventLoopDelayP99Ms: Number((delay.percentile(99) / 1e6).toFixed(2)),
    gemmPlans: sv.gemmPlans().length,
  });
  for (const t of [latents, input, y, clip]) t.dispose();
  context.dispose();
  model.dispose();
} finally {
  ballast?.dispose();
  rmSync(work, { recursive: true, force: true });
}
