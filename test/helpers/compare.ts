// Error measures used by every numeric test. The golden suites use exactly the README's measure:
// rel = ||out - ref||_2 / ||ref||_2 over the whole tensor.
import { expect } from 'vitest';

import { bf16ArrayToF32, f16BitsToF32, roundBf16 } from '../../lib/dtype.js';
import type { Tensor } from '../../lib/tensor.js';

export function relErr(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (out.length !== ref.length) throw new Error(`length mismatch: ${out.length} vs ${ref.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = out[i]! - ref[i]!;
    num += d * d;
    den += ref[i]! * ref[i]!;
  }
  if (!Number.isFinite(num)) return Infinity;
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

export function maxAbsErr(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < ref.length; i++) m = Math.max(m, Math.abs(out[i]! - ref[i]!));
  return m;
}

export function allFinite(values: ArrayLike<number>): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i]!)) return false;
  return true;
}

/** Asserts rel <= tolerance, printing the measured error on failure. */
export function expectRelErr(out: ArrayLike<number>, ref: ArrayLike<number>, tolerance: number, what = 'output'): number {
  const rel = relErr(out, ref);
  expect(allFinite(out), `${what}: non-finite values`).toBe(true);
  expect(rel, `${what}: rel err ${rel.toExponential(3)} > ${tolerance.toExponential(3)}`).toBeLessThanOrEqual(tolerance);
  return rel;
}

/**
 * Tolerance for a bf16 kernel (flash-attention's rule, adapted): at most twice the error that
 * merely rounding the exact result to bf16 gives, plus a small floor for accumulation order.
 */
export function bf16Tolerance(reference: ArrayLike<number>, floor = 1e-3): number {
  const rounded = Array.from(reference, roundBf16);
  return 2 * relErr(rounded, reference) + floor;
}

export function roundArrayBf16(values: ArrayLike<number>): Float32Array {
  return Float32Array.from(values, roundBf16);
}

/**
 * Every element of t as a JS number, exactly: floats widened (bf16, f16, f32 are all doubles),
 * integers as they are. An i64 beyond 2^53 cannot be a number: read such results as i32 words.
 */
export async function exactValues(t: Tensor): Promise<Float64Array> {
  const raw = await t.toArray();
  switch (t.dtype) {
    case 'f32':
      return Float64Array.from(raw as Float32Array);
    case 'bf16':
      return Float64Array.from(bf16ArrayToF32(raw as Uint16Array));
    case 'f16':
      return Float64Array.from(raw as Uint16Array, f16BitsToF32);
    case 'i64':
      return Float64Array.from(raw as BigInt64Array, (v) => {
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`i64 ${v} is not exact as a number: read it as i32 words`);
        return Number(v);
      });
    default:
      return Float64Array.from(raw as Int32Array | Uint8Array);
  }
}

/** Asserts got equals want value for value (Object.is: -0 and +0 differ, NaN equals NaN), naming the first difference. */
export function expectIdentical(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  let first = -1;
  let differing = 0;
  for (let i = 0; i < want.length; i++) {
    if (Object.is(got[i], want[i])) continue;
    if (first < 0) first = i;
    differing++;
  }
  expect(first, `${what}: ${differing} of ${want.length} values differ, the first at ${first} (${got[first]} instead of ${want[first]})`).toBe(-1);
}
