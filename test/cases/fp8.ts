// Cases of the FP8 family (native/fp8.h) against an independent e4m3 reference
// (test/helpers/fp8.ts): codes bit for bit (rows with zeros, subnormal-range values, a saturating
// outlier, an all-zero row), the round trip, and the Linear over FP8 weights with the input as it
// is and quantized per row (+ GELU). Large cases: the released ff.net.2 weight [6144, 24576] and
// Linears at the released widths, against the CPU twin on sampled rows.
//
// Bounds of the FP8 Linear in f32 (docs/TOLERANCES.md, "FP8 GEMM"), by the path that computes it:
// the CPU twin, the f32 fallback GEMM and an f32 reference cuBLASLt all sum the same dequantized
// values in f32 (1e-5, 2e-5 at the released widths); cuBLASLt's e4m3 GEMM on Hopper tensor cores
// keeps about 13 bits inside each promotion interval (FP8_TENSOR_CORE_F32_BOUND), which
// test/cpu/fp8-accumulation.test.ts checks against a model of that accumulation on these very inputs.
import type { DType } from '../../lib/dtype.js';
import { gemmPlans } from '../../lib/device-stats.js';
import { dequantizeFp8, linearFp8, quantizeFp8 } from '../../lib/kernels/fp8.js';
import { cast, concat } from '../../lib/ops.js';
import { Tensor } from '../../lib/tensor.js';
import { roundArrayBf16 } from '../helpers/compare.js';
import { quantizeRows, roundTripRows } from '../helpers/fp8.js';
import { fitEmulated } from '../helpers/gpu.js';
import { Rng, randn } from '../helpers/random.js';
import type { LargeCase, OpCase } from './types.js';

/** f32 bound of the FP8 Linear where cuBLASLt's e4m3 GEMM ran on FP8 tensor cores (see the header). */
export const FP8_TENSOR_CORE_F32_BOUND = 4e-4;

/** Whether cuBLASLt's FP8 GEMM served a Linear with this inner size and output width (an FP8 plan with an algorithm). */
export function fp8TensorCoresRan(k: number, n: number): boolean {
  return gemmPlans().some((plan) => plan.kind === 'fp8' && plan.k === k && plan.n === n && plan.candidates > 0);
}

/** The f32 bound of a per-row FP8 Linear on CUDA: by the path it took. */
const perRowF32Bound = (k: number, n: number, f32Bound: number) => () => (fp8TensorCoresRan(k, n) ? FP8_TENSOR_CORE_F32_BOUND : f32Bound);

/** Rows of normal-ish values with zeros inside, an outlier row (its other values in the subnormal codes), a zero row. */
function weightLike(rng: Rng, rows: number, cols: number): Float32Array {
  const w = randn(rng, rows * cols, 0.05);
  w[2 * cols + 3] = 40; // one outlier: the rest of its row lands in the subnormal codes
  for (let j = 0; j < cols; j += 7) w[j] = 0; // zeros inside a row
  w.fill(0, 3 * cols, 4 * cols);
  return w;
}

function geluTanh(y: number): number {
  return 0.5 * y * (1 + Math.tanh(0.7978845608028654 * (y + 0.044715 * y * y * y)));
}

/** float64 x [rows, k] · wᵀ with w [n, k] given as values. */
function linearRef(x: ArrayLike<number>, w: ArrayLike<number>, rows: number, k: number, n: number, gelu: boolean): Float64Array {
  const out = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < n; c++) {
      let acc = 0;
      for (let j = 0; j < k; j++) acc += x[r * k + j]! * w[c * k + j]!;
      out[r * n + c] = gelu ? geluTanh(acc) : acc;
    }
  return out;
}

/** The small cases' inputs: x [22, 96] and the weight-like w [37, 96]. */
export function fp8SmallInputs(): { x: Float32Array; w: Float32Array; rows: number; cols: number } {
  const rng = new Rng(800);
  const [rows, cols] = [37, 96];
  const w = weightLike(rng, rows, cols);
  return { x: randn(rng, 2 * 11 * cols, 1.2), w, rows, cols };
}

/**
 * The first xRows rows of a large case's x [rows, k] and the first wRows rows of its w [n, k]
 * (prefixes of the same seeded streams, so a prefix is what the whole case holds there).
 */
export function fp8LargeInputs(seed: number, xRows: number, wRows: number, k: number): { x: Float32Array; w: Float32Array } {
  return { x: roundArrayBf16(randn(new Rng(seed), xRows * k, 1)), w: roundArrayBf16(randn(new Rng(seed + 1), wRows * k, 1 / Math.sqrt(k))) };
}

/** The large Linear cases: [name, rows, k, n, GELU, seed]. */
export const FP8_LARGE_LINEARS = [
  ['fp8: ff.net.0 width, per-row activations + GELU, [2048, 6144] x [24576, 6144]', 2048, 6144, 24576, true, 820],
  ['fp8: ff.net.2 width, per-row activations, [2048, 24576] x [6144, 24576]', 2048, 24576, 6144, false, 830],
] as const;

export function fp8Cases(): OpCase[] {
  const { x, w, rows, cols } = fp8SmallInputs();
  return [
    {
      name: 'fp8: e4m3 codes per row (RNE, saturating; zero row, outlier row in the subnormal codes), [37, 96]',
      inputs: [{ shape: [rows, cols], data: w }],
      run: ([wt]) => {
        using q = quantizeFp8(wt!);
        return q.codes.clone();
      },
      reference: ([wa]) => Float64Array.from(quantizeRows(wa!, rows, cols).codes),
      exact: true,
      bf16: false, // codes are u8 whatever the input dtype (the round-trip case covers bf16 input)
    },
    {
      name: 'fp8: quantize then dequantize round trip, [37, 96]',
      inputs: [{ shape: [rows, cols], data: w }],
      run: ([wt]) => {
        using q = quantizeFp8(wt!);
        return dequantizeFp8(q, wt!.dtype as 'f32' | 'bf16');
      },
      reference: ([wa]) => roundTripRows(wa!, rows, cols),
    },
    ...(['none', 'per-row'] as const).flatMap((activations) =>
      [false, true].map(
        (gelu): OpCase => ({
          name: `fp8: linear over FP8 weights, activations ${activations}${gelu ? ' + GELU-tanh' : ''}, [2, 11, 96] x [37, 96]`,
          inputs: [
            { shape: [2, 11, cols], data: x },
            { shape: [rows, cols], data: w },
          ],
          run: ([xt, wt]) => {
            using q = quantizeFp8(wt!);
            return linearFp8(xt!, q, { activations, ...(gelu ? { epilogue: 'gelu_tanh' as const } : {}) });
          },
          reference: ([xa, wa]) => {
            const xs = activations === 'per-row' ? roundTripRows(xa!, 22, cols) : xa!;
            return linearRef(xs, roundTripRows(wa!, rows, cols), 22, cols, rows, gelu);
          },
          // f32 sums of the same dequantized values (k = 96) on every f32 path.
          tolerance: 1e-5,
          ...(activations === 'per-row' ? { cudaF32Tolerance: perRowF32Bound(cols, rows, 1e-5) } : {}),
        }),
      ),
    ),
  ];
}

export function fp8LargeCases(): LargeCase[] {
  // bf16-representable values, so the f32 and bf16 runs quantize the very same numbers.
  // On the emulated device (test/helpers/gpu.ts), at about 5 M values/s: the ff.net.2 weight keeps
  // its 24576-wide rows (the per-row scale's reduction) with fewer of them; the Linears keep k (the
  // length of every sum, which the bounds depend on) with fewer rows and output columns.
  const ff2Rows = fitEmulated({ rows: 6144, sampled: [0, 1, 2047, 3000, 6143] }, { rows: 64, sampled: [0, 1, 31, 47, 63] }, '6144 -> 64 rows to fit CI time');
  const { rows: wRows, sampled: sampleRows } = ff2Rows.value;
  let ff2: Float32Array | undefined;
  const weight = () => (ff2 ??= roundArrayBf16(randn(new Rng(810), wRows * 24576, 0.02)));
  const pick = (data: Float32Array, cols: number, picked: number[]) => {
    const out = new Float32Array(picked.length * cols);
    picked.forEach((r, i) => out.set(data.subarray(r * cols, (r + 1) * cols), i * cols));
    return out;
  };
  const upload = (data: Float32Array, shape: number[], dtype: DType) => {
    using f32 = Tensor.from(data, shape, { device: 'cuda' });
    return dtype === 'f32' ? f32.clone() : cast(f32, dtype);
  };

  const linearCase = (name: string, rows: number, k: number, n: number, gelu: boolean, seed: number): LargeCase => {
    let inputs: { x: Float32Array; w: Float32Array } | undefined;
    const data = () => (inputs ??= fp8LargeInputs(seed, rows, n, k));
    const picked = [0, 1, rows / 2, rows - 1];
    const options = { activations: 'per-row' as const, ...(gelu ? { epilogue: 'gelu_tanh' as const } : {}) };
    return {
      name,
      async runGpu(dtype) {
        using x = upload(data().x, [rows, k], dtype);
        using w = upload(data().w, [n, k], dtype);
        using q = quantizeFp8(w);
        return linearFp8(x, q, options);
      },
      async runCpuSample() {
        using x = Tensor.from(pick(data().x, k, picked), [picked.length, k], { device: 'cpu' });
        using w = Tensor.from(data().w, [n, k], { device: 'cpu' });
        using q = quantizeFp8(w);
        using out = linearFp8(x, q, options);
        return await out.toFloat32();
      },
      sample: (output) => pick(output, n, picked),
      // Same codes on both sides. f32: sums of the same values in f32 (2e-5), or Hopper's FP8
      // accumulation (FP8_TENSOR_CORE_F32_BOUND); bf16: one rounding of the output (rms at most
      // 2^-8/sqrt(3) = 2.3e-3 relative) on top: twice that plus the f32 bound.
      tolerance: { f32: 2e-5, bf16: 5e-3 },
      cudaF32Tolerance: perRowF32Bound(k, n, 2e-5),
    };
  };

  return [
    {
      name: `fp8: codes of the released ff.net.2 weight [6144, 24576]${ff2Rows.note}`,
      async runGpu(dtype) {
        using w = upload(weight(), [wRows, 24576], dtype);
        using q = quantizeFp8(w);
        // codes (as f32) and scales side by side, so one comparison covers both
        using flat = q.codes.reshape(wRows * 24576);
        using codes = cast(flat, 'f32');
        return concat([codes, q.scales], 0);
      },
      async runCpuSample() {
        using w = Tensor.from(pick(weight(), 24576, sampleRows), [sampleRows.length, 24576], { device: 'cpu' });
        using q = quantizeFp8(w);
        const codes = Float32Array.from((await q.codes.toArray()) as Uint8Array);
        const scales = await q.scales.toFloat32();
        const out = new Float32Array(codes.length + scales.length);
        out.set(codes);
        out.set(scales, codes.length);
        return out;
      },
      sample: (output) => {
        const codes = pick(output, 24576, sampleRows);
        const scales = Float32Array.from(sampleRows, (r) => output[wRows * 24576 + r]!);
        const out = new Float32Array(codes.length + scales.length);
        out.set(codes);
        out.set(scales, codes.length);
        return out;
      },
      // Codes and scales are a function of the same (bf16-valued) inputs on both backends.
      exact: true,
      tolerance: { f32: 0, bf16: 0 },
    },
    ...FP8_LARGE_LINEARS.map(([name, rows, k, n, gelu, seed]) => {
      const size = fitEmulated({ rows, n }, { rows: 16, n: 128 }, `[${rows}, ${k}] x [${n}, ${k}] -> [16, ${k}] x [128, ${k}] to fit CI time`);
      return linearCase(name + size.note, size.value.rows, k, size.value.n, gelu, seed);
    }),
  ];
}
