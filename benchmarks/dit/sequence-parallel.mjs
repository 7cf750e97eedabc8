// Sequence parallelism of one DiT block at 544x992x204 with CFG (B = 2, N = 75,888, D = 6144,
// 48 heads), on the one GPU the device machine has: the block through ParallelDiT with k virtual
// ranks (k = 1, 2, 4, 8) on that GPU. The ranks run one after the other there, so a block takes
// about k x the local work of one rank, plus the exchanges (device copies here). Reported per k:
// the measured block time; the local work of one rank (the block time over k, an upper bound: it
// includes the on-device copies of the exchange); and the PREDICTED block time on k GPUs: that local work plus the all-to-all over
// NVLink from the written model in benchmarks/RESULTS.md (bytes each rank sends per block over the
// link bandwidth), against the one-rank block of the same run and the official 836 ms.
//   node benchmarks/dit/sequence-parallel.mjs [--layers=2] [--degrees=1,2,4,8] [--link-gbps=350]
// (--device=cpu --frames=1 --height=2 --width=4 --degrees=1,2 is a quick check of the script, in f32.)
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { environment, library, parseFlags, report, root } from '../lib/harness.mjs';
import { officialRunShapes, randomTensor, writeRandomTransformer } from './random-transformer.mjs';

const flags = parseFlags();
const layers = Number(flags.layers ?? 2);
const degrees = String(flags.degrees ?? '1,2,4,8').split(',').map(Number);
const linkBytesPerSecond = Number(flags['link-gbps'] ?? 350) * 1e9;  // NVLink 4 all-to-all, per GPU per direction (assumed)
const sv = await library();
const dit = await import(path.join(root, 'dist', 'models', 'dit', 'index.js'));
const device = sv.getDevice(flags.device ?? 'cuda');

const { B, F, C, H, W, N, D, llmTokens, clipTokens } = officialRunShapes(flags);
const element = device.isCuda ? 2 : 4;

/** Bytes one rank sends per block in the two all-to-alls (q/k/v out, attention output back), all B rows. */
function allToAllBytesPerRank(k) {
  const shard = Math.ceil(N / k);
  return B * shard * (3 * D + D) * element * (k - 1) / k;
}

const work = mkdtempSync(path.join(flags.dir ?? os.tmpdir(), 'stepvideo-sp-bench-'));
try {
  const { dir } = await writeRandomTransformer(path.join(work, 'transformer'), layers, { ...dit, writeSafetensors: sv.writeSafetensors });
  const model = await dit.StepVideoDiT.load(dir, { device, dtype: device.isCuda ? 'bf16' : 'f32' });
  const latents = randomTensor(sv.Tensor, [B, F, C, H, W], 1, model.dtype, device);
  const y = randomTensor(sv.Tensor, [B, llmTokens, D], 2, model.dtype, device);
  const clip = randomTensor(sv.Tensor, [B, clipTokens, 1024], 3, model.dtype, device);
  const mask = new Float32Array(B * (clipTokens + llmTokens)).fill(1);
  const env = environment(device);
  let oneRankMs;
  for (const k of degrees) {
    const parallel = new dit.ParallelDiT(model, { sequenceParallel: k });
    const context = parallel.prepareContext({ y, clip, mask });
    const blockMs = [];
    for (let run = 0; run < 3; run++) {
      const stamps = [];
      const out = await parallel.forward(latents, [0.5, 0.5], context, { onBlock: () => stamps.push(performance.now()) });
      out.dispose();
      if (run > 0) for (let i = 1; i < stamps.length; i++) blockMs.push(stamps[i] - stamps[i - 1]);
    }
    context.dispose();
    const sorted = [...blockMs].sort((a, b) => a - b);
    const measuredMs = sorted[Math.floor(sorted.length / 2)] ?? NaN;
    oneRankMs ??= measuredMs;
    // One rank's share of the block; it includes this device's copies of the exchanged parts (slices,
    // the copy to the receiver, concat), which k GPUs replace by the link transfer: an upper bound.
    const localMs = measuredMs / k;
    const linkMs = (allToAllBytesPerRank(k) / linkBytesPerSecond) * 1e3;
    const predictedMs = localMs + linkMs;
    report({
      benchmark: 'dit-sequence-parallel',
      ...env,
      shape: { batch: B, tokens: N, dim: D, latent: [B, F, C, H, W] },
      degree: k,
      measuredBlockMsOnOneDevice: Number(measuredMs.toFixed(2)),
      localWorkPerRankMs: Number(localMs.toFixed(2)),
      allToAllBytesPerRank: Math.round(allToAllBytesPerRank(k)),
      predictedLinkMs: Number(linkMs.toFixed(2)),
      predictedBlockMsOnKGpus: Number(predictedMs.toFixed(2)),
      prediction: true,
      predictedSpeedupVsOneRank: Number((oneRankMs / predictedMs).toFixed(2)),
      predictedRatioToOfficial836: Number((predictedMs / 836).toFixed(3)),
    });
  }
  for (const t of [latents, y, clip]) t.dispose();
  model.dispose();
} finally {
  rmSync(work, { recursive: true, force: true });
}
