// The foundation ops: typed, shape-checked wrappers over the native kernels. Each returns a new
// tensor owned by the caller, on the inputs' device, enqueued (not yet computed). The CPU backend
// computes in f32; the CUDA backend in f32 or bf16/f16 with f32 accumulation.
import type { DType } from './dtype.js';
import { StepVideoError } from './errors.js';
import { opsOn } from './context.js';
import { requireFloat, sameDType, sameDevice, withOutput } from './op-utils.js';
import { type Shape, broadcastShapes, contiguousStrides, formatShape, normalizeAxis, numel } from './shape.js';
import { Tensor } from './tensor.js';

// Op codes as native/kernels.h numbers them (test/cpu/addon-types.test.ts checks them against the addon's opCodes()).
export const BINARY = { add: 0, sub: 1, mul: 2, div: 3, maximum: 4, minimum: 5, gelu_tanh_backward: 6, silu_backward: 7 } as const;
export const UNARY = {
  affine: 0, silu: 1, gelu_tanh: 2, gelu_erf: 3, exp: 4, sqrt: 5, rsqrt: 6, square: 7, tanh: 8, sigmoid: 9, abs: 10, neg: 11,
} as const;
export const REDUCE = { sum: 0, mean: 1, max: 2 } as const;
const EPILOGUE = { none: 0, gelu_tanh: 1 } as const;

// ---- data movement ----

/** Element conversion to another dtype (a copy even when the dtype is unchanged). */
export function cast(x: Tensor, dtype: DType): Tensor {
  const strides = contiguousStrides(x.shape);
  return withOutput(x.shape, dtype, x, (out) => opsOn(out.device).copy(out.handle, x.handle, [...x.shape], strides, 0, strides, 0));
}

/** Reorders dimensions: out.shape[i] = x.shape[dims[i]]. */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  if (dims.length !== x.ndim || new Set(dims.map((d) => normalizeAxis(d, x.ndim))).size !== x.ndim) {
    throw new StepVideoError('ERR_ARGUMENT', 'permute needs each axis exactly once', { expected: `a permutation of 0..${x.ndim - 1}`, got: [...dims] });
  }
  const axes = dims.map((d) => normalizeAxis(d, x.ndim));
  const srcStrides = contiguousStrides(x.shape);
  const shape = axes.map((a) => x.shape[a]!);
  return withOutput(shape, x.dtype, x, (out) =>
    opsOn(out.device).copy(out.handle, x.handle, shape, axes.map((a) => srcStrides[a]!), 0, contiguousStrides(shape), 0),
  );
}

/** Elements [start, end) along `axis` (a copy; see Tensor.narrow for a view along axis 0). */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  const a = normalizeAxis(axis, x.ndim);
  const size = x.shape[a]!;
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > size || start > end) {
    throw new StepVideoError('ERR_ARGUMENT', 'slice range out of bounds', { expected: `0 <= start <= end <= ${size}`, got: `[${start}, ${end})` });
  }
  const shape = [...x.shape];
  shape[a] = end - start;
  const srcStrides = contiguousStrides(x.shape);
  return withOutput(shape, x.dtype, x, (out) =>
    opsOn(out.device).copy(out.handle, x.handle, shape, srcStrides, start * srcStrides[a]!, contiguousStrides(shape), 0),
  );
}

/** Joins tensors along `axis`; all other dimensions must agree. */
export function concat(tensors: readonly Tensor[], axis: number): Tensor {
  if (tensors.length === 0) throw new StepVideoError('ERR_ARGUMENT', 'concat needs at least one tensor');
  const first = tensors[0]!;
  sameDevice('concat', ...tensors);
  sameDType('concat', ...tensors);
  const a = normalizeAxis(axis, first.ndim);
  for (const t of tensors) {
    if (t.ndim !== first.ndim || t.shape.some((d, i) => i !== a && d !== first.shape[i])) {
      throw new StepVideoError('ERR_SHAPE', `concat along axis ${a}: other dimensions must match`, { expected: formatShape(first.shape), got: formatShape(t.shape) });
    }
  }
  const shape = [...first.shape];
  shape[a] = tensors.reduce((n, t) => n + t.shape[a]!, 0);
  const dstStrides = contiguousStrides(shape);
  return withOutput(shape, first.dtype, first, (out) => {
    let offset = 0;
    for (const t of tensors) {
      opsOn(out.device).copy(out.handle, t.handle, [...t.shape], contiguousStrides(t.shape), 0, dstStrides, offset * dstStrides[a]!);
      offset += t.shape[a]!;
    }
  });
}

/** Repeats size-1 dimensions (or prepends new ones) to reach `shape` (a copy). */
export function expand(x: Tensor, shape: Shape): Tensor {
  const target = broadcastShapes(x.shape, shape);
  if (target.length !== shape.length || target.some((d, i) => d !== shape[i])) {
    throw new StepVideoError('ERR_SHAPE', 'expand target does not fit', { expected: `a broadcast of ${formatShape(x.shape)}`, got: formatShape(shape) });
  }
  const strides = contiguousStrides(x.shape);
  const offset = shape.length - x.ndim;
  const srcStrides = shape.map((d, i) => (i < offset || x.shape[i - offset] === 1 ? 0 : strides[i - offset]!));
  return withOutput(shape, x.dtype, x, (out) => opsOn(out.device).copy(out.handle, x.handle, [...shape], srcStrides, 0, contiguousStrides(shape), 0));
}

// ---- elementwise ----

function binary(op: keyof typeof BINARY, a: Tensor, b: Tensor): Tensor {
  sameDevice(op, a, b);
  sameDType(op, a, b);
  requireFloat(op, a);
  const shape = broadcastShapes(a.shape, b.shape);
  return withOutput(shape, a.dtype, a, (out) => opsOn(out.device).binary(out.handle, a.handle, b.handle, BINARY[op]));
}

export const add = (a: Tensor, b: Tensor): Tensor => binary('add', a, b);
export const sub = (a: Tensor, b: Tensor): Tensor => binary('sub', a, b);
export const mul = (a: Tensor, b: Tensor): Tensor => binary('mul', a, b);
export const div = (a: Tensor, b: Tensor): Tensor => binary('div', a, b);
export const maximum = (a: Tensor, b: Tensor): Tensor => binary('maximum', a, b);
export const minimum = (a: Tensor, b: Tensor): Tensor => binary('minimum', a, b);
/** The backward of geluTanh: dy · gelu_tanh'(x), x being the forward's input (broadcasting as the binary ops do). */
export const geluTanhBackward = (dy: Tensor, x: Tensor): Tensor => binary('gelu_tanh_backward', dy, x);
/** The backward of silu: dy · silu'(x). */
export const siluBackward = (dy: Tensor, x: Tensor): Tensor => binary('silu_backward', dy, x);

function unary(op: keyof typeof UNARY, x: Tensor, alpha = 1, beta = 0): Tensor {
  requireFloat(op, x);
  return withOutput(x.shape, x.dtype, x, (out) => opsOn(out.device).unary(out.handle, x.handle, UNARY[op], alpha, beta));
}

/** alpha·x + beta */
export const affine = (x: Tensor, alpha: number, beta = 0): Tensor => unary('affine', x, alpha, beta);
export const scale = (x: Tensor, factor: number): Tensor => unary('affine', x, factor, 0);
export const silu = (x: Tensor): Tensor => unary('silu', x);
/** GELU with the tanh approximation (PyTorch approximate='tanh'). */
export const geluTanh = (x: Tensor): Tensor => unary('gelu_tanh', x);
/** Exact GELU (erf), as BERT uses. */
export const gelu = (x: Tensor): Tensor => unary('gelu_erf', x);
export const exp = (x: Tensor): Tensor => unary('exp', x);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x);
export const rsqrt = (x: Tensor): Tensor => unary('rsqrt', x);
export const square = (x: Tensor): Tensor => unary('square', x);
export const tanh = (x: Tensor): Tensor => unary('tanh', x);
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x);
export const abs = (x: Tensor): Tensor => unary('abs', x);
export const neg = (x: Tensor): Tensor => unary('neg', x);

// ---- matrix products ----

export interface MatmulOptions {
  /** b is stored [n, k] (the nn.Linear weight layout) instead of [k, n]. */
  transB?: boolean;
  /** [n], added to every output row. */
  bias?: Tensor;
  /** Scale applied to the product (before the bias). */
  alpha?: number;
  /** Applied to alpha·a·b + bias before the result is stored: 'gelu_tanh' is GELU(approximate='tanh'). */
  epilogue?: keyof typeof EPILOGUE;
}

/**
 * a [..., m, k] · b → [..., m, n]. b is 2-D (shared by every leading index) or has a's rank with
 * the same leading dimensions.
 */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const { transB = false, bias, alpha = 1, epilogue = 'none' } = options;
  const inputs = bias ? [a, b, bias] : [a, b];
  sameDevice('matmul', ...inputs);
  sameDType('matmul', ...inputs);
  requireFloat('matmul', a);
  if (a.ndim < 2 || b.ndim < 2) {
    throw new StepVideoError('ERR_SHAPE', 'matmul needs matrices', { expected: 'a [..., m, k] and b [k, n]', got: `${formatShape(a.shape)} and ${formatShape(b.shape)}` });
  }
  const [m, k] = [a.size(-2), a.size(-1)];
  const [bk, n] = transB ? [b.size(-1), b.size(-2)] : [b.size(-2), b.size(-1)];
  if (bk !== k) {
    throw new StepVideoError('ERR_SHAPE', 'matmul inner dimensions differ', { expected: `b with ${k} rows${transB ? ' (as [n, k])' : ''}`, got: `a ${formatShape(a.shape)}, b ${formatShape(b.shape)}` });
  }
  if (b.ndim > 2 && (b.ndim !== a.ndim || b.shape.slice(0, -2).some((d, i) => d !== a.shape[i]))) {
    throw new StepVideoError('ERR_SHAPE', 'matmul batch dimensions differ', { expected: formatShape(a.shape.slice(0, -2)), got: formatShape(b.shape.slice(0, -2)) });
  }
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== n)) {
    throw new StepVideoError('ERR_SHAPE', 'matmul bias must be a vector of length n', { expected: [n], got: [...bias.shape] });
  }
  if (!(epilogue in EPILOGUE)) {
    throw new StepVideoError('ERR_ARGUMENT', 'unknown matmul epilogue', { expected: Object.keys(EPILOGUE).join(' or '), got: epilogue });
  }
  const shape = [...a.shape.slice(0, -2), m, n];
  return withOutput(shape, a.dtype, a, (out) =>
    opsOn(out.device).matmul(out.handle, a.handle, b.handle, bias?.handle ?? null, transB, alpha, EPILOGUE[epilogue]),
  );
}

/** nn.Linear: x [..., in] · weightᵀ (+ bias) with weight [out, in]; optionally GELU-tanh fused after it. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor, options: { epilogue?: MatmulOptions['epilogue'] } = {}): Tensor {
  if (weight.ndim !== 2) throw new StepVideoError('ERR_SHAPE', 'linear weight must be [out, in]', { got: [...weight.shape] });
  if (x.ndim < 1 || x.size(-1) !== weight.size(1)) {
    throw new StepVideoError('ERR_SHAPE', 'linear input features differ from the weight', { expected: `[..., ${weight.size(1)}]`, got: formatShape(x.shape) });
  }
  const rows = x.ndim === 1 ? 1 : numel(x.shape.slice(0, -1));
  using flat = x.reshape(rows, x.size(-1));
  const y = matmul(flat, weight, { transB: true, ...(bias ? { bias } : {}), ...(options.epilogue ? { epilogue: options.epilogue } : {}) });
  using yv = y;
  return yv.reshape(...x.shape.slice(0, -1), weight.size(0));
}

// ---- reductions ----

/** Softmax over the last dimension. */
export function softmax(x: Tensor): Tensor {
  requireFloat('softmax', x);
  if (x.ndim === 0) throw new StepVideoError('ERR_SHAPE', 'softmax needs at least one dimension', { got: [] });
  return withOutput(x.shape, x.dtype, x, (out) => opsOn(out.device).softmax(out.handle, x.handle));
}

function reduce(op: keyof typeof REDUCE, x: Tensor, axis: number, keepDim: boolean): Tensor {
  requireFloat(op, x);
  const a = normalizeAxis(axis, x.ndim);
  const shape = keepDim ? x.shape.map((d, i) => (i === a ? 1 : d)) : x.shape.filter((_, i) => i !== a);
  return withOutput(shape, x.dtype, x, (out) => opsOn(out.device).reduce(out.handle, x.handle, a, REDUCE[op]));
}

export const sum = (x: Tensor, axis: number, keepDim = false): Tensor => reduce('sum', x, axis, keepDim);
export const mean = (x: Tensor, axis: number, keepDim = false): Tensor => reduce('mean', x, axis, keepDim);
export const max = (x: Tensor, axis: number, keepDim = false): Tensor => reduce('max', x, axis, keepDim);
