// Weight streaming for GPUs too small for the whole DiT: every block's weights live in pinned
// host memory (one buffer per block, FP8 or model dtype), and the device holds two slots. Block i
// runs from slot i % 2; once its work is enqueued (release), the upload of block i + 2 into the
// same slot is queued on the copy stream behind that work, so it overlaps block i + 1's compute;
// acquire(i + 2) makes the work stream wait for that upload. Uploads and waits go through the
// execution context current for the device (lib/context.ts), on its copy and work streams. Nothing
// on the host ever waits. On the CPU backend the same protocol runs in program order (the tests
// check the bookkeeping there).
import { Device } from '../../device.js';
import { DTYPE_CODE, DTYPE_SIZE, type DType } from '../../dtype.js';
import { StepVideoError, throwIfAborted } from '../../errors.js';
import { type LoadProgress, loadRecords } from '../../io/load.js';
import { toDType, type WeightIndex } from '../../io/tensor-record.js';
import { Fp8Weight, quantizeFp8 } from '../../kernels/fp8.js';
import { contextFor, opsOn } from '../../context.js';
import { native, type NativeCopyEvent } from '../../native.js';
import { contiguousStrides, numel } from '../../shape.js';
import { Tensor } from '../../tensor.js';
import { type BlockSource, type BlockWeights, FP8_BLOCK_LINEARS, blockPrefix, checkBlockIndex, progressOver } from './block-weights.js';
import type { DiTConfig } from './config.js';
import { ditWeightSpec } from './weights.js';

/** Byte alignment of every tensor in a block buffer: what cuBLASLt's fastest kernels want. */
const ALIGN = 256;
/** Device slots: the block in use and the one being uploaded. */
export const STREAM_SLOTS = 2;

/** Where one tensor of a block lies in a block buffer. */
interface Entry {
  /** Name inside the block ('attn1.wqkv.weight'); an FP8 Linear has two entries, the second `${name}#scales`. */
  key: string;
  dtype: DType;
  shape: number[];
  byteOffset: number;
}

/** The block buffer layout: the block's tensors in spec order, each at a 256-byte boundary. */
export function streamedBlockLayout(config: DiTConfig, dtype: DType, fp8: boolean): { entries: Entry[]; bytes: number } {
  const entries: Entry[] = [];
  let offset = 0;
  const place = (key: string, entryDType: DType, shape: number[]) => {
    entries.push({ key, dtype: entryDType, shape, byteOffset: offset });
    const bytes = numel(shape) * DTYPE_SIZE[entryDType];
    offset += Math.ceil(bytes / ALIGN) * ALIGN;
  };
  const prefix = blockPrefix(0);
  for (const [name, shape] of ditWeightSpec(config)) {
    if (!name.startsWith(prefix)) continue;
    const key = name.slice(prefix.length);
    if (fp8 && FP8_BLOCK_LINEARS.includes(key)) {
      place(key, 'u8', [...shape]);
      place(`${key}#scales`, 'f32', [shape[0]!]);
    } else {
      place(key, dtype, [...shape]);
    }
  }
  return { entries, bytes: offset };
}

interface Slot {
  buffer: Tensor;
  tensors: Map<string, Tensor>;
  fp8: Map<string, Fp8Weight>;
  /** The block uploaded (or being uploaded) into this slot; -1 for none. */
  block: number;
  /** The upload's completion event (CUDA), null on the CPU or before any upload. */
  done: NativeCopyEvent | null;
}

function viewsOf(buffer: Tensor, entries: readonly Entry[]): { tensors: Map<string, Tensor>; fp8: Map<string, Fp8Weight> } {
  const tensors = new Map<string, Tensor>();
  for (const e of entries) tensors.set(e.key, buffer.viewAs(e.shape, e.dtype, e.byteOffset));
  const fp8 = new Map<string, Fp8Weight>();
  for (const e of entries) {
    if (e.key.endsWith('#scales')) {
      const key = e.key.slice(0, -'#scales'.length);
      fp8.set(key, new Fp8Weight(tensors.get(key)!, tensors.get(e.key)!));
    }
  }
  return { tensors, fp8 };
}

function pinnedHostBuffer(bytes: number): Tensor {
  return new Tensor(new native.NativeTensor(-1, DTYPE_CODE.u8, [bytes], true), [bytes], 'u8', Device.cpu);
}

/** dst ← src (same dtype and size), src on the model device, dst a host view. */
async function copyToHost(dst: Tensor, src: Tensor): Promise<void> {
  if (src.device === dst.device) {
    const strides = contiguousStrides(src.shape);
    opsOn(dst.device).copy(dst.handle, src.handle, [...src.shape], strides, 0, strides, 0);
    return;
  }
  await native.transfer(dst.handle, src.handle);
}

export interface StreamedLoadOptions {
  device: Device;
  dtype: DType;
  fp8: boolean;
  signal?: AbortSignal;
  onProgress?: (progress: LoadProgress) => void;
}

export class StreamedBlocks implements BlockSource {
  readonly device: Device;
  readonly layers: number;
  readonly blockBytes: number;
  readonly #host: Tensor[];
  readonly #hostViews: Array<Map<string, Tensor>>;
  readonly #slots: Slot[];
  #inUse = -1;
  #disposed = false;

  private constructor(device: Device, blockBytes: number, host: Tensor[], hostViews: Array<Map<string, Tensor>>, slots: Slot[]) {
    this.device = device;
    this.layers = host.length;
    this.blockBytes = blockBytes;
    this.#host = host;
    this.#hostViews = hostViews;
    this.#slots = slots;
  }

  /**
   * Reads every block of the checkpoint into pinned host buffers (FP8 Linears quantized on the
   * device on the way) and makes the device slots. The caller has checked `index` against the spec.
   */
  static async load(index: WeightIndex, config: DiTConfig, options: StreamedLoadOptions): Promise<StreamedBlocks> {
    const { device, dtype, fp8, signal } = options;
    const { entries, bytes } = streamedBlockLayout(config, dtype, fp8);
    const blockNames = [...ditWeightSpec(config).keys()].filter((name) => name.startsWith('transformer_blocks.'));
    const progress = progressOver({ bytes: blockNames.reduce((total, name) => total + index.get(name).byteLength, 0), tensors: blockNames.length }, options.onProgress);
    const host: Tensor[] = [];
    const hostViews: Array<Map<string, Tensor>> = [];
    const slots: Slot[] = [];
    const release = () => {
      for (const views of hostViews) for (const t of views.values()) t.dispose();
      for (const t of host) t.dispose();
      for (const slot of slots) {
        for (const t of slot.tensors.values()) t.dispose();
        slot.buffer.dispose();
      }
    };
    try {
      for (let block = 0; block < config.numLayers; block++) {
        throwIfAborted(signal, 'DiT loading');
        const buffer = pinnedHostBuffer(bytes);
        host.push(buffer);
        const { tensors } = viewsOf(buffer, entries);
        hostViews.push(tensors);
        const prefix = blockPrefix(block);
        // Tensors kept in the model dtype go straight from the file into the pinned buffer.
        const plain = entries.filter((e) => !e.key.endsWith('#scales') && !(fp8 && FP8_BLOCK_LINEARS.includes(e.key)));
        const plainBytes = plain.reduce((total, e) => total + index.get(prefix + e.key).byteLength, 0);
        await native.loadTensors(
          plain.map((e) => {
            const record = index.get(prefix + e.key);
            const source = toDType(record.dtype);
            if (source === undefined) throw new StepVideoError('ERR_DTYPE', `weights of dtype ${record.dtype} are not supported`, { tensor: record.name, file: record.file });
            return { tensor: tensors.get(e.key)!.handle, path: record.file, offset: record.offset, byteLength: record.byteLength, srcDtype: DTYPE_CODE[source] };
          }),
        );
        progress.phase()({ loadedBytes: plainBytes, totalBytes: 0, tensors: plain.length, totalTensors: 0 });
        if (fp8) {
          const records = FP8_BLOCK_LINEARS.map((key) => index.get(prefix + key));
          const loaded = await loadRecords(records, { device, dtype, ...(signal ? { signal } : {}), onProgress: progress.phase() });
          try {
            for (const key of FP8_BLOCK_LINEARS) {
              using weight = quantizeFp8(loaded.get(prefix + key)!);
              await copyToHost(tensors.get(key)!, weight.codes);
              await copyToHost(tensors.get(`${key}#scales`)!, weight.scales);
            }
          } finally {
            for (const t of loaded.values()) t.dispose();
          }
        }
      }
      for (let s = 0; s < STREAM_SLOTS; s++) {
        const buffer = Tensor.empty([bytes], 'u8', device);
        slots.push({ buffer, ...viewsOf(buffer, entries), block: -1, done: null });
      }
      // Host copies made on the device's queue (CPU) must have landed before the first upload reads them.
      await device.synchronize();
    } catch (error) {
      release();
      throw error;
    }
    return new StreamedBlocks(device, bytes, host, hostViews, slots);
  }

  get deviceBytes(): number {
    return this.#slots.length * this.blockBytes;
  }

  get hostBytes(): number {
    return this.#host.length * this.blockBytes;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  acquire(block: number): BlockWeights {
    if (this.#disposed) throw new StepVideoError('ERR_DISPOSED', 'the streamed DiT weights were used after dispose()');
    checkBlockIndex(block, this.layers);
    if (this.#inUse >= 0) {
      throw new StepVideoError('ERR_ARGUMENT', 'a DiT with streamed weights runs one forward or context at a time', { got: `block ${block} asked for while block ${this.#inUse} is in use` });
    }
    const slot = this.#slotOf(block);
    if (slot.block !== block) this.#upload(block);
    contextFor(this.device).waitFor(slot.done);
    this.#inUse = block;
    return {
      tensor: (name) => this.#view(slot.tensors, name),
      linear: (name) => slot.fp8.get(name) ?? this.#view(slot.tensors, name),
    };
  }

  /** Refills block i's slot with the next block that will run from it (i + 2, or wrapping to the start). */
  release(block: number): void {
    if (this.#inUse !== block) return;
    this.#inUse = -1;
    const next = block + STREAM_SLOTS < this.layers ? block + STREAM_SLOTS : block % STREAM_SLOTS;
    if (this.#slotOf(next).block !== next) this.#upload(next);
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const slot of this.#slots) {
      // The slot's memory is freed in order on the work stream: make that wait for its upload.
      contextFor(this.device).waitFor(slot.done);
      for (const t of slot.tensors.values()) t.dispose();
      slot.buffer.dispose();
    }
    // Host sources of uploads still in flight are kept alive by the native side until copied.
    for (const views of this.#hostViews) for (const t of views.values()) t.dispose();
    for (const t of this.#host) t.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  #slotOf(block: number): Slot {
    return this.#slots[block % STREAM_SLOTS]!;
  }

  #view(tensors: Map<string, Tensor>, name: string): Tensor {
    const t = tensors.get(name);
    if (t === undefined) throw new StepVideoError('ERR_WEIGHTS_MISSING', 'no such block weight', { tensor: name });
    return t;
  }

  /** Queues block's upload into its slot after all work enqueued so far (which may read the slot). */
  #upload(block: number): void {
    const slot = this.#slotOf(block);
    slot.done = contextFor(this.device).upload(slot.buffer, this.#host[block]!);
    slot.block = block;
  }
}
