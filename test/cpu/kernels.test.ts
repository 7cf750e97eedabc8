// Every kernel case (test/cases) on the CPU backend against its float64 reference: within the
// case's tolerance, or value for value where the case is exact by construction.
import { describe, expect, it } from 'vitest';

import { Tensor } from '../../lib/tensor.js';
import { allCases } from '../cases/index.js';
import { MUTANT_SEPARATION } from '../cases/types.js';
import { exactValues, expectIdentical, expectRelErr, relErr } from '../helpers/compare.js';

describe('kernels on the CPU backend vs float64 references', () => {
  for (const testCase of allCases()) {
    it(testCase.name, async () => {
      const inputs = testCase.inputs.map((input) => Tensor.from(input.data, input.shape, { device: 'cpu', ...(input.dtype ? { dtype: input.dtype } : {}) }));
      const out = testCase.run(inputs);
      const ref = testCase.reference(testCase.inputs.map((input) => input.data));
      if (testCase.exact) {
        expectIdentical(await exactValues(out), ref, testCase.name);
      } else {
        const got = await out.toFloat32();
        expect(got.length).toBe(ref.length);
        const tolerance = testCase.tolerance ?? 2e-6;
        expectRelErr(got, ref, tolerance, testCase.name);
        // The case can tell its mutants (a defect each) from rounding: far outside the bound.
        for (const mutant of testCase.mutants ?? []) {
          const distance = relErr(got, mutant.reference(testCase.inputs.map((input) => input.data)));
          expect(distance, `${testCase.name}: ${mutant.defect} is only ${distance.toExponential(2)} away`).toBeGreaterThan(MUTANT_SEPARATION * tolerance);
        }
      }
      for (const t of [...inputs, out]) t.dispose();
    });
  }
});
