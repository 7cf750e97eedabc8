// Shared by the DiT performance suites (CPU golden and GPU): counting the ops of one block, a
// forward's peak device memory measured against the memory model, a transformer/ folder with the
// golden weights replaced by their FP8 round trip, and the golden inputs at another latent grid.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import type { Device } from '../../lib/device.js';
import { cpuPendingJobs, opCount } from '../../lib/device-stats.js';
import { type HostTensor, readSafetensors, writeSafetensors } from '../../lib/io/safetensors.js';
import { type DiTContext, type DiTMemoryEstimate, FP8_BLOCK_LINEARS, type StepVideoDiT, crossAttentionLengths, estimateDiTMemory } from '../../lib/models/dit/index.js';
import { native } from '../../lib/native.js';
import { Tensor } from '../../lib/tensor.js';
import { roundArrayBf16 } from './compare.js';
import { roundTripRows } from './fp8.js';
import { tinyModelDir } from './golden.js';
import { Rng, randn } from './random.js';

/**
 * Runs `body` with every native call followed by a wait (on this thread) until the CPU executor
 * has drained, so a CPU storage is freed when JavaScript disposes it, as a CUDA one is: the CPU's
 * bytes-in-use then follow JavaScript lifetimes exactly, which is what the memory model counts.
 */
export async function withDrainedCpuQueue<T>(body: () => Promise<T>): Promise<T> {
  // The plain functions of the addon, and the ops and uploads: methods of the execution context's prototype.
  const targets = [native as unknown as Record<string, unknown>, native.NativeContext.prototype as Record<string, unknown>];
  const originals: Array<[Record<string, unknown>, string, (...args: unknown[]) => unknown]> = [];
  for (const target of targets) {
    for (const key of Object.getOwnPropertyNames(target)) {
      const value = Object.getOwnPropertyDescriptor(target, key)?.value;  // not accessors (the context's device)
      if (typeof value !== 'function' || key === 'constructor' || key === 'NativeTensor' || key === 'NativeContext' || key === 'cpuPendingJobs') continue;
      const original = value as (...args: unknown[]) => unknown;
      originals.push([target, key, original]);
      target[key] = function (this: unknown, ...args: unknown[]) {
        const result = original.apply(this, args);
        while (cpuPendingJobs() > 0) {
          // spin: the executor thread is finishing the job just queued
        }
        return result;
      };
    }
  }
  try {
    return await body();
  } finally {
    for (const [target, key, original] of originals) target[key] = original;
  }
}

/** Ops enqueued by block 1 of a forward: the count between the captures of blocks 0 and 1. */
export async function opsOfOneBlock(model: StepVideoDiT, latents: Tensor, timestep: number[], context: DiTContext): Promise<{ block: number; forward: number }> {
  const marks = new Map<string, number>();
  const before = opCount(model.device);
  const out = await model.forward(latents, timestep, context, {
    capture: (name) => {
      if (/^transformer_blocks\.\d+$/.test(name)) marks.set(name, opCount(model.device));
    },
  });
  const forward = opCount(model.device) - before;
  out.dispose();
  return { block: marks.get('transformer_blocks.1')! - marks.get('transformer_blocks.0')!, forward };
}

/** Bytes the context holds (what estimateDiTMemory calls contextBytes). */
export function contextBytes(context: DiTContext): number {
  return [context.kvLen, context.captionProjection, context.clipProjection, ...context.crossKeys, ...context.crossValues].reduce((n, t) => n + t.byteLength, 0);
}

/** The model's estimate for these inputs on its own device. */
export function estimateFor(model: StepVideoDiT, latents: Tensor, context: DiTContext, text: { llm: number; clip: number }): DiTMemoryEstimate {
  const [B, F, , H, W] = latents.shape as [number, number, number, number, number];
  return estimateDiTMemory({
    config: model.config,
    batch: B,
    latent: [F, H, W],
    text: { ...text, keys: Math.max(1, ...context.kvLengths) },
    dtype: model.dtype,
    backend: model.device.isCuda ? 'cuda' : 'cpu',
    execution: model.execution,
  });
}

/** Peak device bytes above the state before the forward (output included), and the output. */
export async function measureForwardPeak(model: StepVideoDiT, latents: Tensor, timestep: number[], context: DiTContext): Promise<{ peak: number; output: Float32Array }> {
  const device: Device = model.device;
  await device.synchronize();
  const baseline = device.memory().bytesInUse;
  device.resetPeakMemory();
  const out = await model.forward(latents, timestep, context);
  const peak = device.memory().peakBytes - baseline;
  const output = await out.toFloat32();
  out.dispose();
  return { peak, output };
}

/** Golden-like inputs at another latent grid [B, F, 64, H, W] (random latents; the golden text). */
export function inputsAtGrid(model: StepVideoDiT, golden: Map<string, HostTensor>, grid: [number, number, number], seed: number) {
  const [F, H, W] = grid;
  const up = (name: string) => {
    const t = golden.get(name)!;
    return Tensor.from(t.data as Float32Array, t.shape, { dtype: model.dtype, device: model.device });
  };
  return {
    latents: Tensor.from(randn(new Rng(seed), 2 * F * 64 * H * W), [2, F, 64, H, W], { dtype: model.dtype, device: model.device }),
    y: up('encoder_hidden_states'),
    clip: up('encoder_hidden_states_2'),
    mask: golden.get('encoder_attention_mask')!.data as Float32Array,
    timestep: Array.from(golden.get('timestep')!.data as Float32Array),
  };
}

/** Kept cross-attention keys of the golden text in the given numerics. */
export function goldenKeys(golden: Map<string, HostTensor>, numerics: 'exact' | 'bf16-official'): number {
  const mask = golden.get('encoder_attention_mask')!;
  return Math.max(...crossAttentionLengths(mask.data as Float32Array, mask.shape[0]!, mask.shape[1]!, numerics));
}

/**
 * Writes a transformer/ folder whose block Linear weights are the FP8 round trip of the golden
 * ones (per output channel, computed by the independent reference), stored as f32: the model an
 * FP8 DiT claims to compute. With `bf16Weights` the round trip is rounded to bf16 as well: the
 * weights CUDA multiplies by where it dequantizes into a bf16 temporary (FP8 weights without FP8
 * activations, or without an FP8 GEMM).
 */
export async function writeFp8RoundTripTransformer(dir: string, options: { bf16Weights?: boolean } = {}): Promise<string> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'config.json'), readFileSync(path.join(tinyModelDir, 'transformer', 'config.json')));
  const tensors = await readSafetensors(path.join(tinyModelDir, 'transformer', 'diffusion_pytorch_model.safetensors'));
  const out = new Map<string, HostTensor>();
  for (const [name, t] of tensors) {
    const quantized = name.startsWith('transformer_blocks.') && FP8_BLOCK_LINEARS.some((suffix) => name.endsWith(`.${suffix}`));
    if (!quantized) {
      out.set(name, t);
      continue;
    }
    const [rows, cols] = t.shape as [number, number];
    const values = t.dtype === 'bf16' ? Float32Array.from(t.data as Uint16Array, (bits) => new Float32Array(new Uint32Array([bits << 16]).buffer)[0]!) : (t.data as Float32Array);
    const roundTrip = Float32Array.from(roundTripRows(values, rows, cols));
    out.set(name, { dtype: 'f32', shape: [rows, cols], data: options.bf16Weights ? roundArrayBf16(roundTrip) : roundTrip });
  }
  await writeSafetensors(path.join(dir, 'diffusion_pytorch_model.safetensors'), out);
  return dir;
}
