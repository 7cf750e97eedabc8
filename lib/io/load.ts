// Weight loading: from a WeightIndex (safetensors, sharded safetensors or torch zip) straight into
// tensors on a device, converting dtype on the way (bf16 checkpoints become f32 on the CPU
// backend). Bytes go file -> (pinned staging) -> device in native code, off the JS thread; the
// work is split into batches so progress is reported and an AbortSignal is honoured between them.
import { DTYPE_CODE, type DType } from '../dtype.js';
import { type DeviceSpec, getDevice } from '../device.js';
import { StepVideoError, throwIfAborted } from '../errors.js';
import { defaultComputeDType } from '../models/compute-dtype.js';
import { native } from '../native.js';
import { formatShape, shapeEquals } from '../shape.js';
import { Tensor } from '../tensor.js';
import { type TensorRecord, type WeightIndex, toDType } from './tensor-record.js';

export interface LoadProgress {
  loadedBytes: number;
  totalBytes: number;
  tensors: number;
  totalTensors: number;
}

export interface LoadOptions {
  device?: DeviceSpec;
  /** Element type of the loaded tensors; float tensors are converted to it (default: f32 on the CPU, bf16 on CUDA). */
  dtype?: DType;
  signal?: AbortSignal;
  onProgress?: (progress: LoadProgress) => void;
  /** Bytes per native load call (default 256 MiB). */
  batchBytes?: number;
}

function targetDType(record: TensorRecord, requested: DType): { source: DType; target: DType } {
  const source = toDType(record.dtype);
  if (source === undefined) {
    throw new StepVideoError('ERR_DTYPE', `weights of dtype ${record.dtype} are not supported`, { tensor: record.name, file: record.file });
  }
  const isFloat = source === 'f32' || source === 'bf16' || source === 'f16';
  return { source, target: isFloat ? requested : source };
}

/** Loads the given records; returns tensors by record name. All or nothing: on failure nothing stays allocated. */
export async function loadRecords(records: readonly TensorRecord[], options: LoadOptions = {}): Promise<Map<string, Tensor>> {
  const device = getDevice(options.device);
  const dtype = options.dtype ?? defaultComputeDType(device);
  const batchBytes = options.batchBytes ?? 256 * 1024 * 1024;
  const totalBytes = records.reduce((n, r) => n + r.byteLength, 0);
  const loaded = new Map<string, Tensor>();
  let loadedBytes = 0;
  try {
    for (let start = 0; start < records.length; ) {
      throwIfAborted(options.signal, 'weight loading');
      const batch: Array<{ tensor: Tensor; record: TensorRecord; source: DType }> = [];
      let bytes = 0;
      while (start < records.length && (batch.length === 0 || bytes + records[start]!.byteLength <= batchBytes)) {
        const record = records[start++]!;
        const { source, target } = targetDType(record, dtype);
        const tensor = Tensor.empty(record.shape, target, device);
        loaded.set(record.name, tensor);
        batch.push({ tensor, record, source });
        bytes += record.byteLength;
      }
      await native.loadTensors(
        batch.map(({ tensor, record, source }) => ({
          tensor: tensor.handle,
          path: record.file,
          offset: record.offset,
          byteLength: record.byteLength,
          srcDtype: DTYPE_CODE[source],
        })),
      );
      loadedBytes += bytes;
      options.onProgress?.({ loadedBytes, totalBytes, tensors: loaded.size, totalTensors: records.length });
    }
    throwIfAborted(options.signal, 'weight loading');
  } catch (error) {
    for (const tensor of loaded.values()) tensor.dispose();
    throw error;
  }
  return loaded;
}

/** The shape a model expects for each tensor name. */
export type WeightSpec = ReadonlyMap<string, readonly number[]>;

/**
 * A model's weights: loaded and checked against the spec (every expected tensor present with its
 * shape; nothing unexpected), owned until dispose().
 */
export class Weights implements Disposable {
  readonly #tensors: Map<string, Tensor>;
  readonly source: string;

  private constructor(tensors: Map<string, Tensor>, source: string) {
    this.#tensors = tensors;
    this.source = source;
  }

  /**
   * Checks `index` against `spec` before reading any bytes, then loads. `allowUnexpected` lists
   * name patterns that may be present but are not needed (e.g. BERT's pooler).
   */
  static async load(index: WeightIndex, spec: WeightSpec, options: LoadOptions & { allowUnexpected?: RegExp[] } = {}): Promise<Weights> {
    checkAgainstSpec(index, spec, options.allowUnexpected ?? []);
    const records = [...spec.keys()].map((name) => index.get(name));
    return new Weights(await loadRecords(records, options), index.source);
  }

  get(name: string): Tensor {
    const tensor = this.#tensors.get(name);
    if (tensor === undefined) throw new StepVideoError('ERR_WEIGHTS_MISSING', 'weight not loaded', { tensor: name, file: this.source });
    return tensor;
  }

  has(name: string): boolean {
    return this.#tensors.has(name);
  }

  names(): string[] {
    return [...this.#tensors.keys()];
  }

  get byteLength(): number {
    let total = 0;
    for (const t of this.#tensors.values()) total += t.byteLength;
    return total;
  }

  dispose(): void {
    for (const tensor of this.#tensors.values()) tensor.dispose();
    this.#tensors.clear();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Every spec tensor present with the right shape, and nothing else (unless allowed). */
export function checkAgainstSpec(index: WeightIndex, spec: WeightSpec, allowUnexpected: readonly RegExp[] = []): void {
  const missing = [...spec.keys()].filter((name) => !index.has(name));
  if (missing.length > 0) {
    const shown = missing.slice(0, 8).join(', ') + (missing.length > 8 ? `, ... (${missing.length} in all)` : '');
    throw new StepVideoError('ERR_WEIGHTS_MISSING', `checkpoint lacks tensors the model needs: ${shown}`, { file: index.source, tensor: missing[0]! });
  }
  for (const [name, shape] of spec) {
    const record = index.get(name);
    if (!shapeEquals(record.shape, shape)) {
      throw new StepVideoError('ERR_SHAPE', 'weight has the wrong shape', { tensor: name, file: record.file, expected: formatShape(shape), got: formatShape(record.shape) });
    }
  }
  const unexpected = index.names().filter((name) => !spec.has(name) && !allowUnexpected.some((pattern) => pattern.test(name)));
  if (unexpected.length > 0) {
    const shown = unexpected.slice(0, 8).join(', ') + (unexpected.length > 8 ? `, ... (${unexpected.length} in all)` : '');
    throw new StepVideoError('ERR_WEIGHTS_UNEXPECTED', `checkpoint has tensors the model does not know: ${shown}`, { file: index.source, tensor: unexpected[0]! });
  }
}
