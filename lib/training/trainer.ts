// The Video-DPO training loop behind `stepvideo dpo`: one preference pair per step, its noise level
// and noise drawn from (seed, step) alone, so a run resumed from a checkpoint takes exactly the
// steps the uninterrupted run would have (and the same seed gives the same adapter). Checkpoints
// (the adapter, AdamW's moments, the step and the loss history) are written atomically every
// `saveEvery` steps, at the end, and when the run is aborted (Ctrl-C in the CLI).
import { createHash } from 'node:crypto';

import { StepVideoError, isStepVideoError, throwIfAborted } from '../errors.js';
import { type HostTensor, readSafetensors, readSafetensorsHeader, writeSafetensors } from '../io/safetensors.js';
import { randomNormal } from '../kernels/random.js';
import type { StepVideoDiT } from '../models/dit/model.js';
import type { LoraLinear } from '../models/dit/lora.js';
import * as ops from '../ops.js';
import { Tensor } from '../tensor.js';
import { trimCudaPool } from '../device-stats.js';
import { estimateDpoMemory } from './memory.js';
import { AdamW } from './adamw.js';
import { disposeGradients } from './dit-backward.js';
import { dpoStep } from './dpo-step.js';
import { trainingSigma } from './dpo.js';
import { TrainableLora } from './lora-params.js';
import type { HostLatents } from './pairs.js';

/** A pair ready for training: host latents and the prompt's conditioning (host f32). */
export interface PreparedPair {
  chosen: HostLatents;
  rejected: HostLatents;
  text: { y: HostTensor; clip: HostTensor; mask: ArrayLike<number> };
}

export interface DpoTrainOptions {
  steps: number;
  rank?: number;
  alpha?: number;
  beta?: number;
  lr?: number;
  seed?: number;
  /** The sampler's time shift the noise levels are drawn through (Step-Video-T2V: 13). */
  timeShift?: number;
  maxGradNorm?: number;
  weightDecay?: number;
  targets?: readonly LoraLinear[];
  /** Keep the checkpointed block inputs in host memory: less device memory, a transfer per block. */
  offloadCheckpoints?: boolean;
  /** On CUDA, refuse before any work a step that the memory model says cannot fit (default true). */
  checkMemory?: boolean;
  /** Continue from this checkpoint (same pairs and seed). */
  resume?: string;
  /** Where checkpoints go, and how often (steps; 0: only at the end and on abort). */
  checkpoint?: { file: string; every: number };
  signal?: AbortSignal;
  onStep?: (progress: DpoStepProgress) => void;
  /** Phases within a step ('errors', 'backward chosen', ...) with the backward's block count. */
  onPhase?: (phase: string, done?: number, total?: number) => void;
  /** Called after a checkpoint is written. */
  onCheckpoint?: (file: string, step: number) => void;
}

export interface DpoStepProgress {
  step: number;
  steps: number;
  pair: number;
  sigma: number;
  loss: number;
  accuracy: number;
  margin: number;
  gradNorm: number;
  clipped: boolean;
  elapsedMs: number;
}

export interface DpoTrainResult {
  /** The trained adapter (f32 masters); the caller disposes it or saves it with saveLora. */
  lora: TrainableLora;
  steps: number;
  /** Per step taken in this run and the runs it resumed: loss, accuracy and margin. */
  history: Array<{ loss: number; accuracy: number; margin: number }>;
}

export const DPO_DEFAULTS = { rank: 16, beta: 500, lr: 1e-4, seed: 0, timeShift: 13, maxGradNorm: 1, weightDecay: 0 } as const;

const CHECKPOINT_FORMAT = 'stepvideo-dpo-checkpoint/1';

export async function trainDpo(model: StepVideoDiT, pairs: readonly PreparedPair[], options: DpoTrainOptions): Promise<DpoTrainResult> {
  const settings = { ...DPO_DEFAULTS, ...definedOnly(options) };
  if (!Number.isInteger(options.steps) || options.steps < 1) throw new StepVideoError('ERR_ARGUMENT', 'the step count must be a positive integer', { got: options.steps });
  if (pairs.length === 0) throw new StepVideoError('ERR_ARGUMENT', 'DPO needs at least one pair');
  pairs.forEach((pair, i) => {
    if (pair.chosen.shape.join() !== pair.rejected.shape.join()) {
      throw new StepVideoError('ERR_SHAPE', `pair ${i + 1}: the chosen and rejected latents differ in shape (they share one noise)`, { expected: `[${pair.chosen.shape.join(', ')}]`, got: `[${pair.rejected.shape.join(', ')}]` });
    }
    if (pair.chosen.shape[2] !== model.config.inChannels) throw new StepVideoError('ERR_SHAPE', `pair ${i + 1}: the latents have ${pair.chosen.shape[2]} channels, the DiT takes ${model.config.inChannels}`);
  });
  if (options.checkMemory !== false && model.device.isCuda) await checkStepMemory(model, pairs, options.resume !== undefined ? undefined : settings.rank, options.offloadCheckpoints ?? false);
  const fingerprint = pairsFingerprint(pairs);
  const optimizer = new AdamW({ lr: settings.lr, maxGradNorm: settings.maxGradNorm, weightDecay: settings.weightDecay });
  let lora: TrainableLora | undefined;
  let history: DpoTrainResult['history'] = [];
  try {
    if (options.resume !== undefined) {
      const state = await readCheckpoint(options.resume, model, settings.seed, fingerprint);
      lora = state.lora;
      history = state.history;
      optimizer.loadState(state.tensors, state.step, model.device);
    } else {
      lora = TrainableLora.init(model.config, { rank: settings.rank, ...(options.alpha !== undefined ? { alpha: options.alpha } : {}), ...(options.targets ? { targets: options.targets } : {}), seed: settings.seed, device: model.device });
    }
    const trained = lora;
    const save = async () => {
      if (!options.checkpoint) return;
      await writeCheckpoint(options.checkpoint.file, trained, optimizer, { seed: settings.seed, fingerprint, history, beta: settings.beta, lr: settings.lr, timeShift: settings.timeShift });
      options.onCheckpoint?.(options.checkpoint.file, optimizer.steps);
    };
    try {
      for (let step = optimizer.steps; step < options.steps; step++) {
        throwIfAborted(options.signal, 'DPO training');
        const started = performance.now();
        const index = pairOrder(pairs.length, settings.seed, Math.floor(step / pairs.length))[step % pairs.length]!;
        const pair = pairs[index]!;
        const sigma = Math.min(0.999, Math.max(0.001, trainingSigma(uniform(settings.seed, step), settings.timeShift)));
        const { result, update } = await withPairOnDevice(model, pair, settings.seed, step, async (batch) => {
          using adapter = trained.adapter(model.dtype === 'bf16' ? 'bf16' : 'f32');
          const result = await dpoStep(model, adapter, { ...batch, sigma: [sigma] }, {
            beta: settings.beta,
            ...(options.signal ? { signal: options.signal } : {}),
            onPhase: (phase) => options.onPhase?.(phase),
            onBlock: (done, total) => options.onPhase?.('backward', done, total),
            ...(options.offloadCheckpoints ? { offloadCheckpoints: true } : {}),
          });
          try {
            const update = await trained.step(optimizer, result.grads!);
            return { result, update };
          } finally {
            disposeGradients(result.grads!);
          }
        });
        history.push({ loss: result.loss.loss, accuracy: result.loss.accuracy, margin: result.loss.margin });
        options.onStep?.({ step: step + 1, steps: options.steps, pair: index, sigma, loss: result.loss.loss, accuracy: result.loss.accuracy, margin: result.loss.margin, gradNorm: update.gradNorm, clipped: update.clipped, elapsedMs: performance.now() - started });
        if (options.checkpoint && options.checkpoint.every > 0 && (step + 1) % options.checkpoint.every === 0 && step + 1 < options.steps) await save();
      }
    } catch (error) {
      // Aborted (Ctrl-C): keep what the finished steps learned.
      if ((isStepVideoError(error, 'ERR_ABORTED') || options.signal?.aborted) && optimizer.steps > 0) await save();
      throw error;
    }
    await save();
    return { lora: trained, steps: optimizer.steps, history };
  } catch (error) {
    lora?.dispose();
    throw error;
  } finally {
    optimizer.dispose();
  }
}

/** The final adapter file: the LoRA under PEFT names with lora_alpha (what generate --lora reads). */
export async function saveLora(file: string, lora: TrainableLora, metadata: Record<string, string> = {}): Promise<void> {
  await writeSafetensors(file, await lora.toHostTensors(), { format: 'stepvideo-lora', rank: String(lora.rank), alpha: String(lora.alpha), ...metadata });
}

/**
 * Fails with ERR_CUDA_OOM before any work when the memory model (lib/training/memory.ts) says one
 * step on the largest pair needs more than the device has free, naming the parts and what helps.
 */
async function checkStepMemory(model: StepVideoDiT, pairs: readonly PreparedPair[], rank: number | undefined, offload: boolean): Promise<void> {
  const largest = pairs.reduce((a, p) => (p.chosen.data.length > a.chosen.data.length ? p : a));
  const [, F, , H, W] = largest.chosen.shape;
  const estimate = estimateDpoMemory({ config: model.config, latent: [F, H, W], rank: rank ?? DPO_DEFAULTS.rank, base: model.execution.weights === 'fp8' ? 'fp8' : 'bf16', rowsPerBackward: 1, offloadCheckpoints: offload });
  // The weights are loaded already: what the step adds is the rest.
  const needed = estimate.deviceBytes - estimate.baseWeightBytes;
  await trimCudaPool(model.device);
  const free = model.device.info().freeBytes;
  if (needed <= free) return;
  const gb = (bytes: number) => `${(bytes / 1e9).toFixed(1)} GB`;
  const hints = [offload ? undefined : `offloading the checkpoints (--offload-checkpoints) saves ${gb(estimate.checkpointBytes)}`, model.execution.weights === 'fp8' ? undefined : 'FP8 base weights (--weights fp8) halve the weights'].filter(Boolean);
  throw new StepVideoError('ERR_CUDA_OOM', `a DPO step on ${F}x${H}x${W} latents needs about ${gb(needed)} of GPU memory beyond the loaded weights (LoRA and AdamW ${gb(estimate.loraBytes)}, checkpoints ${gb(offload ? 0 : estimate.checkpointBytes)}, backward ${gb(estimate.backwardPeakBytes)}, text ${gb(estimate.contextBytes)}), ${gb(free)} is free on ${model.device.name}${hints.length ? `; ${hints.join('; ')}` : ''}`);
}

/** Uploads one pair, its noise (seed, step) and conditioning; runs `body`; frees them. */
async function withPairOnDevice<T>(model: StepVideoDiT, pair: PreparedPair, seed: number, step: number, body: (batch: { chosen: Tensor; rejected: Tensor; noise: Tensor; text: { y: Tensor; clip: Tensor; mask: ArrayLike<number> } }) => Promise<T>): Promise<T> {
  const device = model.device;
  const inModelDType = (data: Float32Array, shape: readonly number[]) => Tensor.from(data, [...shape], { dtype: model.dtype, device });
  const hostF32 = (t: HostTensor) => (t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as ArrayLike<number>, Number));
  using chosen = inModelDType(pair.chosen.data, pair.chosen.shape);
  using rejected = inModelDType(pair.rejected.data, pair.rejected.shape);
  using noise32 = randomNormal(pair.chosen.shape, { seed: stepSeed(seed, step), device });
  using noise = ops.cast(noise32, model.dtype);
  using y = inModelDType(hostF32(pair.text.y), pair.text.y.shape);
  using clip = inModelDType(hostF32(pair.text.clip), pair.text.clip.shape);
  return body({ chosen, rejected, noise, text: { y, clip, mask: pair.text.mask } });
}

// ---- the (seed, step) streams ----

/** splitmix64 of a 64-bit value (as BigInt). */
function splitmix(x: bigint): bigint {
  let z = (x + 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & 0xffffffffffffffffn;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & 0xffffffffffffffffn;
  return z ^ (z >> 31n);
}

/** The noise seed of a step: a hash of (seed, step), so no two steps share noise. */
export function stepSeed(seed: number, step: number): bigint {
  return splitmix(splitmix(BigInt(seed)) ^ BigInt(step));
}

/** u in [0, 1) for a step's noise level. */
export function uniform(seed: number, step: number): number {
  return Number(splitmix(stepSeed(seed, step) ^ 0x5851f42d4c957f2dn) >> 11n) / 2 ** 53;
}

/** The order of the pairs in an epoch: a Fisher-Yates shuffle seeded by (seed, epoch). */
export function pairOrder(count: number, seed: number, epoch: number): number[] {
  const order = Array.from({ length: count }, (_, i) => i);
  let state = splitmix(BigInt(seed) ^ (BigInt(epoch + 1) << 32n));
  for (let i = count - 1; i > 0; i--) {
    state = splitmix(state);
    const j = Number(state % BigInt(i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

function pairsFingerprint(pairs: readonly PreparedPair[]): string {
  const hash = createHash('sha256');
  for (const pair of pairs) for (const latents of [pair.chosen, pair.rejected]) hash.update(new Uint8Array(latents.data.buffer, latents.data.byteOffset, latents.data.byteLength));
  return hash.digest('hex').slice(0, 16);
}

function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<T>;
}

// ---- checkpoints ----

interface CheckpointInfo {
  seed: number;
  fingerprint: string;
  history: DpoTrainResult['history'];
  beta: number;
  lr: number;
  timeShift: number;
}

async function writeCheckpoint(file: string, lora: TrainableLora, optimizer: AdamW, info: CheckpointInfo): Promise<void> {
  const tensors = new Map([...(await lora.toHostTensors()), ...(await optimizer.stateTensors())]);
  await writeSafetensors(file, tensors, {
    format: CHECKPOINT_FORMAT,
    step: String(optimizer.steps),
    seed: String(info.seed),
    pairs: info.fingerprint,
    rank: String(lora.rank),
    alpha: String(lora.alpha),
    beta: String(info.beta),
    lr: String(info.lr),
    time_shift: String(info.timeShift),
    history: JSON.stringify(info.history),
  });
}

async function readCheckpoint(file: string, model: StepVideoDiT, seed: number, fingerprint: string): Promise<{ lora: TrainableLora; tensors: Map<string, HostTensor>; step: number; history: DpoTrainResult['history'] }> {
  const header = await readSafetensorsHeader(file).catch((error: Error) => {
    throw new StepVideoError('ERR_IO', `cannot read the checkpoint: ${error.message}`, { file });
  });
  const meta = header.metadata;
  if (meta.format !== CHECKPOINT_FORMAT) throw new StepVideoError('ERR_WEIGHTS_FORMAT', 'not a stepvideo dpo checkpoint', { file, expected: CHECKPOINT_FORMAT, got: meta.format ?? 'no format' });
  if (Number(meta.seed) !== seed) throw new StepVideoError('ERR_ARGUMENT', 'resume with the seed the checkpoint was trained with', { file, expected: meta.seed, got: seed });
  if (meta.pairs !== fingerprint) throw new StepVideoError('ERR_ARGUMENT', 'the checkpoint was trained on other pairs', { file });
  const tensors = await readSafetensors(file);
  const adapter = new Map([...tensors].filter(([name]) => !name.startsWith('adamw.')));
  const lora = TrainableLora.fromTensors(adapter, { config: model.config, device: model.device, source: file });
  return { lora, tensors, step: Number(meta.step), history: JSON.parse(meta.history ?? '[]') as DpoTrainResult['history'] };
}
