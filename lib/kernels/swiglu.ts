// Typed wrapper of the fused SwiGLU kernel (native/swiglu.h).
import { StepVideoError } from '../errors.js';
import { opsOn } from '../context.js';
import { requireFloat, withOutput } from '../op-utils.js';
import { formatShape } from '../shape.js';
import type { Tensor } from '../tensor.js';

/** silu(x[..., :F]) · x[..., F:] for x [..., 2F] (the halves of a fused gate/up projection) → [..., F]. */
export function swiglu(x: Tensor): Tensor {
  requireFloat('swiglu', x);
  const width = x.ndim === 0 ? 0 : x.size(-1);
  if (x.ndim === 0 || width % 2 !== 0) {
    throw new StepVideoError('ERR_SHAPE', 'swiglu: x must be [..., 2F] with an even last dimension', { got: formatShape(x.shape) });
  }
  return withOutput([...x.shape.slice(0, -1), width / 2], x.dtype, x, (out) => opsOn(out.device).swiglu(out.handle, x.handle));
}
