// The foundation ops as test cases (see ./types.ts).
import type { DType } from '../../lib/dtype.js';
import * as ops from '../../lib/ops.js';
import { Tensor } from '../../lib/tensor.js';
import { Rng, randn, randu } from '../helpers/random.js';

import type { OpCase, OpInput } from './types.js';

const prod = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function strides(shape: number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

function unravel(index: number, shape: number[]): number[] {
  const coords = new Array<number>(shape.length);
  for (let i = shape.length - 1; i >= 0; i--) {
    coords[i] = index % shape[i]!;
    index = Math.floor(index / shape[i]!);
  }
  return coords;
}

function broadcastIndex(coords: number[], shape: number[]): number {
  const offset = coords.length - shape.length;
  const s = strides(shape);
  let index = 0;
  for (let i = 0; i < shape.length; i++) index += (shape[i] === 1 ? 0 : coords[i + offset]!) * s[i]!;
  return index;
}

function binaryCase(name: string, a: number[], b: number[], f: (x: number, y: number) => number, seed: number, positiveB = false): OpCase {
  const rng = new Rng(seed);
  const out = a.length >= b.length ? a.map((d, i) => Math.max(d, b[i - (a.length - b.length)] ?? 1)) : [];
  return {
    name,
    inputs: [
      { shape: a, data: randn(rng, prod(a)) },
      { shape: b, data: positiveB ? randu(rng, prod(b), 0.5, 2) : randn(rng, prod(b)) },
    ],
    run: ([x, y]) => (ops as unknown as Record<string, (p: Tensor, q: Tensor) => Tensor>)[name.split(' ')[0]!]!(x!, y!),
    reference: ([x, y]) => {
      const r = new Float64Array(prod(out));
      for (let i = 0; i < r.length; i++) {
        const c = unravel(i, out);
        r[i] = f(x![broadcastIndex(c, a)]!, y![broadcastIndex(c, b)]!);
      }
      return r;
    },
  };
}

function unaryCase(name: string, fn: (x: Tensor) => Tensor, f: (x: number) => number, seed: number, lo = -4, hi = 4): OpCase {
  const rng = new Rng(seed);
  const shape = [3, 129];
  return {
    name,
    inputs: [{ shape, data: randu(rng, prod(shape), lo, hi) }],
    run: ([x]) => fn(x!),
    reference: ([x]) => Float64Array.from(x!, f),
  };
}

function referenceMatmul(a: ArrayLike<number>, b: ArrayLike<number>, batch: number, m: number, n: number, k: number, transB: boolean, bBatched: boolean, bias?: ArrayLike<number>, alpha = 1): Float64Array {
  const out = new Float64Array(batch * m * n);
  for (let t = 0; t < batch; t++) {
    const bo = bBatched ? t * k * n : 0;
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += a[t * m * k + i * k + p]! * (transB ? b[bo + j * k + p]! : b[bo + p * n + j]!);
        out[t * m * n + i * n + j] = alpha * s + (bias ? bias[j]! : 0);
      }
  }
  return out;
}

function matmulCase(name: string, batch: number, m: number, n: number, k: number, transB: boolean, bBatched: boolean, withBias: boolean, seed: number, alpha = 1): OpCase {
  const rng = new Rng(seed);
  const aShape = batch > 1 ? [batch, m, k] : [m, k];
  const bCore = transB ? [n, k] : [k, n];
  const bShape = bBatched ? [batch, ...bCore] : bCore;
  const inputs: OpInput[] = [
    { shape: aShape, data: randn(rng, prod(aShape)) },
    { shape: bShape, data: randn(rng, prod(bShape), 1 / Math.sqrt(k)) },
  ];
  if (withBias) inputs.push({ shape: [n], data: randn(rng, n) });
  return {
    name,
    inputs,
    run: ([a, b, bias]) => ops.matmul(a!, b!, { transB, alpha, ...(bias ? { bias } : {}) }),
    reference: ([a, b, bias]) => referenceMatmul(a!, b!, batch, m, n, k, transB, bBatched, bias, alpha),
  };
}

export function coreCases(): OpCase[] {
  const cases: OpCase[] = [
    binaryCase('add same', [5, 33], [5, 33], (x, y) => x + y, 1),
    binaryCase('add broadcast-row', [2, 7, 131], [131], (x, y) => x + y, 2),
    binaryCase('add broadcast-mid', [2, 7, 131], [2, 1, 131], (x, y) => x + y, 3),
    binaryCase('sub broadcast', [3, 1, 17], [4, 17], (x, y) => x - y, 4),
    binaryCase('mul broadcast', [2, 3, 5, 7], [3, 1, 7], (x, y) => x * y, 5),
    binaryCase('div positive', [9, 65], [65], (x, y) => x / y, 6, true),
    binaryCase('maximum same', [4, 100], [4, 100], Math.max, 7),
    binaryCase('minimum broadcast', [4, 100], [1, 100], Math.min, 8),
    // The activations' backward passes: dy · f'(x), against the float64 derivatives (checked against
    // central differences of the float64 forwards in test/unit/activation-grad.test.ts).
    binaryCase('geluTanhBackward same shape', [4, 100], [4, 100], (dy, x) => dy * geluTanhDerivative(x), 9),
    binaryCase('geluTanhBackward broadcast x', [3, 5, 64], [5, 64], (dy, x) => dy * geluTanhDerivative(x), 10),
    binaryCase('siluBackward same shape', [4, 100], [4, 100], (dy, x) => dy * siluDerivative(x), 11),
    unaryCase('silu', ops.silu, (x) => x / (1 + Math.exp(-x)), 10),
    unaryCase('geluTanh', ops.geluTanh, (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))), 11),
    unaryCase('gelu', ops.gelu, (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)), 12),
    unaryCase('exp', ops.exp, Math.exp, 13, -3, 3),
    unaryCase('sqrt', ops.sqrt, Math.sqrt, 14, 0.1, 9),
    unaryCase('rsqrt', ops.rsqrt, (x) => 1 / Math.sqrt(x), 15, 0.1, 9),
    unaryCase('tanh', ops.tanh, Math.tanh, 16),
    unaryCase('sigmoid', ops.sigmoid, (x) => 1 / (1 + Math.exp(-x)), 17),
    unaryCase('affine', (x) => ops.affine(x, 2.5, -0.75), (x) => 2.5 * x - 0.75, 18),
    unaryCase('abs', ops.abs, Math.abs, 19),
    unaryCase('neg', ops.neg, (x) => -x, 20),
    unaryCase('square', ops.square, (x) => x * x, 21),
    matmulCase('matmul square', 1, 64, 64, 64, false, false, false, 30),
    matmulCase('matmul odd sizes', 1, 37, 129, 71, false, false, false, 31),
    matmulCase('matmul transB bias (linear)', 1, 77, 257, 320, true, false, true, 32),
    matmulCase('matmul batched a, shared b', 3, 19, 45, 130, true, false, false, 33),
    matmulCase('matmul batched a and b', 4, 33, 17, 128, false, true, false, 34),
    matmulCase('matmul batched transB with alpha', 2, 65, 72, 128, true, true, false, 35, 0.0883883),
    matmulCase('matmul tall k', 1, 5, 9, 2049, true, false, true, 36),
    matmulCase('matmul empty k with bias', 2, 3, 5, 0, true, false, true, 37),
  ];
  // The GELU-tanh epilogue fused into the GEMM (DiT FFN, caption MLP): with bias, without, batched b.
  for (const [name, batch, bBatched, withBias, seed] of [
    ['matmul transB bias + gelu_tanh epilogue, odd sizes', 1, false, true, 37],
    ['matmul transB + gelu_tanh epilogue (no bias), odd sizes', 1, false, false, 38],
    ['matmul batched a and b + gelu_tanh epilogue', 3, true, false, 39],
  ] as const) {
    const base = matmulCase(name, batch, 45, 131, 96, true, bBatched, withBias, seed);
    const geluTanh = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
    cases.push({
      ...base,
      run: ([a, b, bias]) => ops.matmul(a!, b!, { transB: true, epilogue: 'gelu_tanh', ...(bias ? { bias } : {}) }),
      reference: (inputs) => base.reference(inputs).map(geluTanh),
    });
  }
  // Linear at a realistic width, through the nn.Linear wrapper with a 3-D input.
  {
    const rng = new Rng(40);
    const x = { shape: [2, 23, 384], data: randn(rng, 2 * 23 * 384) };
    const w = { shape: [200, 384], data: randn(rng, 200 * 384, 0.05) };
    const b = { shape: [200], data: randn(rng, 200) };
    cases.push({
      name: 'linear 3-D input',
      inputs: [x, w, b],
      run: ([xt, wt, bt]) => ops.linear(xt!, wt!, bt!),
      reference: ([xa, wa, ba]) => referenceMatmul(xa!, wa!, 1, 46, 200, 384, true, false, ba),
    });
  }
  // Softmax over rows of the cross-attention context length and an odd length.
  for (const [rows, cols, seed] of [
    [6, 397, 50],
    [33, 5, 51],
  ] as const) {
    const rng = new Rng(seed);
    cases.push({
      name: `softmax ${rows}x${cols}`,
      inputs: [{ shape: [rows, cols], data: randn(rng, rows * cols, 3) }],
      run: ([x]) => ops.softmax(x!),
      reference: ([x]) => {
        const r = new Float64Array(rows * cols);
        for (let i = 0; i < rows; i++) {
          let m = -Infinity;
          for (let j = 0; j < cols; j++) m = Math.max(m, x![i * cols + j]!);
          let s = 0;
          for (let j = 0; j < cols; j++) s += Math.exp(x![i * cols + j]! - m);
          for (let j = 0; j < cols; j++) r[i * cols + j] = Math.exp(x![i * cols + j]! - m) / s;
        }
        return r;
      },
    });
  }
  // Reductions over each axis of an odd 3-D shape.
  const red = [3, 17, 10];
  for (const [op, f] of [
    ['sum', (v: number[]) => v.reduce((a, b) => a + b, 0)],
    ['mean', (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length],
    ['max', (v: number[]) => Math.max(...v)],
  ] as const) {
    for (let axis = 0; axis < 3; axis++) {
      const rng = new Rng(60 + axis);
      cases.push({
        name: `${op} axis ${axis}`,
        inputs: [{ shape: red, data: randn(rng, prod(red)) }],
        run: ([x]) => (ops as unknown as Record<string, (t: Tensor, a: number) => Tensor>)[op]!(x!, axis),
        reference: ([x]) => {
          const outShape = red.filter((_, i) => i !== axis);
          const r = new Float64Array(prod(outShape));
          for (let i = 0; i < r.length; i++) {
            const c = unravel(i, outShape);
            const values: number[] = [];
            for (let d = 0; d < red[axis]!; d++) {
              const full = [...c];
              full.splice(axis, 0, d);
              values.push(x![full.reduce((acc, v, j) => acc * red[j]! + v, 0)]!);
            }
            r[i] = f(values);
          }
          return r;
        },
      });
    }
  }
  // Data movement: permute, slice, concat, expand: exact by construction on every backend.
  {
    const shape = [2, 3, 5, 7];
    const rng = new Rng(70);
    const perm = [2, 0, 3, 1];
    cases.push({
      name: 'permute 4-D',
      inputs: [{ shape, data: randn(rng, prod(shape)) }],
      run: ([x]) => ops.permute(x!, perm),
      reference: ([x]) => {
        const outShape = perm.map((p) => shape[p]!);
        const r = new Float64Array(prod(outShape));
        const s = strides(shape);
        for (let i = 0; i < r.length; i++) {
          const c = unravel(i, outShape);
          r[i] = x![perm.reduce((acc, p, j) => acc + c[j]! * s[p]!, 0)]!;
        }
        return r;
      },
      exact: true,
    });
    cases.push({
      name: 'slice middle axis',
      inputs: [{ shape, data: randn(rng, prod(shape)) }],
      run: ([x]) => ops.slice(x!, 2, 1, 4),
      reference: ([x]) => {
        const outShape = [2, 3, 3, 7];
        const r = new Float64Array(prod(outShape));
        const s = strides(shape);
        for (let i = 0; i < r.length; i++) {
          const c = unravel(i, outShape);
          r[i] = x![c[0]! * s[0]! + c[1]! * s[1]! + (c[2]! + 1) * s[2]! + c[3]!]!;
        }
        return r;
      },
      exact: true,
    });
    cases.push({
      name: 'concat axis 1',
      inputs: [
        { shape: [2, 3, 4], data: randn(rng, 24) },
        { shape: [2, 5, 4], data: randn(rng, 40) },
      ],
      run: ([a, b]) => ops.concat([a!, b!], 1),
      reference: ([a, b]) => {
        const r = new Float64Array(2 * 8 * 4);
        for (let i = 0; i < 2; i++)
          for (let j = 0; j < 8; j++)
            for (let k = 0; k < 4; k++) r[i * 32 + j * 4 + k] = j < 3 ? a![i * 12 + j * 4 + k]! : b![i * 20 + (j - 3) * 4 + k]!;
        return r;
      },
      exact: true,
    });
    cases.push({
      name: 'expand',
      inputs: [{ shape: [3, 1, 5], data: randn(rng, 15) }],
      run: ([x]) => ops.expand(x!, [2, 3, 4, 5]),
      reference: ([x]) => {
        const r = new Float64Array(2 * 3 * 4 * 5);
        for (let i = 0; i < r.length; i++) {
          const c = unravel(i, [2, 3, 4, 5]);
          r[i] = x![c[1]! * 5 + c[3]!]!;
        }
        return r;
      },
      exact: true,
    });
  }
  return [...cases, ...castAndFillCases()];
}

// ---- casts and fills: one conversion rule on both backends ----
// float -> integer: truncate toward zero, saturate to the range, NaN -> 0. integer -> integer:
// saturate. integer -> float: round to nearest even into f32, then (bf16, f16) round to nearest
// even again, i.e. through f32. float -> float: round to nearest even (overflow to infinity, NaN
// stays NaN). Filling an integer tensor converts its (double) value by the float -> integer rule.
// Expected values are written out by hand from the rule; i64 results are read as their two i32
// words (low first), so every bit is compared.

const I32_MAX = 2147483647;
const I32_MIN = -2147483648;
const I64_MAX = (1n << 63n) - 1n;
const I64_MIN = -(1n << 63n);

/** The case's one input only says where to run (its device). */
const anchor: OpInput = { shape: [1], data: new Float32Array(1) };

function i64Words(values: ReadonlyArray<number | bigint>): Float64Array {
  return Float64Array.from(values.flatMap((v) => [Number(BigInt.asIntN(32, BigInt(v))), Number(BigInt.asIntN(32, BigInt(v) >> 32n))]));
}

/** An i64 result as an [n, 2] i32 view of its words; other dtypes as they are. */
function asWords(t: Tensor): Tensor {
  if (t.dtype !== 'i64') return t;
  using wide = t;
  return wide.viewAs([wide.numel, 2], 'i32', 0);
}

function hostArray(dtype: DType, values: ReadonlyArray<number | bigint>): Float32Array | Int32Array | BigInt64Array | Uint8Array {
  if (dtype === 'i64') return BigInt64Array.from(values, (v) => BigInt(v));
  if (dtype === 'i32') return Int32Array.from(values, Number);
  if (dtype === 'u8') return Uint8Array.from(values, Number);
  return Float32Array.from(values, Number); // f32, or bf16/f16-representable values converted exactly on upload
}

function expectedValues(dtype: DType, values: ReadonlyArray<number | bigint>): Float64Array {
  return dtype === 'i64' ? i64Words(values) : Float64Array.from(values, Number);
}

function castCase(from: DType, to: DType, pairs: Array<[number | bigint, number | bigint]>, what: string): OpCase {
  const source = hostArray(from, pairs.map(([x]) => x));
  return {
    name: `cast ${from} -> ${to}: ${what}`,
    inputs: [anchor],
    run: ([where]) => {
      using x = Tensor.from(source, [source.length], { dtype: from, device: where!.device });
      return asWords(ops.cast(x, to));
    },
    reference: () => expectedValues(to, pairs.map(([, y]) => y)),
    exact: true,
    bf16: false, // the case names its own dtypes
  };
}

function fillCase(dtype: DType, value: number, expected: number | bigint, what: string): OpCase {
  return {
    name: `fill ${dtype} with ${value}: ${what}`,
    inputs: [anchor],
    run: ([where]) => asWords(Tensor.full([3], value, dtype, where!.device)),
    reference: () => expectedValues(dtype, [expected, expected, expected]),
    exact: true,
    bf16: false,
  };
}

function castAndFillCases(): OpCase[] {
  const f32Below2to31 = 2147483520; // the largest f32 below 2^31
  const f32Below2to63 = 2 ** 63 - 2 ** 39; // the largest f32 below 2^63
  const trap = 2n ** 60n + 2n ** 36n + 1n; // to f32 directly: 2^60 + 2^37; through a double first: 2^60 (a tie)
  return [
    castCase('f32', 'i32', [[0.9, 0], [-0.9, 0], [2.5, 2], [-2.5, -2], [-7.99, -7], [16777216, 16777216], [f32Below2to31, f32Below2to31],
      [2 ** 31, I32_MAX], [-(2 ** 31), I32_MIN], [-(2 ** 31) - 256, I32_MIN], [1e10, I32_MAX], [-1e10, I32_MIN], [Infinity, I32_MAX], [-Infinity, I32_MIN], [NaN, 0]],
    'truncates toward zero, saturates, NaN -> 0'),
    castCase('bf16', 'i32', [[-3.5, -3], [2.75, 2], [2 ** 31, I32_MAX], [-(2 ** 31), I32_MIN], [2 ** 32, I32_MAX], [-(2 ** 40), I32_MIN], [NaN, 0], [-Infinity, I32_MIN]],
      'the same rule from bf16'),
    castCase('f32', 'u8', [[0.99, 0], [1, 1], [254.9, 254], [255.5, 255], [256, 255], [1000, 255], [-0.5, 0], [-1, 0], [-1000, 0], [NaN, 0], [Infinity, 255], [-Infinity, 0]],
      'saturates to [0, 255]'),
    castCase('f32', 'i64', [[2 ** 62, 2n ** 62n], [-(2 ** 62), -(2n ** 62n)], [f32Below2to63, BigInt(f32Below2to63)], [2 ** 63, I64_MAX], [-(2 ** 63), I64_MIN],
      [1e19, I64_MAX], [-1e19, I64_MIN], [1e30, I64_MAX], [1.5, 1], [-1.5, -1], [NaN, 0], [Infinity, I64_MAX], [-Infinity, I64_MIN]],
    'exact below 2^63, saturates at and beyond it'),
    castCase('i32', 'u8', [[I32_MIN, 0], [-1, 0], [0, 0], [255, 255], [256, 255], [I32_MAX, 255]], 'saturates, never wraps'),
    castCase('i32', 'i64', [[I32_MIN, I32_MIN], [-1, -1], [0, 0], [I32_MAX, I32_MAX]], 'sign-extends'),
    castCase('i64', 'i32', [[I64_MIN, I32_MIN], [-(2n ** 31n) - 1n, I32_MIN], [-(2n ** 31n), I32_MIN], [-1n, -1], [2n ** 31n - 1n, I32_MAX], [2n ** 31n, I32_MAX], [2n ** 40n, I32_MAX], [I64_MAX, I32_MAX]],
      'saturates, never wraps'),
    castCase('i64', 'u8', [[-1n, 0], [0n, 0], [255n, 255], [256n, 255], [I64_MAX, 255], [I64_MIN, 0]], 'saturates'),
    castCase('u8', 'i32', [[0, 0], [127, 127], [128, 128], [255, 255]], 'unsigned'),
    castCase('i32', 'f32', [[16777217, 16777216], [16777219, 16777220], [-16777217, -16777216], [I32_MAX, 2 ** 31], [I32_MIN, -(2 ** 31)]], 'round to nearest even'),
    castCase('i64', 'f32', [[trap, 2 ** 60 + 2 ** 37], [-trap, -(2 ** 60 + 2 ** 37)], [2n ** 53n + 1n, 2 ** 53], [I64_MAX, 2 ** 63], [I64_MIN, -(2 ** 63)], [16777219n, 16777220]],
      'one rounding to f32 (never through a double)'),
    castCase('i32', 'bf16', [[257, 256], [259, 260], [2 ** 24 + 2 ** 16 + 1, 2 ** 24], [-(2 ** 24 + 2 ** 16 + 1), -(2 ** 24)], [65535, 65536]],
      'through f32: 2^24 + 2^16 + 1 -> 2^24 + 2^16 -> 2^24 (a tie), not 2^24 + 2^17'),
    castCase('i64', 'bf16', [[2n ** 40n + 2n ** 32n + 1n, 2 ** 40], [trap, 2 ** 60]], 'through f32'),
    castCase('i32', 'f16', [[2049, 2048], [2051, 2052], [65504, 65504], [100000, Infinity], [-100000, -Infinity]], 'through f32, overflow to infinity'),
    castCase('f32', 'bf16', [[1 + 2 ** -8, 1], [1 + 3 * 2 ** -8, 1 + 2 ** -6], [-(1 + 2 ** -8), -1], [3.4e38, Infinity], [-0, -0], [NaN, NaN], [-Infinity, -Infinity]],
      'round to nearest even'),
    castCase('bf16', 'f32', [[1 + 2 ** -7, 1 + 2 ** -7], [-0, -0], [3.3895313892515355e38, 3.3895313892515355e38], [NaN, NaN]], 'exact'),
    castCase('f32', 'f16', [[2049, 2048], [65519, 65504], [65520, Infinity], [-65520, -Infinity], [1 + 2 ** -11, 1]], 'round to nearest even, overflow to infinity'),
    fillCase('i32', NaN, 0, 'NaN -> 0'),
    fillCase('i32', 3e9, I32_MAX, 'saturates'),
    fillCase('i32', -3e9, I32_MIN, 'saturates'),
    fillCase('i32', -7.9, -7, 'truncates toward zero'),
    fillCase('u8', -5, 0, 'saturates'),
    fillCase('u8', 300, 255, 'saturates'),
    fillCase('u8', NaN, 0, 'NaN -> 0'),
    fillCase('i64', 1e30, I64_MAX, 'saturates'),
    fillCase('i64', -Infinity, I64_MIN, 'saturates'),
    fillCase('i64', NaN, 0, 'NaN -> 0'),
    fillCase('i64', 2 ** 53, 2n ** 53n, 'exact'),
    fillCase('bf16', 0.1, 0.10009765625, 'round to nearest even'),
    fillCase('f32', -0, -0, 'keeps the sign of zero'),
  ];
}

/** Abramowitz-Stegun 7.1.26 is too coarse for a reference; use a series/continued fraction. */
export function erf(x: number): number {
  const t = Math.abs(x);
  if (t < 2.5) {
    // Maclaurin series: converges fast for |x| < 2.5.
    let sum = t;
    let term = t;
    for (let n = 1; n < 60; n++) {
      term *= (-t * t) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // Continued fraction for erfc.
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (t + f);
  const erfc = Math.exp(-t * t) / Math.sqrt(Math.PI) / (t + f);
  return Math.sign(x) * (1 - erfc);
}

/** d/dx of 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), float64. */
export function geluTanhDerivative(x: number): number {
  const c = Math.sqrt(2 / Math.PI);
  const t = Math.tanh(c * (x + 0.044715 * x ** 3));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x);
}

/** d/dx of x·σ(x), float64. */
export function siluDerivative(x: number): number {
  const s = 1 / (1 + Math.exp(-x));
  return s * (1 + x * (1 - s));
}

