// The denoising loop of spec §4, driven from TypeScript over a velocity model (the DiT, or any
// object of its shape): Euler steps over the flow-matching schedule, classifier-free guidance with
// the conditional and unconditional rows in one model call, latents kept in f32 between steps.
import type { Device } from '../device.js';
import { isFloatDType } from '../dtype.js';
import { StepVideoError, isStepVideoError, throwIfAborted } from '../errors.js';
import { cfgEulerStep } from '../kernels/sampler.js';
import * as ops from '../ops.js';
import { formatShape, shapeEquals } from '../shape.js';
import { Tensor, TensorScope } from '../tensor.js';
import type { LoraAdapter } from '../models/dit/lora.js';
import { type CacheDecision, StepCache, type StepCacheOptions } from './cache.js';
import { generateNoise } from './noise.js';
import { type SamplerPresetName, type SamplerSettings, flowMatchSigmas, resolveSamplerSettings } from './scheduler.js';

/** What a velocity model receives to prepare its text context (the DiT's DiTConditioning). */
export interface VelocityConditioning {
  y: Tensor;
  clip: Tensor;
  /** Host [rows, Lc + Ly], 1 = keep. */
  mask: ArrayLike<number>;
  /** A LoRA adapter for the run (the DiT's; borrowed). */
  lora?: LoraAdapter;
}

/**
 * What the sampler needs of a denoiser; StepVideoDiT has this shape. forward returns the velocity
 * (model dtype, the latents' shape) for latents [rows, F, C, H, W] in the model dtype and one
 * timestep per row in [0, 1); it calls onBlock with the count of its blocks done (1..total).
 */
export interface VelocityModel<Context extends Disposable = Disposable> {
  readonly device: Device;
  readonly dtype: 'f32' | 'bf16';
  prepareContext(cond: VelocityConditioning): Context;
  forward(
    latents: Tensor,
    timestep: readonly number[],
    context: Context,
    options?: { signal?: AbortSignal; onBlock?: (done: number, total: number) => void },
  ): Promise<Tensor>;
  /**
   * For the 'teacache' step cache: a sample of the timestep-modulated input of the first block for
   * latents [B, ...] (model dtype) at one timestep, as host floats. Cheap next to forward.
   */
  cacheProbe?(latents: Tensor, timestep: number): Promise<Float32Array>;
}

/**
 * Text conditioning as the official caption server produces it. Rows are [prompts; negatives]
 * under guidance (2·B rows for B videos); without guidance B rows (extra negative rows are ignored).
 */
export interface TextConditioning {
  /** Step-LLM states [rows, Ly, C0] (released: Ly 320, C0 6144). */
  y: Tensor;
  /** Host [rows, Lc + Ly]: Lc ones (every CLIP position is attended) then the LLM padding mask. */
  yMask: ArrayLike<number>;
  /** Hunyuan-CLIP states [rows, Lc, C1] (released: Lc 77, C1 1024). */
  clip: Tensor;
}

/** Progress counts completed units (the convention of lib/pipeline/progress.ts). */
export interface SampleProgress {
  /** Steps done, 1..total. */
  step: number;
  total: number;
  /** The timestep (σ) the model saw in this step. */
  timestep: number;
  /** Since the first step started (model calls included). */
  elapsedMs: number;
  /** Estimated time to the last step, from the mean step time so far. */
  etaMs: number;
  /** The f32 latents after this step, for previews: borrowed, valid until the callback (awaited) returns. */
  latents: Tensor;
  /** Per branch ([conditional, unconditional] under guidance, else one): whether the model ran this step (false: the step cache estimated it). */
  evaluated: boolean[];
  /** With a step cache: its estimate per branch (NaN where the step is always computed: the first two and the last). */
  estimates?: number[];
  /** Model evaluations so far (a branch of a step is one), of at most steps × branches. */
  evaluations: number;
  maxEvaluations: number;
}

export interface SampleOptions extends Partial<SamplerSettings> {
  /** Initial noise [B, F, C, H, W], any float dtype and device (copied; the caller keeps ownership). */
  latents?: Tensor;
  /** Or: generate the initial noise (generateNoise) with this seed and shape on the model's device. */
  noise?: { seed: number | bigint; shape: readonly number[] };
  text: TextConditioning;
  /** Settings not given come from this preset (default 'base'). */
  preset?: SamplerPresetName;
  /** Checked between steps, and passed to the model, which checks it between its blocks. */
  signal?: AbortSignal;
  /** Called (and awaited) after every step. */
  onProgress?: (progress: SampleProgress) => void | Promise<void>;
  /** Called as the model finishes each of its blocks (finer progress: a real step takes tens of seconds). */
  onBlock?: (progress: BlockProgress) => void;
  /** Skip model evaluations while the output is predictable (lib/sampler/cache.ts); off by default. */
  cache?: StepCacheOptions;
  /** A LoRA adapter the model applies for this run (lib/models/dit/lora.ts); borrowed. */
  lora?: LoraAdapter;
}

export interface BlockProgress {
  /** Steps done before this model call, 0..total − 1 (the call is step `step + 1`). */
  step: number;
  total: number;
  /** Blocks done in this model call, 1..blocks. */
  block: number;
  blocks: number;
}

/**
 * Runs the sampler: for i < steps, v = model(x_i, σ_i) (one call over [x, x] with the text rows
 * [prompt, negative] when cfgScale > 1, then v = v_u + g·(v_c − v_u)), x_{i+1} = x_i + v·(σ_{i+1} − σ_i)
 * with x in f32. Returns the final f32 latents [B, F, C, H, W] on the model's device (the caller
 * owns them). Rejects with ERR_ABORTED soon after `signal` fires, with every temporary freed.
 */
export async function sample<Context extends Disposable>(model: VelocityModel<Context>, options: SampleOptions): Promise<Tensor> {
  const { signal, onProgress, onBlock } = options;
  const settings = resolveSamplerSettings(options);
  const guidance = settings.cfgScale > 1;
  const shape = initialShape(options);
  const text = checkText(options.text, shape[0]!, guidance);
  const sigmas = flowMatchSigmas(settings.steps, settings.timeShift);
  throwIfAborted(signal, 'sampling');

  const device = model.device;
  const owned = new TensorScope();
  const branches = guidance ? 2 : 1;
  const batch = shape[0]!;
  let context: Context | undefined;
  let input: Tensor | undefined;
  let cache: StepCache | undefined;
  const branchContexts: (Context | undefined)[] = [];
  let evaluations = 0;
  try {
    const x = owned.track(await initialLatents(options, device));
    const y = owned.track(await onModel(options.text.y, text.rows, model));
    const clip = owned.track(await onModel(options.text.clip, text.rows, model));
    const lora = options.lora ? { lora: options.lora } : {};
    context = model.prepareContext({ y, clip, mask: text.mask, ...lora });
    input = modelInput(x, model.dtype, guidance);
    if (options.cache) {
      const probe = model.cacheProbe?.bind(model);
      cache = new StepCache(options.cache, branches, settings.steps, probe ? async (latents, t) => {
        using cast = ops.cast(latents, model.dtype);
        return probe(cast, t);
      } : undefined);
    }
    /** The context of one branch's rows, made when a step first computes that branch alone. */
    const contextOf = (b: number): Context => {
      const width = text.mask.length / text.rows;
      branchContexts[b] ??= (() => {
        using yRows = ops.slice(y, 0, b * batch, (b + 1) * batch);
        using clipRows = ops.slice(clip, 0, b * batch, (b + 1) * batch);
        return model.prepareContext({ y: yRows, clip: clipRows, mask: text.mask.slice(b * batch * width, (b + 1) * batch * width), ...lora });
      })();
      return branchContexts[b]!;
    };
    const started = performance.now();
    for (let i = 0; i < settings.steps; i++) {
      throwIfAborted(signal, 'sampling');
      const timestep = sigmas[i]!;
      const forwardOptions = {
        ...(signal ? { signal } : {}),
        ...(onBlock ? { onBlock: (done: number, blocks: number) => onBlock({ step: i, total: settings.steps, block: done, blocks }) } : {}),
      };
      const decision: CacheDecision = cache ? await cache.decide(i, x, timestep) : { compute: new Array<boolean>(branches).fill(true), estimates: new Array<number>(branches).fill(Number.NaN) };
      const velocity: Tensor = decision.compute.every(Boolean)
        ? await model.forward(input!, new Array<number>(text.rows).fill(timestep), context, forwardOptions)
        : await partlyCached(decision.compute, (b) => {
            using rows = ops.slice(input!, 0, b * batch, (b + 1) * batch);
            return model.forward(rows, new Array<number>(batch).fill(timestep), contextOf(b), forwardOptions);
          }, (b) => cache!.reused(b, x, model.dtype));
      evaluations += decision.compute.filter(Boolean).length;
      try {
        if (cache) {
          for (let b = 0; b < branches; b++) {
            if (!decision.compute[b]) continue;
            using rows = branches === 1 ? velocity.reshape(velocity.shape) : ops.slice(velocity, 0, b * batch, (b + 1) * batch);
            await cache.computed(b, x, rows);
          }
        }
        if (velocity.dtype !== model.dtype || !shapeEquals(velocity.shape, input!.shape)) {
          throw new StepVideoError('ERR_SHAPE', 'the model returned a velocity that does not match its input', {
            expected: `${model.dtype} ${formatShape(input!.shape)}`,
            got: `${velocity.dtype} ${formatShape(velocity.shape)}`,
          });
        }
        const next: Tensor | undefined = i + 1 < settings.steps ? Tensor.empty(input!.shape, model.dtype, device) : undefined;
        try {
          const dt = Math.fround(sigmas[i + 1]! - timestep);
          cfgEulerStep(x, velocity, { ...(guidance ? { guidanceScale: settings.cfgScale } : {}), dt, ...(next ? { nextInput: next } : {}) });
        } catch (error) {
          next?.dispose();
          throw error;
        }
        input!.dispose();
        input = next;
      } finally {
        velocity.dispose();
      }
      await device.synchronize(); // one step at a time on the queue: honest timings, prompt aborts
      if (onProgress) {
        const elapsedMs = performance.now() - started;
        const done = i + 1;
        await onProgress({
          step: done,
          total: settings.steps,
          timestep,
          elapsedMs,
          etaMs: (elapsedMs / done) * (settings.steps - done),
          latents: x,
          evaluated: decision.compute,
          ...(cache ? { estimates: decision.estimates } : {}),
          evaluations,
          maxEvaluations: settings.steps * branches,
        });
      }
    }
    return owned.keep(x);
  } catch (error) {
    // Let queued work finish before the memory goes, so the next job starts on an idle device.
    await device.synchronize().catch(() => undefined);
    if (signal?.aborted && !isStepVideoError(error, 'ERR_ABORTED')) {
      throw new StepVideoError('ERR_ABORTED', 'sampling aborted', { cause: error });
    }
    throw error;
  } finally {
    input?.dispose();
    context?.[Symbol.dispose]();
    for (const c of branchContexts) c?.[Symbol.dispose]();
    cache?.[Symbol.dispose]();
    owned.dispose();
  }
}

/** The velocity of a step where some branches were computed and the others estimated, in branch order. */
async function partlyCached(compute: readonly boolean[], run: (b: number) => Promise<Tensor>, estimate: (b: number) => Tensor): Promise<Tensor> {
  const parts: Tensor[] = [];
  try {
    for (const [b, computeThis] of compute.entries()) parts.push(computeThis ? await run(b) : estimate(b));
    return parts.length === 1 ? parts.pop()! : ops.concat(parts, 0);
  } finally {
    for (const part of parts) part.dispose();
  }
}

function initialShape(options: SampleOptions): readonly number[] {
  const { latents, noise } = options;
  if ((latents === undefined) === (noise === undefined)) {
    throw new StepVideoError('ERR_ARGUMENT', 'sample needs the initial latents or a noise seed, not both', {
      expected: '{ latents } or { noise: { seed, shape } }',
      got: latents === undefined ? 'neither' : 'both',
    });
  }
  const shape = latents?.shape ?? noise!.shape;
  if (shape.length !== 5 || shape.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new StepVideoError('ERR_SHAPE', 'the latents must be [B, F, C, H, W]', { got: formatShape(shape), tensor: 'latents' });
  }
  if (latents !== undefined && !isFloatDType(latents.dtype)) {
    throw new StepVideoError('ERR_DTYPE', 'the latents must be floating-point', { got: latents.dtype, tensor: 'latents' });
  }
  return shape;
}

/** A fresh f32 copy of the initial latents on `device`. */
async function initialLatents(options: SampleOptions, device: Device): Promise<Tensor> {
  if (options.noise) return generateNoise(options.noise.shape, options.noise.seed, device);
  const latents = options.latents!;
  if (latents.device === device) return ops.cast(latents, 'f32');
  using moved = await latents.to(device);
  return ops.cast(moved, 'f32');
}

/** The model input for the first step: x in the model dtype, twice under guidance ([x, x]). */
function modelInput(x: Tensor, dtype: 'f32' | 'bf16', guidance: boolean): Tensor {
  const single = ops.cast(x, dtype);
  if (!guidance) return single;
  using half = single;
  return ops.concat([half, half], 0);
}

/** The first `rows` rows of a text tensor as a new handle on the model's device, in its dtype. */
async function onModel(t: Tensor, rows: number, model: VelocityModel<Disposable>): Promise<Tensor> {
  const view = t.narrow(0, rows);
  if (view.device === model.device && view.dtype === model.dtype) return view;
  using source = view;
  if (source.device === model.device) return ops.cast(source, model.dtype);
  const moved = await source.to(model.device);
  if (moved.dtype === model.dtype) return moved;
  using wrongDType = moved;
  return ops.cast(wrongDType, model.dtype);
}

/** Validates the text conditioning against B videos; returns the rows the model gets and their mask. */
function checkText(text: TextConditioning, batch: number, guidance: boolean): { rows: number; mask: number[] } {
  const { y, clip, yMask } = text;
  for (const [name, t, layout] of [['y', y, '[rows, Ly, C0]'], ['clip', clip, '[rows, Lc, C1]']] as const) {
    if (t.ndim !== 3) throw new StepVideoError('ERR_SHAPE', `text.${name} must be ${layout}`, { got: formatShape(t.shape), tensor: name });
    if (!isFloatDType(t.dtype)) throw new StepVideoError('ERR_DTYPE', `text.${name} must be floating-point`, { got: t.dtype, tensor: name });
  }
  const given = y.shape[0]!;
  if (clip.shape[0] !== given) {
    throw new StepVideoError('ERR_SHAPE', 'text.y and text.clip must have the same rows', { expected: given, got: clip.shape[0], tensor: 'clip' });
  }
  const rows = guidance ? 2 * batch : batch;
  if (given !== rows && !(!guidance && given === 2 * batch)) {
    const expected = guidance
      ? `${rows} rows under guidance: ${batch} prompt(s), then ${batch} negative(s)`
      : `${batch} rows (or ${2 * batch}, the negative rows then unused)`;
    throw new StepVideoError('ERR_SHAPE', `the text rows do not fit ${batch} video(s)`, { expected, got: `${given} rows`, tensor: 'y' });
  }
  const clipLength = clip.shape[1]!;
  const width = clipLength + y.shape[1]!;
  if (yMask.length !== given * width) {
    throw new StepVideoError('ERR_SHAPE', 'text.yMask must be [rows, Lc + Ly]', { expected: `${given} × ${width} values`, got: `${yMask.length} values`, tensor: 'yMask' });
  }
  const mask = new Array<number>(rows * width);
  for (let r = 0; r < rows; r++) {
    let keep = true;
    for (let j = 0; j < width; j++) {
      const value = yMask[r * width + j]!;
      // A prefix mask: the model turns each row into a key length, so anything else would be misread.
      const valid = (value === 1 && keep) || (value === 0 && j >= clipLength);
      if (!valid) {
        throw new StepVideoError('ERR_ARGUMENT', `text.yMask row ${r} must be ${clipLength} CLIP ones, then ones, then zeros`, { got: `${value} at position ${j}`, tensor: 'yMask' });
      }
      keep = value === 1;
      mask[r * width + j] = value;
    }
  }
  return { rows, mask };
}
