// The FP8 Linear's f32 bounds (test/cases/fp8.ts) against a model of each path's arithmetic, run
// on the cases' own seeded inputs before any GPU run (docs/TOLERANCES.md, "FP8 GEMM"). The bound of
// the tensor-core path must cover every plausible Hopper accumulation with 25% to spare (the large
// cases are simulated on a prefix of their rows: the norm-wise error of 128 outputs spreads by about
// 6%) and must fail fast accumulation; the f32 paths' bounds must cover twice the sum of two f32
// twins' own errors. The simulated twin is checked against the real CPU twin.
import { describe, expect, it } from 'vitest';

import { linearFp8, quantizeFp8 } from '../../lib/kernels/fp8.js';
import { Tensor } from '../../lib/tensor.js';
import { FP8_LARGE_LINEARS, FP8_TENSOR_CORE_F32_BOUND, fp8LargeInputs, fp8SmallInputs } from '../cases/fp8.js';
import { relErr } from '../helpers/compare.js';
import { type AccumulationModel, HOPPER_FP8, predictLinear } from '../helpers/fp8-accumulation.js';

const VARIANTS: Array<[string, AccumulationModel]> = [
  ['e8m13 truncated, promoted every 128 (H100 as measured, CUTLASS interval)', HOPPER_FP8],
  ['addends cut to the top exponent', { ...HOPPER_FP8, alignTerms: true }],
  ['promoted every 256', { ...HOPPER_FP8, interval: 256 }],
  ['addends cut, promoted every 256', { ...HOPPER_FP8, alignTerms: true, interval: 256 }],
  ['14 bits, nearest, every 128 (the issue\'s model)', { bits: 14, rounding: 'nearest', alignTerms: false, interval: 128 }],
];
const FAST_ACCUMULATION: AccumulationModel = { ...HOPPER_FP8, interval: Infinity };

interface Simulated {
  name: string;
  x: Float32Array;
  rows: number;
  w: Float32Array;
  n: number;
  k: number;
  gelu: boolean;
  f32Bound: number;
}

function simulatedCases(): Simulated[] {
  const small = fp8SmallInputs();
  const cases: Simulated[] = [false, true].map((gelu) => ({ name: `[22, 96] x [37, 96]${gelu ? ' + GELU' : ''} (whole case)`, x: small.x, rows: 22, w: small.w, n: small.rows, k: small.cols, gelu, f32Bound: 1e-5 }));
  for (const [name, , k, , gelu, seed] of FP8_LARGE_LINEARS) {
    const { x, w } = fp8LargeInputs(seed, 2, 64, k);
    cases.push({ name: `${name} (rows 0-1 x outputs 0-63)`, x, rows: 2, w, n: 64, k, gelu, f32Bound: 2e-5 });
  }
  return cases;
}

describe('FP8 GEMM f32 bounds against the accumulation model (cases\' own inputs)', () => {
  for (const c of simulatedCases()) {
    it(c.name, async () => {
      const { vsTwin, twinVsExact, twin } = predictLinear(c.x, c.rows, c.w, c.n, c.k, c.gelu, [...VARIANTS.map(([, m]) => m), FAST_ACCUMULATION]);
      const fast = vsTwin.pop()!;
      console.log(`${c.name}: ${VARIANTS.map(([label], i) => `${label} ${vsTwin[i]!.toExponential(2)}`).join('; ')}; fast accumulation ${fast.toExponential(2)}; f32 twin vs exact ${twinVsExact.toExponential(2)}`);
      expect(FP8_TENSOR_CORE_F32_BOUND).toBeGreaterThanOrEqual(1.25 * Math.max(...vsTwin));
      if (c.k > 4096) expect(fast, 'fast accumulation must break the bound at the released widths').toBeGreaterThan(FP8_TENSOR_CORE_F32_BOUND);
      expect(c.f32Bound).toBeGreaterThanOrEqual(2 * 2 * twinVsExact);

      // The simulated twin is the CPU twin's arithmetic: the real one agrees within two f32 errors.
      using x = Tensor.from(c.x, [c.rows, c.k], { device: 'cpu' });
      using w = Tensor.from(c.w, [c.n, c.k], { device: 'cpu' });
      using q = quantizeFp8(w);
      using out = linearFp8(x, q, { activations: 'per-row', ...(c.gelu ? { epilogue: 'gelu_tanh' as const } : {}) });
      expect(relErr(await out.toFloat32(), twin)).toBeLessThanOrEqual(2 * twinVsExact + 1e-7);
    });
  }
});
