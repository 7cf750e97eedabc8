// LoRA adapters for the DiT's block Linears (what `stepvideo dpo` will train; here: using one).
// A Linear y = x·Wᵀ with an adapter becomes y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ, applied on the fly: the base
// weights stay as loaded (shared by jobs with and without adapters, and by FP8 or streamed weights),
// and the adapter rides with one sampling run's DiTContext, so concurrent jobs never see each
// other's. A [r, in], B [out, r], s = (alpha / r) · the user's scale.
//
// Tensor names, as PEFT and diffusers save them for these Linears (documented in the README):
//   [prefix]transformer_blocks.<i>.<linear>.lora_A[.<adapter name>].weight   [r, in]
//   [prefix]transformer_blocks.<i>.<linear>.lora_B[.<adapter name>].weight   [out, r]
//   optional: [prefix]transformer_blocks.<i>.<linear>.alpha (scalar), or one scalar `lora_alpha`
// with <linear> one of attn1.wqkv, attn1.wo, attn2.wq, attn2.wkv, attn2.wo, ff.net.0.proj,
// ff.net.2, and prefix none, `transformer.`, `base_model.model.` or `diffusion_model.`. Without an
// alpha, alpha = r (s = the user's scale).
import path from 'node:path';

import type { Device } from '../../device.js';
import { StepVideoError } from '../../errors.js';
import { type HostTensor, hostTensorToF32, readSafetensors } from '../../io/safetensors.js';
import * as ops from '../../ops.js';
import { Tensor } from '../../tensor.js';
import type { DiTConfig } from './config.js';

export const LORA_LINEARS = ['attn1.wqkv', 'attn1.wo', 'attn2.wq', 'attn2.wkv', 'attn2.wo', 'ff.net.0.proj', 'ff.net.2'] as const;
export type LoraLinear = (typeof LORA_LINEARS)[number];

const PREFIXES = ['base_model.model.', 'transformer.', 'diffusion_model.'];

/** [in, out] of each adapted Linear for a DiT config. */
export function loraLinearShapes(config: DiTConfig): Record<LoraLinear, [number, number]> {
  const D = config.innerDim;
  return { 'attn1.wqkv': [D, 3 * D], 'attn1.wo': [D, D], 'attn2.wq': [D, D], 'attn2.wkv': [D, 2 * D], 'attn2.wo': [D, D], 'ff.net.0.proj': [D, config.ffnDim], 'ff.net.2': [config.ffnDim, D] };
}

export interface LoraEntry {
  a: Tensor;
  b: Tensor;
  scale: number;
}

/** '<file>[:scale]' as --lora takes it. */
export function parseLoraSpec(text: string): { file: string; scale: number } {
  const match = /^(.*?)(?::(-?[0-9]*\.?[0-9]+(?:e-?[0-9]+)?))?$/i.exec(text);
  const file = match?.[1] ?? '';
  const scale = match?.[2] !== undefined ? Number(match[2]) : 1;
  if (file === '' || !Number.isFinite(scale)) throw new StepVideoError('ERR_ARGUMENT', `--lora must be FILE or FILE:scale (got '${text}')`);
  return { file, scale };
}

export class LoraAdapter implements Disposable {
  readonly rank: number;
  readonly device: Device;
  /** "<i>.<linear>" of every adapted Linear. */
  readonly targets: readonly string[];
  readonly #entries = new Map<string, LoraEntry>();

  private constructor(device: Device, rank: number, entries: Map<string, LoraEntry>) {
    this.device = device;
    this.rank = rank;
    this.#entries = entries;
    this.targets = [...entries.keys()].sort();
  }

  /** An adapter from a safetensors file (names above), checked against the DiT's config. */
  static async load(file: string, options: { config: DiTConfig; device: Device; dtype: 'f32' | 'bf16'; scale?: number }): Promise<LoraAdapter> {
    const tensors = await readSafetensors(file).catch((error: unknown) => {
      throw new StepVideoError('ERR_IO', `cannot read the LoRA file: ${(error as Error).message}`, { file: path.resolve(file) });
    });
    return LoraAdapter.fromTensors(tensors, { ...options, source: path.resolve(file) });
  }

  /** An adapter from named host tensors (names above). */
  static fromTensors(tensors: Map<string, HostTensor>, options: { config: DiTConfig; device: Device; dtype: 'f32' | 'bf16'; scale?: number; source?: string }): LoraAdapter {
    const { config, device, dtype } = options;
    const userScale = options.scale ?? 1;
    const where = options.source ? { file: options.source } : {};
    const shapes = loraLinearShapes(config);
    const parts = new Map<string, { a?: HostTensor; b?: HostTensor; alpha?: number }>();
    let globalAlpha: number | undefined;
    for (const [rawName, tensor] of tensors) {
      if (rawName === 'lora_alpha') {
        globalAlpha = scalar(tensor, rawName, where);
        continue;
      }
      const name = PREFIXES.reduce((n, prefix) => (n.startsWith(prefix) ? n.slice(prefix.length) : n), rawName);
      const match = /^transformer_blocks\.(\d+)\.(.+?)\.(lora_A|lora_B)(?:\.[A-Za-z0-9_-]+)?\.weight$/.exec(name) ?? /^transformer_blocks\.(\d+)\.(.+?)\.(alpha)$/.exec(name);
      if (!match) throw new StepVideoError('ERR_WEIGHTS_FORMAT', `unexpected tensor in a LoRA file: '${rawName}'`, { ...where, tensor: rawName, expected: `transformer_blocks.<i>.<${LORA_LINEARS.join('|')}>.lora_A/lora_B.weight` });
      const [, block, linear, kind] = match;
      if (!(LORA_LINEARS as readonly string[]).includes(linear!)) throw new StepVideoError('ERR_WEIGHTS_FORMAT', `LoRA on an unsupported Linear '${linear}'`, { ...where, tensor: rawName, expected: LORA_LINEARS.join(', ') });
      if (Number(block) >= config.numLayers) throw new StepVideoError('ERR_WEIGHTS_FORMAT', `LoRA for block ${block}, but the DiT has ${config.numLayers}`, { ...where, tensor: rawName });
      const key = `${Number(block)}.${linear}`;
      const part = parts.get(key) ?? {};
      if (kind === 'alpha') part.alpha = scalar(tensor, rawName, where);
      else part[kind === 'lora_A' ? 'a' : 'b'] = tensor;
      parts.set(key, part);
    }
    if (parts.size === 0) throw new StepVideoError('ERR_WEIGHTS_FORMAT', 'the LoRA file holds no adapter', where);
    const entries = new Map<string, LoraEntry>();
    let rank = 0;
    try {
      for (const [key, part] of parts) {
        const linear = key.slice(key.indexOf('.') + 1) as LoraLinear;
        if (part.a === undefined || part.b === undefined) throw new StepVideoError('ERR_WEIGHTS_FORMAT', `LoRA '${key}' needs both lora_A and lora_B`, { ...where, tensor: key });
        const [inDim, outDim] = shapes[linear];
        const r = part.a.shape[0]!;
        if (part.a.shape.length !== 2 || part.a.shape[1] !== inDim || part.b.shape.length !== 2 || part.b.shape[0] !== outDim || part.b.shape[1] !== r) {
          throw new StepVideoError('ERR_SHAPE', `LoRA '${key}' has the wrong shapes`, { ...where, tensor: key, expected: `lora_A [r, ${inDim}], lora_B [${outDim}, r]`, got: `[${part.a.shape.join(', ')}], [${part.b.shape.join(', ')}]` });
        }
        rank = Math.max(rank, r);
        const alpha = part.alpha ?? globalAlpha ?? r;
        entries.set(key, { a: upload(part.a, dtype, device), b: upload(part.b, dtype, device), scale: (alpha / r) * userScale });
      }
    } catch (error) {
      for (const e of entries.values()) [e.a, e.b].forEach((t) => t.dispose());
      throw error;
    }
    return new LoraAdapter(device, rank, entries);
  }

  /**
   * An adapter over device tensors, by "<block>.<linear>" (the adapter owns them from now on):
   * what training builds from its master weights each step.
   */
  static fromEntries(device: Device, entries: ReadonlyMap<string, LoraEntry>): LoraAdapter {
    let rank = 0;
    for (const [key, e] of entries) {
      if (e.a.device !== device || e.b.device !== device) throw new StepVideoError('ERR_DEVICE', `LoRA '${key}' is on another device`, { tensor: key, expected: device.name });
      rank = Math.max(rank, e.a.size(0));
    }
    return new LoraAdapter(device, rank, new Map(entries));
  }

  /** Every adapted Linear, by "<block>.<linear>". */
  entries(): IterableIterator<[string, LoraEntry]> {
    return this.#entries.entries();
  }

  get(block: number, linear: LoraLinear): LoraEntry | undefined {
    return this.#entries.get(`${block}.${linear}`);
  }

  [Symbol.dispose](): void {
    for (const e of this.#entries.values()) [e.a, e.b].forEach((t) => t.dispose());
    this.#entries.clear();
  }

  dispose(): void {
    this[Symbol.dispose]();
  }
}

/** s·(x·Aᵀ)·Bᵀ for x [..., in]. */
export function loraDelta(x: Tensor, entry: LoraEntry): Tensor {
  using down = ops.linear(x, entry.a);
  using up = ops.linear(down, entry.b);
  return ops.scale(up, entry.scale);
}

/** y + s·(x·Aᵀ)·Bᵀ, consuming y; y itself without an adapter. */
export function withLora(y: Tensor, x: Tensor, entry: LoraEntry | undefined): Tensor {
  if (entry === undefined) return y;
  using base = y;
  using delta = loraDelta(x, entry);
  return ops.add(base, delta);
}

function scalar(tensor: HostTensor, name: string, where: { file?: string }): number {
  if (tensor.data.length !== 1) throw new StepVideoError('ERR_SHAPE', `'${name}' must be a scalar`, { ...where, tensor: name, got: `[${tensor.shape.join(', ')}]` });
  const [value] = toF32(tensor);
  if (!Number.isFinite(value) || value! <= 0) throw new StepVideoError('ERR_ARGUMENT', `'${name}' must be a positive number`, { ...where, tensor: name, got: value });
  return value!;
}

function toF32(tensor: HostTensor): Float32Array {
  return hostTensorToF32(tensor) ?? Float32Array.from(tensor.data as ArrayLike<number>, Number);
}

function upload(tensor: HostTensor, dtype: 'f32' | 'bf16', device: Device): Tensor {
  return Tensor.from(toF32(tensor), tensor.shape, { dtype, device });
}
