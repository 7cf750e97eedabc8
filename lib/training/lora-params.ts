// The LoRA parameters being trained: f32 master weights on the model's device, by
// "<block>.<linear>", with the compute copy (an inference LoraAdapter in the model dtype) made from
// them each step, and the PEFT/diffusers names they are saved under (lora.ts documents them).
// Initialisation as PEFT's default: A random, B zero, so a new adapter changes nothing at first.
import type { Device } from '../device.js';
import { StepVideoError } from '../errors.js';
import type { HostTensor } from '../io/safetensors.js';
import { randomNormal } from '../kernels/random.js';
import type { DiTConfig } from '../models/dit/config.js';
import { LORA_LINEARS, LoraAdapter, type LoraEntry, type LoraLinear, loraLinearShapes } from '../models/dit/lora.js';
import * as ops from '../ops.js';
import { Tensor } from '../tensor.js';
import type { AdamW, AdamWStep } from './adamw.js';

export interface LoraInitOptions {
  rank: number;
  /** Scale alpha / rank (default alpha = rank). */
  alpha?: number;
  /** The Linears of every block to adapt (default all seven). */
  targets?: readonly LoraLinear[];
  seed: number;
  device: Device;
}

export interface LoraParam {
  a: Tensor;
  b: Tensor;
}

export class TrainableLora implements Disposable {
  readonly rank: number;
  readonly alpha: number;
  readonly device: Device;
  /** f32 masters by "<block>.<linear>" (replaced, not mutated, by the optimizer). */
  readonly params: Map<string, LoraParam>;

  private constructor(rank: number, alpha: number, device: Device, params: Map<string, LoraParam>) {
    this.rank = rank;
    this.alpha = alpha;
    this.device = device;
    this.params = params;
  }

  /**
   * A new adapter: A [r, in] ~ N(0, 1/in) from the library's seeded Philox stream (the same on
   * the CPU and CUDA; each tensor at its own offset of the seed's stream), B [out, r] = 0.
   */
  static init(config: DiTConfig, options: LoraInitOptions): TrainableLora {
    const { rank, seed, device } = options;
    const alpha = options.alpha ?? rank;
    if (!Number.isInteger(rank) || rank < 1) throw new StepVideoError('ERR_ARGUMENT', 'the LoRA rank must be a positive integer', { got: rank });
    if (!(alpha > 0) || !Number.isFinite(alpha)) throw new StepVideoError('ERR_ARGUMENT', 'the LoRA alpha must be a positive number', { got: alpha });
    const targets = options.targets ?? LORA_LINEARS;
    const shapes = loraLinearShapes(config);
    const params = new Map<string, LoraParam>();
    let offset = 0;
    try {
      for (let block = 0; block < config.numLayers; block++)
        for (const linear of targets) {
          const [inDim, outDim] = shapes[linear];
          using raw = randomNormal([rank, inDim], { seed, offset, device });
          offset += rank * inDim;
          params.set(`${block}.${linear}`, { a: ops.scale(raw, 1 / Math.sqrt(inDim)), b: Tensor.zeros([outDim, rank], 'f32', device) });
        }
    } catch (error) {
      for (const p of params.values()) [p.a, p.b].forEach((t) => t.dispose());
      throw error;
    }
    return new TrainableLora(rank, alpha, device, params);
  }

  /** From saved tensors (a LoRA file or a checkpoint's adapter part; names as lora.ts reads them). */
  static fromTensors(tensors: Map<string, HostTensor>, options: { config: DiTConfig; device: Device; source?: string }): TrainableLora {
    using adapter = LoraAdapter.fromTensors(tensors, { config: options.config, device: options.device, dtype: 'f32', ...(options.source ? { source: options.source } : {}) });
    const params = new Map<string, LoraParam>();
    const scales = new Set<number>();
    for (const [key, e] of adapter.entries()) {
      params.set(key, { a: e.a.clone(), b: e.b.clone() });
      scales.add(e.scale * e.a.size(0));
    }
    const ranks = new Set([...params.values()].map((p) => p.a.size(0)));
    if (ranks.size !== 1 || scales.size !== 1) {
      for (const p of params.values()) [p.a, p.b].forEach((t) => t.dispose());
      throw new StepVideoError('ERR_WEIGHTS_FORMAT', 'training continues an adapter with one rank and one alpha for every Linear', { ...(options.source ? { file: options.source } : {}), got: `ranks ${[...ranks].join(', ')}, alphas ${[...scales].join(', ')}` });
    }
    return new TrainableLora([...ranks][0]!, [...scales][0]!, options.device, params);
  }

  get scale(): number {
    return this.alpha / this.rank;
  }

  get parameterCount(): number {
    let n = 0;
    for (const p of this.params.values()) n += p.a.numel + p.b.numel;
    return n;
  }

  /** The compute copy for a forward: the masters cast to `dtype`, as an adapter the caller owns. */
  adapter(dtype: 'f32' | 'bf16'): LoraAdapter {
    const entries = new Map<string, LoraEntry>();
    try {
      for (const [key, p] of this.params) entries.set(key, { a: ops.cast(p.a, dtype), b: ops.cast(p.b, dtype), scale: this.scale });
    } catch (error) {
      for (const e of entries.values()) [e.a, e.b].forEach((t) => t.dispose());
      throw error;
    }
    return LoraAdapter.fromEntries(this.device, entries);
  }

  /**
   * One optimizer update from f32 gradients by "<block>.<linear>" (lib/training/dit-backward.ts);
   * the moments are named "<block>.<linear>.A" / ".B".
   */
  async step(optimizer: AdamW, grads: ReadonlyMap<string, { a: Tensor; b: Tensor }>, lr?: number): Promise<AdamWStep> {
    const flat = new Map<string, Tensor>();
    const flatGrads = new Map<string, Tensor>();
    for (const [key, p] of this.params) {
      flat.set(`${key}.A`, p.a);
      flat.set(`${key}.B`, p.b);
    }
    for (const [key, g] of grads) {
      if (!this.params.has(key)) throw new StepVideoError('ERR_ARGUMENT', `a gradient for '${key}', which the adapter does not train`, { tensor: key });
      flatGrads.set(`${key}.A`, g.a);
      flatGrads.set(`${key}.B`, g.b);
    }
    const result = await optimizer.update(flat, flatGrads, lr);
    for (const [key, p] of this.params) {
      p.a = flat.get(`${key}.A`)!;
      p.b = flat.get(`${key}.B`)!;
    }
    return result;
  }

  /** The masters as host tensors under the PEFT names, with the scalar lora_alpha. */
  async toHostTensors(): Promise<Map<string, HostTensor>> {
    const out = new Map<string, HostTensor>();
    for (const [key, p] of this.params) {
      const name = loraTensorName(key);
      out.set(`${name}.lora_A.weight`, { dtype: 'f32', shape: [...p.a.shape], data: await p.a.toFloat32() });
      out.set(`${name}.lora_B.weight`, { dtype: 'f32', shape: [...p.b.shape], data: await p.b.toFloat32() });
    }
    out.set('lora_alpha', { dtype: 'f32', shape: [], data: Float32Array.of(this.alpha) });
    return out;
  }

  dispose(): void {
    for (const p of this.params.values()) [p.a, p.b].forEach((t) => t.dispose());
    this.params.clear();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** "<block>.<linear>" → "transformer_blocks.<block>.<linear>" (the PEFT module path). */
export function loraTensorName(key: string): string {
  return `transformer_blocks.${key}`;
}
