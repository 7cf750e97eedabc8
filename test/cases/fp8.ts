// Cases of the FP8 family (native/fp8.h) against an independent e4m3 reference
// (test/helpers/fp8.ts): codes bit for bit (rows with zeros, subnormal-range values, a saturating
// outlier, an all-zero row), the round trip, and the Linear over FP8 weights with the input as it
// is and quantized per row (+ GELU). Large cases: the released ff.net.2 weight [6144, 24576] and
// Linears at the released widths, against the CPU twin on sampled rows.
import type { DType } from '../../lib/dtype.js';
import { dequantizeFp8, linearFp8, quantizeFp8 } from '../../lib/kernels/fp8.js';
import { cast, concat } from '../../lib/ops.js';
import { Tensor } from '../../lib/tensor.js';
import { roundArrayBf16 } from '../helpers/compare.js';
import { quantizeRows, roundTripRows } from '../helpers/fp8.js';
import { Rng, randn } from '../helpers/random.js';
import type { LargeCase, OpCase } from './types.js';

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

export function fp8Cases(): OpCase[] {
  const rng = new Rng(800);
  const [rows, cols] = [37, 96];
  const w = weightLike(rng, rows, cols);
  const x = randn(rng, 2 * 11 * cols, 1.2);
  return [
    {
      name: 'fp8: e4m3 codes per row (RNE, saturating; zero row, outlier row in the subnormal codes), [37, 96]',
      inputs: [{ shape: [rows, cols], data: w }],
      run: ([wt]) => {
        using q = quantizeFp8(wt!);
        return q.codes.clone();
      },
      reference: ([wa]) => Float64Array.from(quantizeRows(wa!, rows, cols).codes),
      tolerance: 0,
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
          tolerance: 1e-5,
        }),
      ),
    ),
  ];
}

export function fp8LargeCases(): LargeCase[] {
  // bf16-representable values, so the f32 and bf16 runs quantize the very same numbers.
  let ff2: Float32Array | undefined;
  const weight = () => (ff2 ??= roundArrayBf16(randn(new Rng(810), 6144 * 24576, 0.02)));
  const sampleRows = [0, 1, 2047, 3000, 6143];
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
    const data = () => (inputs ??= { x: roundArrayBf16(randn(new Rng(seed), rows * k, 1)), w: roundArrayBf16(randn(new Rng(seed + 1), n * k, 1 / Math.sqrt(k))) });
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
      // Same codes on both sides; f32 accumulation over k, then (bf16) one rounding of the output.
      tolerance: { f32: 2e-5, bf16: 5e-3 },
    };
  };

  return [
    {
      name: 'fp8: codes of the released ff.net.2 weight [6144, 24576]',
      async runGpu(dtype) {
        using w = upload(weight(), [6144, 24576], dtype);
        using q = quantizeFp8(w);
        // codes (as f32) and scales side by side, so one comparison covers both
        using flat = q.codes.reshape(6144 * 24576);
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
        const scales = Float32Array.from(sampleRows, (r) => output[6144 * 24576 + r]!);
        const out = new Float32Array(codes.length + scales.length);
        out.set(codes);
        out.set(scales, codes.length);
        return out;
      },
      tolerance: { f32: 0, bf16: 0 },
    },
    linearCase('fp8: ff.net.0 width, per-row activations + GELU, [2048, 6144] x [24576, 6144]', 2048, 6144, 24576, true, 820),
    linearCase('fp8: ff.net.2 width, per-row activations, [2048, 24576] x [6144, 24576]', 2048, 24576, 6144, false, 830),
  ];
}
