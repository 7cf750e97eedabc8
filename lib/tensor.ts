// Tensor: a contiguous block of typed elements on one device, owned explicitly. Create with
// Tensor.empty/zeros/from; free with dispose() (or `using`). Reading back is async because the
// data may still be in flight on the device's queue. Reshape and outer-dimension slices are
// views: they share memory, and each view is disposed on its own (memory goes with the last one).
import {
  DTYPE_CODE,
  DTYPE_SIZE,
  type AnyTypedArray,
  type DType,
  bf16ArrayToF32,
  dtypeOfTypedArray,
  f16BitsToF32,
  typedArrayFor,
} from './dtype.js';
import { Device, type DeviceSpec, getDevice } from './device.js';
import { StepVideoError } from './errors.js';
import { opsOn } from './context.js';
import { native, type NativeTensorHandle } from './native.js';
import { type Shape, contiguousStrides, formatShape, inferShape, numel, validateShape } from './shape.js';

export interface TensorOptions {
  dtype?: DType;
  device?: DeviceSpec;
}

// Tensors collected by the GC without dispose(): counted so tests and long-running services can
// see leaks. With STEPVIDEO_DEBUG_LEAKS=1 the creation stack of each leak is printed.
let leaked = 0;
const debugLeaks = process.env.STEPVIDEO_DEBUG_LEAKS === '1';
const leakRegistry = new FinalizationRegistry<string | undefined>((stack) => {
  leaked++;
  if (debugLeaks) console.warn(`stepvideo: a tensor was garbage-collected without dispose()${stack ? `\n${stack}` : ''}`);
});

/** Number of tensors garbage-collected without dispose() so far. */
export function leakedTensorCount(): number {
  return leaked;
}

export class Tensor implements Disposable {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly device: Device;
  #handle: NativeTensorHandle | undefined;
  readonly #token = {};

  /** @internal Wraps a native handle; use the static constructors. */
  constructor(handle: NativeTensorHandle, shape: readonly number[], dtype: DType, device: Device) {
    this.#handle = handle;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.device = device;
    leakRegistry.register(this, debugLeaks ? new Error('tensor created here').stack : undefined, this.#token);
  }

  /** Uninitialised tensor (contents undefined; NaN-poisoned when STEPVIDEO_POISON=1). */
  static empty(shape: Shape, dtype: DType = 'f32', device?: DeviceSpec): Tensor {
    const dims = validateShape(shape);
    const target = getDevice(device);
    const handle = new native.NativeTensor(target.index, DTYPE_CODE[dtype], dims);
    return new Tensor(handle, dims, dtype, target);
  }

  static full(shape: Shape, value: number, dtype: DType = 'f32', device?: DeviceSpec): Tensor {
    const tensor = Tensor.empty(shape, dtype, device);
    opsOn(tensor.device).fill(tensor.handle, value);
    return tensor;
  }

  static zeros(shape: Shape, dtype: DType = 'f32', device?: DeviceSpec): Tensor {
    return Tensor.full(shape, 0, dtype, device);
  }

  /**
   * A tensor holding a copy of `data`. The dtype defaults to the array's own (Float32Array: f32,
   * Uint16Array: bf16, Int32Array: i32, BigInt64Array: i64, Uint8Array: u8; plain arrays: f32);
   * asking for another float dtype converts on the way in (e.g. f32 data into a bf16 tensor).
   */
  static from(data: AnyTypedArray | readonly number[], shape?: Shape, options: TensorOptions = {}): Tensor {
    const array: AnyTypedArray = Array.isArray(data) ? Float32Array.from(data as number[]) : (data as AnyTypedArray);
    const sourceDType = dtypeOfTypedArray(array, options.dtype === 'f16' ? 'f16' : 'bf16');
    const dims = shape === undefined ? [array.length] : inferShape(shape, array.length);
    const dtype = options.dtype ?? sourceDType;
    const tensor = Tensor.empty(dims, dtype, options.device);
    try {
      native.write(tensor.handle, array, DTYPE_CODE[sourceDType]);
    } catch (error) {
      tensor.dispose();
      throw error;
    }
    return tensor;
  }

  /** @internal The native handle; throws ERR_DISPOSED after dispose(). */
  get handle(): NativeTensorHandle {
    if (this.#handle === undefined) {
      throw new StepVideoError('ERR_DISPOSED', `tensor ${formatShape(this.shape)} ${this.dtype} was used after dispose()`);
    }
    return this.#handle;
  }

  get ndim(): number {
    return this.shape.length;
  }

  get numel(): number {
    return numel(this.shape);
  }

  get byteLength(): number {
    return this.numel * DTYPE_SIZE[this.dtype];
  }

  get disposed(): boolean {
    return this.#handle === undefined;
  }

  /** Size of dimension `axis` (negative counts from the end). */
  size(axis: number): number {
    const resolved = axis < 0 ? this.ndim + axis : axis;
    const value = this.shape[resolved];
    if (value === undefined) {
      throw new StepVideoError('ERR_ARGUMENT', 'axis out of range', { expected: `< ${this.ndim}`, got: axis });
    }
    return value;
  }

  /** Frees this handle's reference to the memory at once. Idempotent. */
  dispose(): void {
    if (this.#handle === undefined) return;
    this.#handle.dispose();
    this.#handle = undefined;
    leakRegistry.unregister(this.#token);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** The raw elements (bf16/f16 as uint16 bit patterns, i64 as BigInt64Array). */
  async toArray(): Promise<AnyTypedArray> {
    const buffer = await native.read(this.handle);
    return typedArrayFor(this.dtype, buffer, 0, this.numel);
  }

  /** The values as float32 (floats widened; integers converted). */
  async toFloat32(): Promise<Float32Array> {
    const raw = await this.toArray();
    switch (this.dtype) {
      case 'f32':
        return raw as Float32Array;
      case 'bf16':
        return bf16ArrayToF32(raw as Uint16Array);
      case 'f16':
        return Float32Array.from(raw as Uint16Array, f16BitsToF32);
      case 'i64':
        return Float32Array.from(raw as BigInt64Array, (v) => Number(v));
      default:
        return Float32Array.from(raw as Int32Array | Uint8Array);
    }
  }

  /** A copy on another device (or the same one). Async: waits for the data to be ready. */
  async to(device: DeviceSpec): Promise<Tensor> {
    const target = getDevice(device);
    if (target === this.device) return this.clone();
    const copy = Tensor.empty(this.shape, this.dtype, target);
    try {
      await native.transfer(copy.handle, this.handle);
    } catch (error) {
      copy.dispose();
      throw error;
    }
    return copy;
  }

  /** A new tensor with the same contents (enqueued; no wait). */
  clone(): Tensor {
    const copy = Tensor.empty(this.shape, this.dtype, this.device);
    const strides = contiguousStrides(this.shape);
    opsOn(copy.device).copy(copy.handle, this.handle, [...this.shape], strides, 0, strides, 0);
    return copy;
  }

  /** A view with another shape of the same element count (one dimension may be -1). */
  reshape(...shape: number[] | [Shape]): Tensor {
    const dims = inferShape((Array.isArray(shape[0]) ? shape[0] : shape) as number[], this.numel);
    return this.viewAs(dims, this.dtype, 0);
  }

  /** A view of rows [start, start + length) along the first dimension (no copy). */
  narrow(start: number, length: number): Tensor {
    const rows = this.shape[0];
    if (rows === undefined) throw new StepVideoError('ERR_SHAPE', 'narrow needs at least one dimension', { got: [] });
    if (!Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 0 || start + length > rows) {
      throw new StepVideoError('ERR_ARGUMENT', 'narrow range out of bounds', { expected: `within [0, ${rows})`, got: `[${start}, ${start + length})` });
    }
    const rowBytes = (this.numel / rows) * DTYPE_SIZE[this.dtype];
    return this.viewAs([length, ...this.shape.slice(1)], this.dtype, start * rowBytes);
  }

  /** @internal Another handle onto part of this tensor's bytes. */
  viewAs(shape: Shape, dtype: DType, byteOffset: number): Tensor {
    const handle = this.handle.view(DTYPE_CODE[dtype], [...shape], byteOffset);
    return new Tensor(handle, shape, dtype, this.device);
  }

  /** Whether two tensors share memory (a view and its source, or two views). */
  sharesMemoryWith(other: Tensor): boolean {
    return this.handle.sharesStorageWith(other.handle);
  }

  toString(): string {
    return `Tensor(${formatShape(this.shape)}, ${this.dtype}, ${this.device.name}${this.disposed ? ', disposed' : ''})`;
  }
}

/**
 * Collects temporaries so a block of model code frees them all at the end:
 *   using scope = new TensorScope();
 *   const h = scope.track(linear(x, w));
 * keep(t) takes a tensor out of the scope (the caller then owns it).
 */
export class TensorScope implements Disposable {
  #tensors = new Set<Tensor>();

  track<T extends Tensor>(tensor: T): T {
    this.#tensors.add(tensor);
    return tensor;
  }

  keep<T extends Tensor>(tensor: T): T {
    this.#tensors.delete(tensor);
    return tensor;
  }

  dispose(): void {
    for (const tensor of this.#tensors) tensor.dispose();
    this.#tensors.clear();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
