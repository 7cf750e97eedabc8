// The float64 derivatives the activation backward cases are checked against (test/cases/core.ts)
// are the derivatives: central differences of the float64 forwards agree with them.
import { describe, expect, it } from 'vitest';

import { geluTanhDerivative, siluDerivative } from '../cases/core.js';

const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
const silu = (x: number) => x / (1 + Math.exp(-x));

describe('activation derivatives (float64 references)', () => {
  it('match central differences over [-8, 8]', () => {
    const h = 1e-5;
    for (let x = -8; x <= 8; x += 0.037) {
      // Central differences: error about h²·|f'''| ≈ 1e-10, rounding about 1e-16 / h ≈ 1e-11.
      expect(Math.abs(geluTanhDerivative(x) - (gelu(x + h) - gelu(x - h)) / (2 * h)), `gelu at ${x}`).toBeLessThan(1e-8);
      expect(Math.abs(siluDerivative(x) - (silu(x + h) - silu(x - h)) / (2 * h)), `silu at ${x}`).toBeLessThan(1e-8);
    }
  });
});
