// A test double for the DiT in sampler tests: the velocity is a fixed linear function of the
// input, the timestep and the batch row, v(x, t, r) = a·x + b·t + offset[r], computed with the
// library's ops on the model's device and dtype. It records every call, works through `blocks`
// pretend blocks (checking the AbortSignal between them, as the DiT does), and has hooks to
// misbehave. referenceSample() is the float64 loop the sampler must reproduce with this model.
import type { Device } from '../../lib/device.js';
import { roundBf16 } from '../../lib/dtype.js';
import { StepVideoError, throwIfAborted } from '../../lib/errors.js';
import * as ops from '../../lib/ops.js';
import type { VelocityConditioning, VelocityModel } from '../../lib/sampler/index.js';
import { flowMatchSigmas } from '../../lib/sampler/scheduler.js';
import type { Tensor } from '../../lib/tensor.js';

export interface RecordedCall {
  shape: number[];
  dtype: string;
  timestep: number[];
}

export interface RecordedConditioning {
  yShape: number[];
  clipShape: number[];
  dtype: string;
  mask: number[];
}

export class LinearVelocityModel implements VelocityModel {
  readonly calls: RecordedCall[] = [];
  readonly conditionings: RecordedConditioning[] = [];
  /** Contexts prepared and not yet disposed. */
  openContexts = 0;
  /** Called before each pretend block of each call (call index from 0). */
  onBlock: ((call: number, block: number) => void) | undefined;
  /** How an abort surfaces: the library's ERR_ABORTED, or a foreign error. */
  abortStyle: 'library' | 'foreign' = 'library';
  /** Returns one row too few (a broken model). */
  dropRow = false;

  constructor(
    readonly device: Device,
    readonly dtype: 'f32' | 'bf16',
    readonly params: { a: number; b: number; rowOffsets: readonly number[] },
    readonly blocks = 3,
  ) {}

  prepareContext(cond: VelocityConditioning): Disposable {
    this.conditionings.push({ yShape: [...cond.y.shape], clipShape: [...cond.clip.shape], dtype: cond.y.dtype, mask: Array.from(cond.mask) });
    this.openContexts++;
    let open = true;
    return {
      [Symbol.dispose]: () => {
        if (open) this.openContexts--;
        open = false;
      },
    };
  }

  async forward(
    latents: Tensor,
    timestep: readonly number[],
    _context: Disposable,
    options: { signal?: AbortSignal; onBlock?: (done: number, total: number) => void } = {},
  ): Promise<Tensor> {
    const call = this.calls.length;
    this.calls.push({ shape: [...latents.shape], dtype: latents.dtype, timestep: [...timestep] });
    for (let block = 0; block < this.blocks; block++) {
      this.onBlock?.(call, block);
      if (options.signal?.aborted) {
        if (this.abortStyle === 'foreign') throw new Error('cancelled by the model');
        throwIfAborted(options.signal, 'fake DiT forward');
      }
      await new Promise((resolve) => setImmediate(resolve));
      options.onBlock?.(block + 1, this.blocks);
    }
    const rows = this.dropRow ? latents.shape[0]! - 1 : latents.shape[0]!;
    const parts: Tensor[] = [];
    try {
      for (let r = 0; r < rows; r++) {
        using row = latents.narrow(r, 1);
        const offset = this.params.rowOffsets[r];
        if (offset === undefined) throw new StepVideoError('ERR_INTERNAL', `fake model has no offset for row ${r}`);
        parts.push(ops.affine(row, this.params.a, this.params.b * timestep[r]! + offset));
      }
      return ops.concat(parts, 0);
    } finally {
      for (const p of parts) p.dispose();
    }
  }
}

export interface ReferenceRun {
  latents: ArrayLike<number>;
  batch: number;
  steps: number;
  timeShift: number;
  cfgScale: number;
  params: { a: number; b: number; rowOffsets: readonly number[] };
  /**
   * f32: the model input rounded to f32, everything else exact. bf16: the official bf16 path
   * emulated: input, model output and each guidance operation rounded to bf16, Euler in f32.
   */
  modelDType: 'f32' | 'bf16';
  /** Receives the latents after each step (1-based). */
  afterStep?: (step: number, x: Float64Array) => void;
}

/** The sampler's loop over the linear model (timesteps and dt as the float32 schedule). */
export function referenceSample(run: ReferenceRun): Float64Array {
  const { batch, steps, cfgScale, params, modelDType } = run;
  const x = Float64Array.from(run.latents);
  const perItem = x.length / batch;
  const sigmas = flowMatchSigmas(steps, run.timeShift);
  const guidance = cfgScale > 1;
  const f = Math.fround;
  const bf16 = modelDType === 'bf16';
  // bf16: the model computes a·x + beta in f32 (beta = b·t + offset, an f32 argument) and rounds once.
  const velocity = (input: number, t: number, row: number): number =>
    bf16 ? roundBf16(f(f(params.a) * input + f(params.b * t + params.rowOffsets[row]!))) : params.a * input + params.b * t + params.rowOffsets[row]!;
  for (let i = 0; i < steps; i++) {
    const t = sigmas[i]!;
    const dt = f(sigmas[i + 1]! - t);
    for (let b = 0; b < batch; b++) {
      for (let j = 0; j < perItem; j++) {
        const k = b * perItem + j;
        const input = bf16 ? roundBf16(x[k]!) : f(x[k]!);
        const cond = velocity(input, t, b);
        let v = cond;
        if (guidance) {
          const uncond = velocity(input, t, batch + b);
          v = bf16 ? roundBf16(f(uncond + roundBf16(f(cfgScale * roundBf16(f(cond - uncond)))))) : uncond + cfgScale * (cond - uncond);
        }
        x[k] = bf16 ? f(x[k]! + f(v * dt)) : x[k]! + v * dt;
      }
    }
    run.afterStep?.(i + 1, x);
  }
  return x;
}
