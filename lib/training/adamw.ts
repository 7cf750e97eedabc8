// AdamW (Loshchilov & Hutter, decoupled weight decay) on f32 master weights, with gradient clipping
// by the global norm, on the device through the elementwise ops (CPU twin and CUDA alike). The
// moments are f32 tensors by parameter name; they are saved with a checkpoint and restored on resume.
import { StepVideoError } from '../errors.js';
import type { HostTensor } from '../io/safetensors.js';
import * as ops from '../ops.js';
import { Tensor } from '../tensor.js';
import type { Device } from '../device.js';

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Clip the gradients' global L2 norm to this (0: no clipping). Default 1. */
  maxGradNorm?: number;
}

export interface AdamWStep {
  /** The global L2 norm of the gradients before clipping. */
  gradNorm: number;
  clipped: boolean;
}

export class AdamW implements Disposable {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly maxGradNorm: number;
  /** Updates taken so far. */
  steps = 0;
  readonly #m = new Map<string, Tensor>();
  readonly #v = new Map<string, Tensor>();

  constructor(options: AdamWOptions) {
    this.lr = options.lr;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    this.maxGradNorm = options.maxGradNorm ?? 1;
    for (const [name, value, ok] of [
      ['lr', this.lr, this.lr > 0],
      ['beta1', this.beta1, this.beta1 >= 0 && this.beta1 < 1],
      ['beta2', this.beta2, this.beta2 >= 0 && this.beta2 < 1],
      ['eps', this.eps, this.eps > 0],
      ['weight decay', this.weightDecay, this.weightDecay >= 0],
      ['max gradient norm', this.maxGradNorm, this.maxGradNorm >= 0],
    ] as const) {
      if (!ok || !Number.isFinite(value)) throw new StepVideoError('ERR_ARGUMENT', `AdamW: invalid ${name}`, { got: value });
    }
  }

  /**
   * One update: params[name] ← the updated f32 tensor (the old one disposed) for every name of
   * `grads` (f32, same shapes). Throws ERR_NOT_FINITE, changing nothing, when a gradient is not finite.
   */
  async update(params: Map<string, Tensor>, grads: ReadonlyMap<string, Tensor>, lr = this.lr): Promise<AdamWStep> {
    for (const [name, g] of grads) {
      const p = params.get(name);
      if (p === undefined || p.dtype !== 'f32' || g.dtype !== 'f32' || p.numel !== g.numel) {
        throw new StepVideoError('ERR_SHAPE', `AdamW: gradient '${name}' does not match an f32 parameter`, { tensor: name });
      }
    }
    const gradNorm = Math.sqrt(await sumOfSquares([...grads.values()]));
    if (!Number.isFinite(gradNorm)) throw new StepVideoError('ERR_NOT_FINITE', 'AdamW: the gradients are not finite; the step was skipped', { got: gradNorm });
    const clip = this.maxGradNorm > 0 && gradNorm > this.maxGradNorm ? this.maxGradNorm / (gradNorm + 1e-6) : 1;
    const t = this.steps + 1;
    const [b1, b2] = [this.beta1, this.beta2];
    for (const [name, g] of grads) {
      const p = params.get(name)!;
      using gc = ops.scale(g, clip);
      const m0 = this.#m.get(name);
      const v0 = this.#v.get(name);
      // m ← β1·m + (1 − β1)·g, v ← β2·v + (1 − β2)·g² (the first step from zero moments).
      using mDecay = m0 ? ops.scale(m0, b1) : undefined;
      using mNew = ops.scale(gc, 1 - b1);
      const m = mDecay ? ops.add(mDecay, mNew) : mNew.clone();
      using g2 = ops.square(gc);
      using vDecay = v0 ? ops.scale(v0, b2) : undefined;
      using vNew = ops.scale(g2, 1 - b2);
      const v = vDecay ? ops.add(vDecay, vNew) : vNew.clone();
      // p ← p·(1 − lr·wd) − lr·m̂ / (√v̂ + ε), m̂ = m / (1 − β1^t), v̂ = v / (1 − β2^t).
      using vHat = ops.scale(v, 1 / (1 - b2 ** t));
      using root = ops.sqrt(vHat);
      using denom = ops.affine(root, 1, this.eps);
      using mHat = ops.scale(m, lr / (1 - b1 ** t));
      using change = ops.div(mHat, denom);
      using decayed = ops.scale(p, 1 - lr * this.weightDecay);
      params.set(name, ops.sub(decayed, change));
      p.dispose();
      m0?.dispose();
      v0?.dispose();
      this.#m.set(name, m);
      this.#v.set(name, v);
    }
    this.steps = t;
    return { gradNorm, clipped: clip < 1 };
  }

  /** The moments as host tensors ('adamw.m.<name>', 'adamw.v.<name>'). */
  async stateTensors(): Promise<Map<string, HostTensor>> {
    const out = new Map<string, HostTensor>();
    for (const [kind, map] of [['m', this.#m], ['v', this.#v]] as const)
      for (const [name, t] of map) out.set(`adamw.${kind}.${name}`, { dtype: 'f32', shape: [...t.shape], data: await t.toFloat32() });
    return out;
  }

  /** Restores the moments saved by stateTensors and the step count. */
  loadState(tensors: ReadonlyMap<string, HostTensor>, steps: number, device: Device): void {
    for (const [name, host] of tensors) {
      const match = /^adamw\.([mv])\.(.+)$/.exec(name);
      if (!match) continue;
      const map = match[1] === 'm' ? this.#m : this.#v;
      map.get(match[2]!)?.dispose();
      map.set(match[2]!, Tensor.from(host.data as Float32Array, host.shape, { dtype: 'f32', device }));
    }
    this.steps = steps;
  }

  dispose(): void {
    for (const map of [this.#m, this.#v]) {
      for (const t of map.values()) t.dispose();
      map.clear();
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Σ of every element squared over the tensors: summed on the device, read back once (one wait per step, not one per tensor). */
export async function sumOfSquares(tensors: readonly Tensor[]): Promise<number> {
  let total: Tensor | undefined;
  try {
    for (const t of tensors) {
      using flat = t.reshape(-1);
      using squared = ops.square(flat);
      const sum = ops.sum(squared, 0);
      if (total === undefined) {
        total = sum;
        continue;
      }
      using previous = total;
      using part = sum;
      total = ops.add(previous, part);
    }
    return total === undefined ? 0 : (await total.toFloat32())[0]!;
  } finally {
    total?.dispose();
  }
}
