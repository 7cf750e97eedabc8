// Shape arithmetic shared by tensors and ops. Every check raises ERR_SHAPE in the library's one
// message shape: what, expected, got.
import { StepVideoError } from './errors.js';

export type Shape = readonly number[];

/** Element count of a shape, or undefined when a dimension is not a non-negative safe integer or the product overflows. */
export function checkedNumel(shape: readonly unknown[]): number | undefined {
  let product = 1;
  let zero = false;
  for (const dim of shape) {
    if (typeof dim !== 'number' || !Number.isSafeInteger(dim) || dim < 0) return undefined;
    if (dim === 0) zero = true;
    else product *= dim;
    // Keep checking the remaining dims' validity, but an overflowing product is only fatal without a zero dim.
    if (!Number.isSafeInteger(product)) product = Infinity;
  }
  if (zero) return 0;
  return Number.isFinite(product) ? product : undefined;
}

/** Element count of a shape; throws ERR_SHAPE for a bad dimension or a count past 2^53. */
export function numel(shape: Shape): number {
  const count = checkedNumel(shape);
  if (count === undefined) {
    throw new StepVideoError('ERR_SHAPE', 'invalid shape', {
      expected: 'non-negative integer dimensions with fewer than 2^53 elements',
      got: [...shape],
    });
  }
  return count;
}

export function shapeEquals(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function assertShape(what: string, got: Shape, expected: Shape, tensor?: string): void {
  if (!shapeEquals(got, expected)) {
    throw new StepVideoError('ERR_SHAPE', what, { expected: [...expected], got: [...got], ...(tensor ? { tensor } : {}) });
  }
}

export function validateShape(shape: Shape, what = 'shape'): number[] {
  if (!Array.isArray(shape)) throw new StepVideoError('ERR_SHAPE', `${what} must be an array of sizes`, { got: shape });
  if (shape.length > 8) throw new StepVideoError('ERR_SHAPE', `${what} has too many dimensions`, { expected: 'at most 8', got: shape.length });
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new StepVideoError('ERR_SHAPE', `${what} must hold non-negative integers`, { got: [...shape] });
    }
  }
  return [...shape];
}

/** Resolves a possibly negative axis against a rank. */
export function normalizeAxis(axis: number, rank: number, what = 'axis'): number {
  const resolved = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(axis) || resolved < 0 || resolved >= rank) {
    throw new StepVideoError('ERR_ARGUMENT', `${what} out of range`, { expected: `an axis of a rank-${rank} tensor`, got: axis });
  }
  return resolved;
}

/** Right-aligned broadcast of two shapes (NumPy rules). */
export function broadcastShapes(a: Shape, b: Shape): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = new Array(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new StepVideoError('ERR_SHAPE', 'shapes do not broadcast', { expected: 'equal or 1 per dimension', got: `[${a.join(', ')}] and [${b.join(', ')}]` });
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Row-major strides (in elements) of a contiguous shape. */
export function contiguousStrides(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let stride = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = stride;
    stride *= shape[i]!;
  }
  return strides;
}

/** Resolves one -1 in a target shape against an element count. */
export function inferShape(shape: Shape, count: number): number[] {
  const out = [...shape];
  const unknown = out.indexOf(-1);
  if (unknown !== out.lastIndexOf(-1)) throw new StepVideoError('ERR_SHAPE', 'only one dimension may be -1', { got: out });
  if (unknown >= 0) {
    const known = out.reduce((n, d, i) => (i === unknown ? n : n * d), 1);
    if (known === 0 || count % known !== 0) {
      throw new StepVideoError('ERR_SHAPE', 'cannot infer the -1 dimension', { expected: `a divisor of ${count}`, got: out });
    }
    out[unknown] = count / known;
  }
  validateShape(out);
  if (numel(out) !== count) {
    throw new StepVideoError('ERR_SHAPE', 'reshape must keep the element count', { expected: count, got: `[${out.join(', ')}] (${numel(out)} elements)` });
  }
  return out;
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}
