// One Diffusion-DPO step on the DiT with a LoRA adapter (the loss: lib/training/dpo.ts). For a
// batch of pairs noised to σ with shared noise: no-grad forwards of the reference (the context
// without the adapter: the same weights, no second copy) and of the trained model on both videos
// give the four squared errors and the loss; then, one video at a time, a checkpointed forward and
// the backward (lib/training/dit-backward.ts) give the adapter's gradients, which are summed. This
// is the order lib/training/memory.ts counts memory for.
import { StepVideoError, throwIfAborted } from '../errors.js';
import type { DiTConditioning, StepVideoDiT } from '../models/dit/model.js';
import type { LoraAdapter } from '../models/dit/lora.js';
import * as ops from '../ops.js';
import { formatShape } from '../shape.js';
import { Tensor, TensorScope } from '../tensor.js';
import { type DiTBackwardOptions, type LoraGradients, disposeGradients, ditLoraGradients, forwardWithCheckpoints } from './dit-backward.js';
import { type DpoErrors, type DpoLoss, dpoLoss } from './dpo.js';

export interface DpoBatch {
  /** Clean latents [B, F, C, H, W] in the model dtype on the model's device. */
  chosen: Tensor;
  rejected: Tensor;
  /** ε, the same shape, shared by both videos of a pair. */
  noise: Tensor;
  /**
   * Per pair, the noise fraction in (0, 1): x_σ = (1 − σ)·x0 + σ·ε. In the released model's
   * convention (spec §4: the sampler's t runs from 0, noise, to 1, data) the DiT's timestep is then
   * t = 1 − σ and its velocity target dx/dt = x0 − ε.
   */
  sigma: readonly number[];
  /** The prompts' conditioning (y, clip, mask), one row per pair. */
  text: Omit<DiTConditioning, 'lora'>;
}

export interface DpoStepOptions {
  beta: number;
  /** Compute the adapter's gradients (default true); false: the loss only. */
  gradients?: boolean;
  signal?: AbortSignal;
  /** Phases as they start: 'errors', then 'backward chosen' and 'backward rejected'. */
  onPhase?: (phase: string) => void;
  onBlock?: DiTBackwardOptions['onBlock'];
  /** Keep the checkpointed block inputs in host memory (lib/training/dit-backward.ts). */
  offloadCheckpoints?: boolean;
}

export interface DpoStepResult {
  loss: DpoLoss;
  errors: DpoErrors;
  /** f32 gradients of the loss by "<block>.<linear>" (absent with gradients: false); the caller disposes them. */
  grads?: LoraGradients;
}

export async function dpoStep(model: StepVideoDiT, lora: LoraAdapter, batch: DpoBatch, options: DpoStepOptions): Promise<DpoStepResult> {
  const { chosen, rejected, noise, sigma } = batch;
  const B = chosen.size(0);
  for (const [name, t] of [['chosen', chosen], ['rejected', rejected], ['noise', noise]] as const) {
    if (t.ndim !== 5 || t.shape.some((d, i) => d !== chosen.shape[i])) throw new StepVideoError('ERR_SHAPE', `DPO: '${name}' must match 'chosen' ([B, F, C, H, W])`, { tensor: name, expected: formatShape(chosen.shape), got: formatShape(t.shape) });
    if (t.dtype !== model.dtype || t.device !== model.device) throw new StepVideoError('ERR_DTYPE', `DPO: '${name}' must be in the model dtype on the model's device`, { tensor: name, expected: `${model.dtype} on ${model.device.name}`, got: `${t.dtype} on ${t.device.name}` });
  }
  if (sigma.length !== B || sigma.some((s) => !(s > 0 && s < 1))) throw new StepVideoError('ERR_ARGUMENT', 'DPO: sigma needs one value in (0, 1) per pair', { tensor: 'sigma', expected: `${B} values in (0, 1)`, got: [...sigma].join(', ') });
  throwIfAborted(options.signal, 'DPO step');

  using scope = new TensorScope();
  const f32 = (t: Tensor) => scope.track(ops.cast(t, 'f32'));
  const perSample = (values: readonly number[]) => scope.track(Tensor.from(Float32Array.from(values), [B, 1, 1, 1, 1], { dtype: 'f32', device: model.device }));
  const keep = perSample(sigma.map((s) => 1 - s));
  const spread = perSample(sigma);
  const noise32 = f32(noise);
  const videos = [chosen, rejected].map((x0) => {
    // x_σ and the target in f32, then x_σ in the model dtype (σ itself is never rounded to bf16).
    const clean = f32(x0);
    using kept = ops.mul(clean, keep);
    using noised = ops.mul(noise32, spread);
    using mixed = ops.add(kept, noised);
    return { input: scope.track(ops.cast(mixed, model.dtype)), target: scope.track(ops.sub(clean, noise32)) };
  });

  const timestep = sigma.map((s) => 1 - s);
  using reference = model.prepareContext(batch.text);
  using trained = model.prepareContext({ ...batch.text, lora });
  const forwardOptions = options.signal ? { signal: options.signal } : {};
  options.onPhase?.('errors');
  const errors: number[][] = [];
  for (const context of [trained, reference])
    for (const video of videos) {
      using v = await model.forward(video.input, timestep, context, forwardOptions);
      errors.push(await meanSquaredError(v, video.target));
    }
  const [e, eRef] = [{ chosen: errors[0]!, rejected: errors[1]! }, { chosen: errors[2]!, rejected: errors[3]! }];
  const dpoErrors: DpoErrors = { chosen: e.chosen, rejected: e.rejected, chosenRef: eRef.chosen, rejectedRef: eRef.rejected };
  const loss = dpoLoss(dpoErrors, options.beta);
  if (options.gradients === false) return { loss, errors: dpoErrors };

  const total: LoraGradients = new Map();
  try {
    for (const [k, which] of (['chosen', 'rejected'] as const).entries()) {
      throwIfAborted(options.signal, 'DPO step');
      options.onPhase?.(`backward ${which}`);
      const video = videos[k]!;
      const { output, inputs } = await forwardWithCheckpoints(model, video.input, timestep, trained, { ...forwardOptions, offload: options.offloadCheckpoints ?? false });
      let dOutput: Tensor;
      try {
        // ∂loss/∂v = ∂loss/∂e · 2·(v − target) / elements per sample.
        using v32 = ops.cast(output, 'f32');
        using diff = ops.sub(v32, video.target);
        const perElement = loss.grad[which].map((g) => (2 * g) / (chosen.numel / B));
        using coefficient = Tensor.from(Float32Array.from(perElement), [B, 1, 1, 1, 1], { dtype: 'f32', device: model.device });
        using scaled = ops.mul(diff, coefficient);
        dOutput = ops.cast(scaled, model.dtype);
      } catch (error) {
        for (const t of inputs) t.dispose();
        throw error;
      } finally {
        output.dispose();
      }
      using d = dOutput;
      const grads = await ditLoraGradients(model, video.input, timestep, trained, inputs, d, { ...forwardOptions, ...(options.onBlock ? { onBlock: options.onBlock } : {}) });
      addInto(total, grads);
    }
  } catch (error) {
    disposeGradients(total);
    throw error;
  }
  return { loss, errors: dpoErrors, grads: total };
}

/** Per batch item: the mean over its elements of (v − target)², in f32 on the device, summed on the host. */
async function meanSquaredError(v: Tensor, target: Tensor): Promise<number[]> {
  const B = v.size(0);
  using v32 = ops.cast(v, 'f32');
  using diff = ops.sub(v32, target);
  using squared = ops.square(diff);
  using rows = squared.reshape(B, -1);
  using means = ops.mean(rows, 1);
  return Array.from(await means.toFloat32());
}

/** total += grads, consuming grads. */
function addInto(total: LoraGradients, grads: LoraGradients): void {
  for (const [key, g] of grads) {
    const previous = total.get(key);
    if (previous === undefined) {
      total.set(key, g);
      continue;
    }
    total.set(key, { a: ops.add(previous.a, g.a), b: ops.add(previous.b, g.b) });
    [previous.a, previous.b, g.a, g.b].forEach((t) => t.dispose());
  }
  grads.clear();
}
