// Cases of the gated-residual linear (native/linear.h): x + gate ⊙ (a·Wᵀ) with a gate per batch
// item (the AdaLN gates of attn1.wo and ff.net.2), without a gate (attn2.wo), odd sizes; and the
// released widths as a large case against the CPU twin on sampled rows.
import type { DType } from '../../lib/dtype.js';
import { linearResidual } from '../../lib/kernels/linear.js';
import { cast } from '../../lib/ops.js';
import { Tensor } from '../../lib/tensor.js';
import { fitEmulated } from '../helpers/gpu.js';
import { Rng, randn, randu } from '../helpers/random.js';
import type { LargeCase, OpCase } from './types.js';

function linearResidualRef(
  x: ArrayLike<number>, w: ArrayLike<number>, residual: ArrayLike<number>, gate: ArrayLike<number> | undefined,
  rows: number, k: number, n: number, groups: number,
): Float64Array {
  const out = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    const g = Math.floor(r / (rows / groups));
    for (let c = 0; c < n; c++) {
      let acc = 0;
      for (let j = 0; j < k; j++) acc += x[r * k + j]! * w[c * k + j]!;
      out[r * n + c] = residual[r * n + c]! + (gate ? gate[g * n + c]! : 1) * acc;
    }
  }
  return out;
}

function residualCase(name: string, [batch, tokens, k, n]: [number, number, number, number], gated: boolean, seed: number): OpCase {
  const rng = new Rng(seed);
  const rows = batch * tokens;
  const inputs = [
    { shape: [batch, tokens, k], data: randn(rng, rows * k) },
    { shape: [n, k], data: randn(rng, n * k, 1 / Math.sqrt(k)) },
    { shape: [batch, tokens, n], data: randn(rng, rows * n, 2) },
    ...(gated ? [{ shape: [batch, n], data: randu(rng, batch * n, -1.5, 1.5) }] : []),
  ];
  return {
    name,
    inputs,
    run: ([x, w, residual, gate]) => linearResidual(x!, w!, residual!, gate),
    reference: ([x, w, residual, gate]) => linearResidualRef(x!, w!, residual!, gate, rows, k, n, batch),
    tolerance: 1e-5,
  };
}

export function linearCases(): OpCase[] {
  return [
    residualCase('linearResidual: gate per batch item (attn1.wo / ff.net.2), [2, 37, 96] x [80, 96]', [2, 37, 96, 80], true, 900),
    residualCase('linearResidual: no gate (attn2.wo), [2, 37, 96] x [80, 96]', [2, 37, 96, 80], false, 901),
    residualCase('linearResidual: odd sizes, gate per item, [3, 5, 33] x [17, 33]', [3, 5, 33, 17], true, 902),
  ];
}

export function linearLargeCases(): LargeCase[] {
  // On the emulated device (test/helpers/gpu.ts): both batch items (their gates) at a quarter of the
  // width, whose weight alone is made and cast on the device at about 5 M values/s.
  const size = fitEmulated<[number, number, number]>([2, 2048, 6144], [2, 64, 1536], '[2, 2048, 6144] x [6144, 6144] -> [2, 64, 1536] x [1536, 1536] to fit CI time');
  const [batch, tokens, D] = size.value;
  const rows = batch * tokens;
  let data: { x: Float32Array; w: Float32Array; residual: Float32Array; gate: Float32Array } | undefined;
  const inputs = () =>
    (data ??= (() => {
      const rng = new Rng(910);
      return { x: randn(rng, rows * D), w: randn(rng, D * D, 1 / Math.sqrt(D)), residual: randn(rng, rows * D, 2), gate: randu(rng, batch * D, -1.5, 1.5) };
    })());
  const picked = [0, 1, tokens - 1, tokens, rows - 1];
  const pick = (values: Float32Array, cols: number) => {
    const out = new Float32Array(picked.length * cols);
    picked.forEach((r, i) => out.set(values.subarray(r * cols, (r + 1) * cols), i * cols));
    return out;
  };
  const upload = (values: Float32Array, shape: number[], dtype: DType) => {
    using f32 = Tensor.from(values, shape, { device: 'cuda' });
    return dtype === 'f32' ? f32.clone() : cast(f32, dtype);
  };
  return [
    {
      name: `linearResidual: attn1.wo at the released width with per-item gates, [2, 2048, 6144] x [6144, 6144]${size.note}`,
      async runGpu(dtype) {
        const d = inputs();
        using x = upload(d.x, [batch, tokens, D], dtype);
        using w = upload(d.w, [D, D], dtype);
        using residual = upload(d.residual, [batch, tokens, D], dtype);
        using gate = upload(d.gate, [batch, D], dtype);
        return linearResidual(x, w, residual, gate);
      },
      async runCpuSample() {
        const d = inputs();
        // The sampled rows, each with the gate of the batch item it came from.
        using x = Tensor.from(pick(d.x, D), [picked.length, D], { device: 'cpu' });
        using w = Tensor.from(d.w, [D, D], { device: 'cpu' });
        using residual = Tensor.from(pick(d.residual, D), [picked.length, D], { device: 'cpu' });
        const gates = new Float32Array(picked.length * D);
        picked.forEach((r, i) => gates.set(d.gate.subarray(Math.floor(r / tokens) * D, (Math.floor(r / tokens) + 1) * D), i * D));
        using gate = Tensor.from(gates, [picked.length, D], { device: 'cpu' });
        using out = linearResidual(x, w, residual, gate);
        return await out.toFloat32();
      },
      sample: (output) => pick(output, D),
      tolerance: { f32: 1e-5, bf16: 6e-3 },
    },
  ];
}
