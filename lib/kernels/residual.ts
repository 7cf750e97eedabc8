// Typed wrapper of the gated residual (native/residual.h): the residual add of AdaLN blocks.
import { opsOn } from '../context.js';
import { sameDType, sameDevice, withOutput } from '../op-utils.js';
import type { Tensor } from '../tensor.js';

/** x + gate ⊙ y with gate [G, D] broadcast over each group of rows (AdaLN gate); plain x + y without gate. */
export function gatedResidual(x: Tensor, y: Tensor, gate?: Tensor): Tensor {
  sameDevice('gatedResidual', x, y, gate);
  sameDType('gatedResidual', x, y, gate);
  return withOutput(x.shape, x.dtype, x, (out) => opsOn(out.device).gatedResidual(out.handle, x.handle, y.handle, gate?.handle ?? null));
}
