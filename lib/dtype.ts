// Element types. The short names are the library's own; the native addon uses the same numbering
// (see native/dtype.h), and safetensors/torch names map onto them here.
import { StepVideoError } from './errors.js';

export type DType = 'f32' | 'bf16' | 'f16' | 'i32' | 'i64' | 'u8';

export const DTYPES: readonly DType[] = ['f32', 'bf16', 'f16', 'i32', 'i64', 'u8'];

/** Native enum value of each dtype; must match `enum class DType` in native/dtype.h. */
export const DTYPE_CODE: Readonly<Record<DType, number>> = { f32: 0, bf16: 1, f16: 2, i32: 3, i64: 4, u8: 5 };

export const DTYPE_SIZE: Readonly<Record<DType, number>> = { f32: 4, bf16: 2, f16: 2, i32: 4, i64: 8, u8: 1 };

export function isFloatDType(dtype: DType): boolean {
  return dtype === 'f32' || dtype === 'bf16' || dtype === 'f16';
}

/** The typed array that holds a dtype's raw elements (bf16/f16 as their uint16 bit patterns). */
export type TypedArrayFor<D extends DType> = D extends 'f32'
  ? Float32Array
  : D extends 'bf16' | 'f16'
    ? Uint16Array
    : D extends 'i32'
      ? Int32Array
      : D extends 'i64'
        ? BigInt64Array
        : Uint8Array;

export type AnyTypedArray = Float32Array | Uint16Array | Int32Array | BigInt64Array | Uint8Array;

export function typedArrayFor(dtype: DType, buffer: ArrayBuffer, byteOffset = 0, length?: number): AnyTypedArray {
  switch (dtype) {
    case 'f32':
      return new Float32Array(buffer, byteOffset, length);
    case 'bf16':
    case 'f16':
      return new Uint16Array(buffer, byteOffset, length);
    case 'i32':
      return new Int32Array(buffer, byteOffset, length);
    case 'i64':
      return new BigInt64Array(buffer, byteOffset, length);
    case 'u8':
      return new Uint8Array(buffer, byteOffset, length);
  }
}

/** The dtype whose typed array this is (Uint16Array is ambiguous: pass `half` to choose). */
export function dtypeOfTypedArray(array: AnyTypedArray, half: 'bf16' | 'f16' = 'bf16'): DType {
  if (array instanceof Float32Array) return 'f32';
  if (array instanceof Uint16Array) return half;
  if (array instanceof Int32Array) return 'i32';
  if (array instanceof BigInt64Array) return 'i64';
  if (array instanceof Uint8Array) return 'u8';
  throw new StepVideoError('ERR_DTYPE', 'unsupported typed array', { got: Object.prototype.toString.call(array) });
}

/** Parses user-facing dtype spellings: f32/float32, bf16/bfloat16, ... */
export function parseDType(name: string): DType {
  const normalized = name.trim().toLowerCase();
  const aliases: Record<string, DType> = {
    f32: 'f32', float32: 'f32', float: 'f32', fp32: 'f32',
    bf16: 'bf16', bfloat16: 'bf16',
    f16: 'f16', float16: 'f16', half: 'f16', fp16: 'f16',
    i32: 'i32', int32: 'i32',
    i64: 'i64', int64: 'i64',
    u8: 'u8', uint8: 'u8',
  };
  const dtype = aliases[normalized];
  if (dtype === undefined) {
    throw new StepVideoError('ERR_ARGUMENT', 'unknown dtype', { expected: 'float32 or bfloat16', got: name });
  }
  return dtype;
}

// ---- bf16 / f16 bit conversions (round to nearest even, NaN kept quiet) ----

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

export function f32ToBf16Bits(value: number): number {
  f32Scratch[0] = value;
  const bits = u32Scratch[0]!;
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x007fffff) !== 0) return ((bits >>> 16) | 0x0040) & 0xffff;
  const rounding = 0x7fff + ((bits >>> 16) & 1);
  return ((bits + rounding) >>> 16) & 0xffff;
}

export function bf16BitsToF32(bits: number): number {
  u32Scratch[0] = (bits & 0xffff) << 16;
  return f32Scratch[0]!;
}

/** Rounds a number to the nearest bf16 value (as a JS number). */
export function roundBf16(value: number): number {
  return bf16BitsToF32(f32ToBf16Bits(value));
}

export function f32ArrayToBf16(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToBf16Bits(values[i]!);
  return out;
}

export function bf16ArrayToF32(bits: ArrayLike<number>): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = bf16BitsToF32(bits[i]!);
  return out;
}

export function f16BitsToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

export function f32ToF16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0);
  let e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    const halfway = 1 << (shift - 1);
    let result = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    if (rest > halfway || (rest === halfway && (result & 1) === 1)) result++;
    return sign | result;
  }
  let result = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (result & 1) === 1)) result++;
  e = result >>> 10;
  return sign | result;
}
