// Where the forward finds a transformer block's weights. Resident: every block on the device, its
// Linear weights in the model dtype or as FP8 (e4m3 codes + per-channel scales, quantized at
// load). Streamed (streaming.ts): the blocks in pinned host memory, uploaded into two device slots
// as the forward goes. The forward asks for block i with acquire(i) before enqueuing its work and
// says release(i) after, so a streamed source knows when a slot may be refilled.
import type { Device } from '../../device.js';
import type { DType } from '../../dtype.js';
import { StepVideoError, throwIfAborted } from '../../errors.js';
import { type LoadProgress, Weights, checkAgainstSpec, loadRecords } from '../../io/load.js';
import type { WeightIndex } from '../../io/tensor-record.js';
import { Fp8Weight, quantizeFp8 } from '../../kernels/fp8.js';
import type { Tensor } from '../../tensor.js';
import type { DiTConfig } from './config.js';
import { ditWeightSpec } from './weights.js';

/** A Linear weight [out, in] as the forward uses it: in the model dtype, or FP8. */
export type LinearWeight = Tensor | Fp8Weight;

/** The block Linear weights that `weights: 'fp8'` stores as e4m3 (about 98% of the parameters). */
export const FP8_BLOCK_LINEARS: readonly string[] = [
  'attn1.wqkv.weight',
  'attn1.wo.weight',
  'attn2.wq.weight',
  'attn2.wkv.weight',
  'attn2.wo.weight',
  'ff.net.0.proj.weight',
  'ff.net.2.weight',
];

/** One block's weights, by the name inside the block ('norm1.weight', 'attn1.wqkv.weight', ...). */
export interface BlockWeights {
  tensor(name: string): Tensor;
  linear(name: string): LinearWeight;
}

export interface BlockSource extends Disposable {
  /** Block i's weights, valid for the work enqueued from now until release(i). */
  acquire(block: number): BlockWeights;
  /** Block i's work is enqueued. */
  release(block: number): void;
  /** Bytes of block weights held on the device. */
  readonly deviceBytes: number;
  /** Bytes of block weights held in (pinned) host memory. */
  readonly hostBytes: number;
  readonly disposed: boolean;
  dispose(): void;
}

export const blockPrefix = (block: number): string => `transformer_blocks.${block}.`;

/** Every block tensor name of the spec (the names a block source owns). */
export function isBlockTensor(name: string): boolean {
  return name.startsWith('transformer_blocks.');
}

/** Every block on the device: tensors from `weights`, FP8 Linears from `fp8` (by full name) where quantized. */
export class ResidentBlocks implements BlockSource {
  readonly #weights: Weights;
  readonly #fp8: Map<string, Fp8Weight>;
  #disposed = false;

  constructor(weights: Weights, fp8: Map<string, Fp8Weight>) {
    this.#weights = weights;
    this.#fp8 = fp8;
  }

  acquire(block: number): BlockWeights {
    const prefix = blockPrefix(block);
    return {
      tensor: (name) => this.#weights.get(prefix + name),
      linear: (name) => this.#fp8.get(prefix + name) ?? this.#weights.get(prefix + name),
    };
  }

  release(): void {}

  get deviceBytes(): number {
    let total = 0;
    for (const w of this.#fp8.values()) total += w.byteLength;
    for (const name of this.#weights.names()) if (isBlockTensor(name)) total += this.#weights.get(name).byteLength;
    return total;
  }

  get hostBytes(): number {
    return 0;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /** Frees the FP8 weights (the tensors in `weights` belong to the model's Weights). */
  dispose(): void {
    for (const w of this.#fp8.values()) w.dispose();
    this.#fp8.clear();
    this.#disposed = true;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

export interface DiTWeightLoadOptions {
  device: Device;
  dtype: DType;
  fp8: boolean;
  signal?: AbortSignal;
  onProgress?: (progress: LoadProgress) => void;
}

/** Reports progress over several load phases as one: byte and tensor counts add up. */
export function progressOver(total: { bytes: number; tensors: number }, onProgress?: (p: LoadProgress) => void) {
  let bytes = 0;
  let tensors = 0;
  return {
    phase: (): ((p: LoadProgress) => void) => {
      const [startBytes, startTensors] = [bytes, tensors];
      return (p) => {
        bytes = startBytes + p.loadedBytes;
        tensors = startTensors + p.tensors;
        onProgress?.({ loadedBytes: bytes, totalBytes: total.bytes, tensors, totalTensors: total.tensors });
      };
    },
  };
}

/**
 * Loads the released checkpoint with every block resident: one Weights for all tensors, or with
 * `fp8`, the block Linears quantized block by block as they arrive (so the model-dtype copy of
 * only one block exists at a time) and everything else in the model dtype.
 */
export async function loadResidentDiT(index: WeightIndex, config: DiTConfig, options: DiTWeightLoadOptions): Promise<{ weights: Weights; blocks: ResidentBlocks }> {
  const { device, dtype, signal } = options;
  const spec = ditWeightSpec(config);
  checkAgainstSpec(index, spec);
  const quantized = (name: string) => options.fp8 && isBlockTensor(name) && FP8_BLOCK_LINEARS.some((suffix) => name.endsWith(`.${suffix}`));
  const names = [...spec.keys()];
  const progress = progressOver({ bytes: names.reduce((n, name) => n + index.get(name).byteLength, 0), tensors: names.length }, options.onProgress);
  const kept = new Map([...spec].filter(([name]) => !quantized(name)));
  const weights = await Weights.load(index, kept, {
    device,
    dtype,
    allowUnexpected: options.fp8 ? [/^transformer_blocks\.\d+\./] : [],
    ...(signal ? { signal } : {}),
    onProgress: progress.phase(),
  });
  const fp8 = new Map<string, Fp8Weight>();
  try {
    for (let block = 0; options.fp8 && block < config.numLayers; block++) {
      throwIfAborted(signal, 'DiT loading');
      const records = FP8_BLOCK_LINEARS.map((suffix) => index.get(blockPrefix(block) + suffix));
      const loaded = await loadRecords(records, { device, dtype, ...(signal ? { signal } : {}), onProgress: progress.phase() });
      for (const [name, tensor] of loaded) {
        try {
          fp8.set(name, quantizeFp8(tensor));
        } finally {
          tensor.dispose();
        }
      }
    }
  } catch (error) {
    for (const w of fp8.values()) w.dispose();
    weights.dispose();
    throw error;
  }
  return { weights, blocks: new ResidentBlocks(weights, fp8) };
}

export function checkBlockIndex(block: number, layers: number): void {
  if (!Number.isInteger(block) || block < 0 || block >= layers) {
    throw new StepVideoError('ERR_ARGUMENT', 'no such transformer block', { expected: `0..${layers - 1}`, got: block });
  }
}
