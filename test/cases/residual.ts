// Cases of the gated residual (native/residual.h) at a DiT-like width, gate per batch item and none.
import { gatedResidual } from '../../lib/kernels/residual.js';
import { Rng, randn, randu } from '../helpers/random.js';
import type { OpCase } from './types.js';

export function residualCases(): OpCase[] {
  const rng = new Rng(0x5e51d);
  const res = randn(rng, 2 * 37 * 512);
  const upd = randn(rng, 2 * 37 * 512);
  const gate = randu(rng, 2 * 512, -1, 1);
  return [
    {
      name: 'gatedResidual x + gate*y, gate per batch',
      inputs: [
        { shape: [2, 37, 512], data: res },
        { shape: [2, 37, 512], data: upd },
        { shape: [2, 512], data: gate },
      ],
      run: ([xt, yt, gt]) => gatedResidual(xt!, yt!, gt!),
      reference: ([xa, ya, ga]) => Float64Array.from(xa!, (v, i) => v + ga![Math.floor(i / (37 * 512)) * 512 + (i % 512)]! * ya![i]!),
    },
    {
      name: 'gatedResidual without gate (cross-attention residual)',
      inputs: [
        { shape: [2, 37, 512], data: res },
        { shape: [2, 37, 512], data: upd },
      ],
      run: ([xt, yt]) => gatedResidual(xt!, yt!),
      reference: ([xa, ya]) => Float64Array.from(xa!, (v, i) => v + ya![i]!),
    },
  ];
}
