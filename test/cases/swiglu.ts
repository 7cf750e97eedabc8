// Cases of the fused SwiGLU (native/swiglu.h): the tiny Step-LLM's F' = 512, odd widths, large
// gate values (where SiLU saturates), and the assumed released width F' = 16384 (large case).
import type { DType } from '../../lib/dtype.js';
import { swiglu } from '../../lib/kernels/swiglu.js';
import { cast } from '../../lib/ops.js';
import { Tensor } from '../../lib/tensor.js';
import { fitEmulated } from '../helpers/gpu.js';
import { Rng, randn } from '../helpers/random.js';
import type { LargeCase, OpCase } from './types.js';

/** float64 silu(x[..., :F]) · x[..., F:] over rows of width 2F. */
export function swigluRef(x: ArrayLike<number>, half: number): Float64Array {
  const rows = x.length / (2 * half);
  const out = new Float64Array(rows * half);
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < half; j++) {
      const g = x[r * 2 * half + j]!;
      out[r * half + j] = (g / (1 + Math.exp(-g))) * x[r * 2 * half + half + j]!;
    }
  return out;
}

function swigluCase(name: string, shape: number[], seed: number, std = 1.5): OpCase {
  const rng = new Rng(seed);
  const count = shape.reduce((a, b) => a * b, 1);
  const half = shape[shape.length - 1]! / 2;
  return {
    name,
    inputs: [{ shape, data: randn(rng, count, std) }],
    run: ([x]) => swiglu(x!),
    reference: ([x]) => swigluRef(x!, half),
  };
}

export function swigluCases(): OpCase[] {
  return [
    swigluCase('swiglu: tiny Step-LLM [2, 32, 2 x 512]', [2, 32, 1024], 400),
    swigluCase('swiglu: odd half width [3, 5, 2 x 131]', [3, 5, 262], 401),
    swigluCase('swiglu: saturating gates (std 12), [7, 2 x 64]', [7, 128], 402, 12),
  ];
}

export function swigluLargeCases(): LargeCase[] {
  const rows = 2 * 320;
  // On the emulated device (test/helpers/gpu.ts): every row (both batch items) at a narrower F'.
  const width = fitEmulated(16384, 2048, "F' 16384 -> 2048 to fit CI time");
  const half = width.value;
  // Built on first use: the suite collects these cases even where it is skipped.
  let data: Float32Array | undefined;
  const inputValues = () => (data ??= randn(new Rng(410), rows * 2 * half, 1.5));
  const sampleRows = [0, 1, 319, 320, 639];
  return [
    {
      name: `swiglu: Step-LLM [2, 320, 2 x 16384] (assumed released F')${width.note}`,
      async runGpu(dtype: DType) {
        using f32 = Tensor.from(inputValues(), [2, 320, 2 * half], { device: 'cuda' });
        using input = dtype === 'f32' ? f32.clone() : cast(f32, dtype);
        return swiglu(input);
      },
      async runCpuSample() {
        const x = inputValues();
        const picked = new Float32Array(sampleRows.length * 2 * half);
        sampleRows.forEach((r, i) => picked.set(x.subarray(r * 2 * half, (r + 1) * 2 * half), i * 2 * half));
        using input = Tensor.from(picked, [sampleRows.length, 2 * half], { device: 'cpu' });
        using out = swiglu(input);
        return await out.toFloat32();
      },
      sample: (output) => {
        const picked = new Float32Array(sampleRows.length * half);
        sampleRows.forEach((r, i) => picked.set(output.subarray(r * half, (r + 1) * half), i * half));
        return picked;
      },
      // bf16: the input halves and the output are each rounded once.
      tolerance: { f32: 1e-6, bf16: 6e-3 },
    },
  ];
}
