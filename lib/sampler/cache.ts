// Step caching: model evaluations skipped while the output is predictable from the last one.
//
// Both methods reuse the last *transformation* of a branch, Δ = v − x (velocity minus the input
// latents at the step it was computed), as v ≈ x_t + Δ at a skipped step: the model's output moves
// with its input, so the difference is what stays nearly constant (EasyCache, Zhou et al. 2025;
// the same idea as TeaCache's reused residual, Liu et al. 2024, taken at the sampler's level).
// They differ in how they decide:
//
// - 'auto' (calibration-free, in the manner of EasyCache): after two computed steps a branch knows
//   its transformation rate k = ‖v_a − v_b‖ / ‖x_a − x_b‖ (output change per input change, L2).
//   Each later step adds k·‖x_t − x_{t−1}‖ / ‖v_last‖, the output's estimated relative change, to
//   an accumulator; while it stays under the threshold the step is skipped, else computed (and the
//   accumulator, k and Δ renewed).
// - 'teacache' (TeaCache-style): the signal is the relative L1 change of the timestep-modulated
//   input of the first block (the model's cacheProbe) from one step to the next, mapped through a
//   polynomial fitted on this model (stepvideo calibrate-cache) to the relative change of the
//   output, and accumulated in the same way.
//
// Under classifier-free guidance each branch (conditional, unconditional) keeps its own state and
// decides alone: a step may compute one branch and reuse the other. The first two steps and the
// last are always computed. Every decision is reported with its estimate.
import { StepVideoError } from '../errors.js';
import * as ops from '../ops.js';
import type { Tensor } from '../tensor.js';

export type CacheMethod = 'auto' | 'teacache';
export const CACHE_METHODS: readonly CacheMethod[] = ['auto', 'teacache'];

/** The thresholds used when none is given: the methods' usual operating points. */
export const DEFAULT_CACHE_THRESHOLDS: Readonly<Record<CacheMethod, number>> = Object.freeze({ auto: 0.05, teacache: 0.1 });

/** TeaCache coefficients per branch: a polynomial, highest power first (numpy.polyval order). */
export interface TeaCacheCoefficients {
  cond: number[];
  uncond: number[];
}

export interface StepCacheOptions {
  method: CacheMethod;
  /** Accumulated estimated relative change allowed before a branch is computed again. */
  threshold?: number;
  /** Required for 'teacache' (from stepvideo calibrate-cache). */
  coefficients?: TeaCacheCoefficients;
}

/** '<method>[:threshold]', as --cache and the API take it. */
export function parseCacheSpec(text: string): StepCacheOptions {
  const [method, threshold, ...rest] = text.split(':');
  if (!(CACHE_METHODS as readonly string[]).includes(method!) || rest.length > 0) {
    throw new StepVideoError('ERR_ARGUMENT', `unknown step cache '${text}'`, { expected: `${CACHE_METHODS.join(' | ')}, optionally :threshold (e.g. auto:0.05)` });
  }
  if (threshold === undefined) return { method: method as CacheMethod };
  const value = Number(threshold);
  if (threshold.trim() === '' || !Number.isFinite(value) || value <= 0 || value > 10) {
    throw new StepVideoError('ERR_ARGUMENT', `the step cache threshold must be a number in (0, 10] (got '${threshold}')`);
  }
  return { method: method as CacheMethod, threshold: value };
}

/** One step's decision: per branch whether the model runs, and the estimate that decided it (NaN when forced). */
export interface CacheDecision {
  compute: boolean[];
  estimates: number[];
}

/** What the sampler measures before deciding a step (per branch where it differs). */
export interface StepSignals {
  /** ‖x_t − x_{t−1}‖₂ over each branch's rows (the same latents feed both branches). */
  inputChange: number;
  /** TeaCache: relative L1 change of the modulated input from the previous step. */
  probeChange?: number;
}

interface BranchState {
  /** Steps since this branch was computed, and the accumulated estimate since. */
  accumulated: number;
  computedSteps: number;
  /** 'auto': the transformation rate from the last two computes, and ‖v_last‖. */
  rate: number;
  outputNorm: number;
}

export function polyval(coefficients: readonly number[], x: number): number {
  let y = 0;
  for (const c of coefficients) y = y * x + c;
  return y;
}

/** The decision logic, on numbers only (the sampler keeps the tensors and measures the norms). */
export class StepCachePolicy {
  readonly method: CacheMethod;
  readonly threshold: number;
  readonly #coefficients: readonly number[][];
  readonly #branches: BranchState[];
  readonly #steps: number;

  constructor(options: StepCacheOptions, branches: number, steps: number) {
    this.method = options.method;
    this.threshold = options.threshold ?? DEFAULT_CACHE_THRESHOLDS[options.method];
    if (this.method === 'teacache') {
      const c = options.coefficients;
      if (c === undefined || !Array.isArray(c.cond) || !Array.isArray(c.uncond) || c.cond.length === 0 || c.uncond.length === 0 || [...c.cond, ...c.uncond].some((v) => !Number.isFinite(v))) {
        throw new StepVideoError('ERR_ARGUMENT', "the 'teacache' step cache needs this model's coefficients: run `stepvideo calibrate-cache --model DIR` (or use --cache auto, which needs none)");
      }
      // Branch 0 is the conditional row block, branch 1 the unconditional one.
      this.#coefficients = branches === 1 ? [c.cond] : [c.cond, c.uncond];
    } else {
      this.#coefficients = [];
    }
    this.#branches = Array.from({ length: branches }, () => ({ accumulated: 0, computedSteps: 0, rate: Number.NaN, outputNorm: Number.NaN }));
    this.#steps = steps;
  }

  get branches(): number {
    return this.#branches.length;
  }

  /** Decides step `step` (0-based). */
  decide(step: number, signals: StepSignals): CacheDecision {
    const compute: boolean[] = [];
    const estimates: number[] = [];
    for (const [b, state] of this.#branches.entries()) {
      // Two computes give 'auto' its rate; the last step shapes the final latents, so it is never guessed.
      if (step < 2 || step === this.#steps - 1 || state.computedSteps < 2) {
        compute.push(true);
        estimates.push(Number.NaN);
        continue;
      }
      const increment =
        this.method === 'auto'
          ? (state.rate * signals.inputChange) / Math.max(state.outputNorm, 1e-12)
          : Math.max(0, polyval(this.#coefficients[b]!, requireSignal(signals.probeChange)));
      const estimate = state.accumulated + increment;
      const skip = Number.isFinite(estimate) && estimate < this.threshold;
      compute.push(!skip);
      estimates.push(estimate);
      if (skip) state.accumulated = estimate;
    }
    return { compute, estimates };
  }

  /** After branch `b` was computed: its new rate (‖Δv‖ / ‖Δx‖ against its previous compute; NaN the first time) and ‖v‖. */
  computed(b: number, rate: number, outputNorm: number): void {
    const state = this.#branches[b]!;
    state.accumulated = 0;
    state.computedSteps++;
    if (Number.isFinite(rate)) state.rate = rate;
    state.outputNorm = outputNorm;
  }
}

function requireSignal(value: number | undefined): number {
  if (value === undefined || !Number.isFinite(value)) throw new StepVideoError('ERR_ARGUMENT', "the 'teacache' step cache needs a model with a cache probe (the DiT's modulated input)");
  return value;
}

/**
 * The tensors behind the policy, for one sampling run: per branch the latents and the f32 output at
 * its last compute, and the latents of the previous step. Latents are the sampler's f32 x [B, ...]
 * (both branches see the same x); outputs are a branch's rows of the model's velocity.
 */
export class StepCache implements Disposable {
  readonly policy: StepCachePolicy;
  readonly #probe: ((x: Tensor, timestep: number) => Promise<Float32Array>) | undefined;
  readonly #inputAt: (Tensor | undefined)[];
  readonly #outputAt: (Tensor | undefined)[];
  #previousInput: Tensor | undefined;
  #previousProbe: Float32Array | undefined;

  constructor(options: StepCacheOptions, branches: number, steps: number, probe?: (x: Tensor, timestep: number) => Promise<Float32Array>) {
    this.policy = new StepCachePolicy(options, branches, steps);
    if (this.policy.method === 'teacache' && probe === undefined) requireSignal(undefined);
    this.#probe = probe;
    this.#inputAt = new Array<Tensor | undefined>(branches).fill(undefined);
    this.#outputAt = new Array<Tensor | undefined>(branches).fill(undefined);
  }

  /** Measures this step's signals from x (the latents it starts from) and decides it. */
  async decide(step: number, x: Tensor, timestep: number): Promise<CacheDecision> {
    // Only 'auto' reads the latents' change and the output norms; 'teacache' reads its probe instead.
    let inputChange = Number.NaN;
    if (this.policy.method === 'auto') {
      if (this.#previousInput) inputChange = await distance(x, this.#previousInput);
      this.#previousInput?.dispose();
      this.#previousInput = ops.cast(x, 'f32');
    }
    let probeChange: number | undefined;
    if (this.policy.method === 'teacache') {
      const probe = await this.#probe!(x, timestep);
      if (this.#previousProbe) probeChange = relativeL1(probe, this.#previousProbe);
      this.#previousProbe = probe;
    }
    return this.policy.decide(step, { inputChange, ...(probeChange !== undefined ? { probeChange } : {}) });
  }

  /** Branch b was computed at x with output `velocity` (its rows, any float dtype): renews its state. */
  async computed(b: number, x: Tensor, velocity: Tensor): Promise<void> {
    const output = ops.cast(velocity, 'f32');
    try {
      const before = this.#outputAt[b];
      if (this.policy.method === 'auto') {
        const rate = before ? (await distance(output, before)) / Math.max(await distance(x, this.#inputAt[b]!), 1e-30) : Number.NaN;
        this.policy.computed(b, rate, await norm(output));
      } else {
        this.policy.computed(b, Number.NaN, Number.NaN);
      }
    } catch (error) {
      output.dispose();
      throw error;
    }
    this.#outputAt[b]?.dispose();
    this.#inputAt[b]?.dispose();
    this.#outputAt[b] = output;
    this.#inputAt[b] = ops.cast(x, 'f32');
  }

  /** Branch b's output at x estimated as x + (v_last − x_last), in `dtype`. */
  reused(b: number, x: Tensor, dtype: 'f32' | 'bf16'): Tensor {
    using transformation = ops.sub(this.#outputAt[b]!, this.#inputAt[b]!);
    using estimate = ops.add(x, transformation);
    return ops.cast(estimate, dtype);
  }

  [Symbol.dispose](): void {
    for (const t of [...this.#inputAt, ...this.#outputAt, this.#previousInput]) t?.dispose();
    this.#previousInput = undefined;
    this.#inputAt.fill(undefined);
    this.#outputAt.fill(undefined);
  }
}

/** ‖t‖₂ over every element, read back as a number. */
async function norm(t: Tensor): Promise<number> {
  using flat = t.reshape(1, t.numel);
  using squared = ops.square(flat);
  using total = ops.sum(squared, 1);
  return Math.sqrt((await total.toFloat32())[0]!);
}

async function distance(a: Tensor, b: Tensor): Promise<number> {
  using difference = ops.sub(a, b);
  return norm(difference);
}

/** Σ|a − b| / Σ|b| (TeaCache's relative L1). */
export function relativeL1(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += Math.abs(a[i]! - b[i]!);
    den += Math.abs(b[i]!);
  }
  return den > 0 ? num / den : Number.POSITIVE_INFINITY;
}
