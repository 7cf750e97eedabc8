// Every foundation op on the CPU backend against its float64 reference (random, non-zero inputs,
// odd sizes). The same cases run on CUDA in test/gpu/core-ops.test.ts.
import { describe, expect, it } from 'vitest';

import { Tensor } from '../../lib/tensor.js';
import { expectRelErr } from '../helpers/compare.js';
import { coreOpCases } from '../helpers/op-cases.js';

describe('foundation ops on the CPU backend', () => {
  for (const testCase of coreOpCases()) {
    it(testCase.name, async () => {
      const inputs = testCase.inputs.map((input) => Tensor.from(input.data, input.shape, { device: 'cpu' }));
      const out = testCase.run(inputs);
      const got = await out.toFloat32();
      const ref = testCase.reference(testCase.inputs.map((input) => input.data));
      expect(got.length).toBe(ref.length);
      expectRelErr(got, ref, testCase.tolerance ?? 2e-6, testCase.name);
      for (const t of [...inputs, out]) t.dispose();
    });
  }
});
