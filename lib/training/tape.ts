// A small reverse-mode tape over the library's ops: exactly the operations of the DiT block's
// forward, each recorded with its backward, so that one recomputed block (gradient checkpointing,
// lib/training/dit-backward.ts) can be differentiated. Not a general autograd framework: tensors
// are identified by object, gradients flow only into tensors the tape produced or was told to
// watch, and every forward value stays alive until the tape is disposed (one block's worth).
// Each op's backward uses the backward kernels of its family (attentionBackward, layerNormBackward,
// splitHeadsBackward, geluTanhBackward) or plain GEMMs, so it runs on the CPU twin and on CUDA.
import { StepVideoError } from '../errors.js';
import { type AttentionOptions, attention, attentionBackward } from '../kernels/attention.js';
import { type Fp8Weight, dequantizeFp8 } from '../kernels/fp8.js';
import { type LayerNormOptions, layerNorm, layerNormBackward } from '../kernels/norm.js';
import { gatedResidual } from '../kernels/residual.js';
import { type HeadPart, type SplitHeadsOptions, splitHeads, splitHeadsBackward } from '../kernels/split-heads.js';
import type { LoraEntry } from '../models/dit/lora.js';
import * as ops from '../ops.js';
import { Tensor } from '../tensor.js';

/** A Linear's weight as the DiT holds it: in the compute dtype, or FP8 (dequantized for the backward). */
export type TapeWeight = Tensor | Fp8Weight;

export class Tape implements Disposable {
  readonly #steps: Array<() => void> = [];
  readonly #grads = new Map<Tensor, Tensor>();
  /** Tensors gradients may flow into: op outputs and watched leaves. */
  readonly #tracked = new Set<Tensor>();
  /** Every tensor the tape made or was given to keep; freed with the tape. */
  readonly #owned: Tensor[] = [];
  #ran = false;

  /** Marks a leaf (an input the caller owns, or a parameter) as wanting its gradient. */
  watch<T extends Tensor>(t: T): T {
    this.#tracked.add(t);
    return t;
  }

  /** Keeps a constant the forward made (modulation rows, say) alive until the tape is disposed. */
  keep<T extends Tensor>(t: T): T {
    this.#owned.push(t);
    return t;
  }

  /** Whether a gradient can reach t. */
  tracks(t: Tensor): boolean {
    return this.#tracked.has(t);
  }

  /** Records op output t (owned by the tape from now on) and the step that propagates its gradient. */
  #output<T extends Tensor>(t: T, step: () => void, differentiable: boolean): T {
    this.#owned.push(t);
    if (differentiable) {
      this.#tracked.add(t);
      this.#steps.push(step);
    }
    return t;
  }

  /** Adds g into t's gradient, taking ownership of g (dropped when no gradient is wanted for t). */
  accumulate(t: Tensor, g: Tensor): void {
    if (!this.#tracked.has(t)) {
      g.dispose();
      return;
    }
    const previous = this.#grads.get(t);
    if (previous === undefined) {
      this.#grads.set(t, g);
      return;
    }
    this.#grads.set(t, ops.add(previous, g));
    previous.dispose();
    g.dispose();
  }

  /** Removes and returns t's gradient (the caller owns it); undefined when none reached t. */
  take(t: Tensor): Tensor | undefined {
    const g = this.#grads.get(t);
    this.#grads.delete(t);
    return g;
  }

  /** Runs the recorded steps in reverse from d(output) = seed (borrowed). Once per tape. */
  backward(output: Tensor, seed: Tensor): void {
    if (this.#ran) throw new StepVideoError('ERR_ARGUMENT', 'a tape runs its backward once');
    if (!this.#tracked.has(output)) throw new StepVideoError('ERR_ARGUMENT', 'backward from a tensor the tape did not record');
    if (seed.dtype !== output.dtype || seed.shape.some((d, i) => d !== output.shape[i]) || seed.ndim !== output.ndim) {
      throw new StepVideoError('ERR_SHAPE', "the backward's seed must match its output", { expected: `${output.dtype} [${output.shape.join(', ')}]`, got: `${seed.dtype} [${seed.shape.join(', ')}]` });
    }
    this.#ran = true;
    this.accumulate(output, seed.clone());
    for (let i = this.#steps.length - 1; i >= 0; i--) this.#steps[i]!();
  }

  dispose(): void {
    for (const g of this.#grads.values()) g.dispose();
    this.#grads.clear();
    for (const t of this.#owned) t.dispose();
    this.#owned.length = 0;
    this.#steps.length = 0;
    this.#tracked.clear();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Runs `body` with the gradient of `t` when one arrived (freed after). */
  #withGrad(t: Tensor, body: (g: Tensor) => void): void {
    const g = this.take(t);
    if (g === undefined) return;
    try {
      body(g);
    } finally {
      g.dispose();
    }
  }

  // ---- ops ----

  /** A view of x with another shape. */
  reshape(x: Tensor, shape: readonly number[]): Tensor {
    const y = x.reshape([...shape]);
    return this.#output(y, () => this.#withGrad(y, (g) => this.accumulate(x, g.reshape([...x.shape]))), this.tracks(x));
  }

  /** a + b (same shape). */
  add(a: Tensor, b: Tensor): Tensor {
    const y = ops.add(a, b);
    return this.#output(
      y,
      () =>
        this.#withGrad(y, (g) => {
          this.accumulate(a, g.clone());
          this.accumulate(b, g.clone());
        }),
      this.tracks(a) || this.tracks(b),
    );
  }

  /** x + gate ⊙ y, gate [B, D] over the rows of each batch item of x, y [B, N, D] (or x + y without a gate). Gates are constants. */
  gatedResidual(x: Tensor, y: Tensor, gate?: Tensor): Tensor {
    const out = gatedResidual(x, y, gate);
    return this.#output(
      out,
      () =>
        this.#withGrad(out, (g) => {
          this.accumulate(x, g.clone());
          this.accumulate(y, gate ? mulRows(g, gate) : g.clone());
        }),
      this.tracks(x) || this.tracks(y),
    );
  }

  /** out + gate ⊙ delta, as two ops (the inference's order when a LoRA's delta is gated in after the base product). */
  gatedAdd(out: Tensor, delta: Tensor, gate?: Tensor): Tensor {
    if (gate === undefined) return this.add(out, delta);
    const gated = mulRows(delta, gate);
    const y = ops.add(out, gated);
    gated.dispose();
    return this.#output(
      y,
      () =>
        this.#withGrad(y, (g) => {
          this.accumulate(out, g.clone());
          this.accumulate(delta, mulRows(g, gate));
        }),
      this.tracks(out) || this.tracks(delta),
    );
  }

  geluTanh(x: Tensor): Tensor {
    const y = ops.geluTanh(x);
    return this.#output(y, () => this.#withGrad(y, (g) => this.accumulate(x, ops.geluTanhBackward(g, x))), this.tracks(x));
  }

  layerNorm(x: Tensor, options: LayerNormOptions): Tensor {
    const y = layerNorm(x, options);
    const { weight, scale, eps } = options;
    return this.#output(
      y,
      () => this.#withGrad(y, (g) => this.accumulate(x, layerNormBackward(g, x, { ...(weight ? { weight } : {}), ...(scale ? { scale } : {}), eps }))),
      this.tracks(x),
    );
  }

  /**
   * x [..., in] · Wᵀ (+ bias) through `product` (the DiT's own Linear, so FP8 weights compute as in
   * inference). The weight and bias are constants: the gradient goes to x only.
   */
  linear(x: Tensor, weight: TapeWeight, product: (x: Tensor) => Tensor): Tensor {
    const y = product(x);
    return this.#output(y, () => this.#withGrad(y, (g) => this.accumulate(x, linearInputGrad(g, weight, x))), this.tracks(x));
  }

  /** A LoRA adapter's s·(x·Aᵀ)·Bᵀ (as lora.ts's loraDelta computes it): gradients into x, A and B where tracked. */
  loraDelta(x: Tensor, lora: LoraEntry): Tensor {
    const down = this.keep(ops.linear(x, lora.a));
    using up = ops.linear(down, lora.b);
    const delta = ops.scale(up, lora.scale);
    return this.#output(
      delta,
      () =>
        this.#withGrad(delta, (g) => {
          using g2 = g.reshape(-1, g.size(-1));
          using x2 = x.reshape(-1, x.size(-1));
          using down2 = down.reshape(-1, down.size(-1));
          // dB = s·gᵀ·down, d(down) = s·g·B, dA = d(down)ᵀ·x, dx = d(down)·A.
          if (this.tracks(lora.b)) this.accumulate(lora.b, transposedProduct(g2, down2, lora.scale));
          using dDown = ops.matmul(g2, lora.b, { alpha: lora.scale });
          if (this.tracks(lora.a)) this.accumulate(lora.a, transposedProduct(dDown, x2, 1));
          if (this.tracks(x)) {
            using dx = ops.matmul(dDown, lora.a);
            this.accumulate(x, dx.reshape([...x.shape]));
          }
        }),
      this.tracks(x) || this.tracks(lora.a) || this.tracks(lora.b),
    );
  }

  /** splitHeads on the tape: the parts it returns carry gradients back into proj. */
  splitHeads(proj: Tensor, options: SplitHeadsOptions): Partial<Record<HeadPart, Tensor>> {
    const parts = splitHeads(proj, options);
    const entries = Object.entries(parts) as Array<[HeadPart, Tensor]>;
    const differentiable = this.tracks(proj);
    for (const [, t] of entries) {
      this.#owned.push(t);
      if (differentiable) this.#tracked.add(t);
    }
    if (differentiable) {
      this.#steps.push(() => {
        const grads: Partial<Record<HeadPart, Tensor>> = {};
        for (const [part, t] of entries) {
          const g = this.take(t);
          if (g !== undefined) grads[part] = g;
        }
        const given = Object.values(grads);
        if (given.length === 0) return;
        try {
          this.accumulate(proj, splitHeadsBackward(grads, proj, options));
        } finally {
          for (const g of given) g.dispose();
        }
      });
    }
    return parts;
  }

  /** Attention (non-causal; a kvLen prefix mask allowed): gradients into q, k and v where tracked. */
  attention(q: Tensor, k: Tensor, v: Tensor, options: Pick<AttentionOptions, 'kvLen' | 'scale'> = {}): Tensor {
    const out = attention(q, k, v, options);
    return this.#output(
      out,
      () =>
        this.#withGrad(out, (g) => {
          const { dq, dk, dv } = attentionBackward(q, k, v, out, g, options);
          this.accumulate(q, dq);
          this.accumulate(k, dk);
          this.accumulate(v, dv);
        }),
      this.tracks(q) || this.tracks(k) || this.tracks(v),
    );
  }
}

/** g ⊙ gate broadcast over the rows of each batch item: g [B, N, D], gate [B, D]. */
function mulRows(g: Tensor, gate: Tensor): Tensor {
  using rows = gate.reshape(gate.size(0), 1, gate.size(-1));
  return ops.mul(g, rows);
}

/** d(x·Wᵀ)/dx · g = g·W, shaped as x (W dequantized when held as FP8). */
function linearInputGrad(g: Tensor, weight: TapeWeight, x: Tensor): Tensor {
  using dense = weight instanceof Tensor ? undefined : dequantizeFp8(weight, x.dtype as 'f32' | 'bf16');
  using g2 = g.reshape(-1, g.size(-1));
  using dx = ops.matmul(g2, dense ?? (weight as Tensor));
  return dx.reshape([...x.shape]);
}

/** alpha·aᵀ·b for row-major a [rows, m], b [rows, n] → [m, n]. */
function transposedProduct(a: Tensor, b: Tensor, alpha: number): Tensor {
  using aT = ops.permute(a, [1, 0]);
  return ops.matmul(aT, b, { alpha });
}
