// Where a model's tensors come from: Weights loaded from a checkpoint, or tensors made in memory
// (random weights for tests and benchmarks at sizes no golden file covers).
import type { Device } from '../device.js';
import { type DType, roundBf16 } from '../dtype.js';
import { StepVideoError } from '../errors.js';
import type { WeightSpec } from '../io/load.js';
import { formatShape, numel, shapeEquals } from '../shape.js';
import { Tensor } from '../tensor.js';

export interface WeightSource {
  get(name: string): Tensor;
  dispose(): void;
}

/** Every tensor of `spec` present with its shape, in `dtype`, on `device`; ERR_SHAPE naming the first that is not. */
export function checkWeightSource(model: string, source: WeightSource, spec: WeightSpec, dtype: DType, device: Device): void {
  for (const [name, shape] of spec) {
    const tensor = source.get(name);
    if (!shapeEquals(tensor.shape, shape) || tensor.dtype !== dtype || tensor.device !== device) {
      throw new StepVideoError('ERR_SHAPE', `${model} weight does not fit the model`, {
        tensor: name,
        expected: `${formatShape(shape)} ${dtype} on ${device.name}`,
        got: `${formatShape(tensor.shape)} ${tensor.dtype} on ${tensor.device.name}`,
      });
    }
  }
}

/** Tensors by name, owned; several names may share one tensor (it is freed once). */
export class TensorWeights implements WeightSource, Disposable {
  readonly #tensors: Map<string, Tensor>;

  constructor(tensors: Map<string, Tensor>) {
    this.#tensors = tensors;
  }

  get(name: string): Tensor {
    const tensor = this.#tensors.get(name);
    if (tensor === undefined) throw new StepVideoError('ERR_WEIGHTS_MISSING', 'weight not present', { tensor: name });
    return tensor;
  }

  dispose(): void {
    for (const tensor of new Set(this.#tensors.values())) tensor.dispose();
    this.#tensors.clear();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

export interface RandomWeightsOptions {
  device: Device;
  dtype: DType;
  seed?: number;
  /** Names mapped to one canonical name share one tensor (e.g. every layer of a benchmark model). */
  alias?: (name: string) => string;
  /** Round every value to bf16 before storing it, so an f32 copy equals a bf16 one exactly. */
  bf16Values?: boolean;
}

/**
 * Deterministic random weights in a model's shapes, for tests and benchmarks: matrices [out, in]
 * uniform with std 1/sqrt(in) (activations stay O(1) through the layers), norm weights 1 ± 0.1,
 * other vectors (biases) ± 0.05. Values come from a prime-length random block tiled over each
 * tensor (fast at billions of parameters; no two rows of a real matrix are equal).
 */
export function randomWeights(spec: WeightSpec, options: RandomWeightsOptions): TensorWeights {
  const block = randomBlock(options.seed ?? 1, 1_000_003);
  const made = new Map<string, Tensor>();
  const tensors = new Map<string, Tensor>();
  try {
    let salt = 0;
    for (const [name, shape] of spec) {
      const key = options.alias ? options.alias(name) : name;
      let tensor = made.get(key);
      if (tensor === undefined) {
        const values = tiled(block, numel(shape), (salt++ * 7919) % block.length);
        const norm = /norm/i.test(name) && name.endsWith('.weight');
        const [scale, shift] = shape.length >= 2 ? [Math.sqrt(3 / shape[shape.length - 1]!), 0] : norm ? [0.1, 1] : [0.05, 0];
        for (let i = 0; i < values.length; i++) values[i] = shift + scale * values[i]!;
        if (options.bf16Values) for (let i = 0; i < values.length; i++) values[i] = roundBf16(values[i]!);
        tensor = Tensor.from(values, shape, { device: options.device, dtype: options.dtype });
        made.set(key, tensor);
      }
      tensors.set(name, tensor);
    }
  } catch (error) {
    for (const tensor of made.values()) tensor.dispose();
    throw error;
  }
  return new TensorWeights(tensors);
}

/** Uniform in [-1, 1) from xorshift32. */
function randomBlock(seed: number, length: number): Float32Array {
  const out = new Float32Array(length);
  let state = seed >>> 0 || 0x9e3779b9;
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = (state >>> 0) / 2147483648 - 1;
  }
  return out;
}

function tiled(block: Float32Array, count: number, start: number): Float32Array {
  const out = new Float32Array(count);
  let filled = 0;
  let from = start;
  while (filled < count) {
    const take = Math.min(block.length - from, count - filled);
    out.set(block.subarray(from, from + take), filled);
    filled += take;
    from = 0;
  }
  return out;
}
