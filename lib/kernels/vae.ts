// Typed wrappers of the video VAE's fused elementwise kernels (native/vae.h).
import { StepVideoError } from '../errors.js';
import { opsOn } from '../context.js';
import { requireFloat, sameDType, sameDevice } from '../op-utils.js';
import { formatShape } from '../shape.js';
import { Tensor } from '../tensor.js';

export interface UpsampleResidualOptions {
  /** Nearest upsampling factors of x: time and space (Upsample3D: 2 and 2). */
  time: number;
  space: number;
  /** Overwrite h with the result instead of allocating (h is dead afterwards in Upsample3D). */
  inPlace?: boolean;
}

/**
 * Upsample3D's double residual: SiLU(h + up(x)) + up(x) with up(x) the nearest upsampling of x,
 * read on the fly. h [B, T, H, W, C] or [T, H, W, C]; x the same rank, T/time × H/space × W/space.
 */
export function upsampleResidual(h: Tensor, x: Tensor, options: UpsampleResidualOptions): Tensor {
  sameDevice('upsampleResidual', h, x);
  sameDType('upsampleResidual', h, x);
  requireFloat('upsampleResidual', h);
  if ((h.ndim !== 4 && h.ndim !== 5) || x.ndim !== h.ndim) {
    throw new StepVideoError('ERR_SHAPE', 'upsampleResidual: h and x must be channels-last video of one rank', { got: `h ${formatShape(h.shape)}, x ${formatShape(x.shape)}` });
  }
  const out = options.inPlace ? h : Tensor.empty(h.shape, h.dtype, h.device);
  const views: Tensor[] = [];
  const batched = (t: Tensor): Tensor => {
    if (t.ndim === 5) return t;
    const view = t.reshape(1, ...t.shape);
    views.push(view);
    return view;
  };
  try {
    const out5 = options.inPlace ? batched(h) : batched(out);
    opsOn(out5.device).upsampleResidual(out5.handle, options.inPlace ? out5.handle : batched(h).handle, batched(x).handle, options.time, options.space);
  } catch (error) {
    if (!options.inPlace) out.dispose();
    throw error;
  } finally {
    for (const view of views) view.dispose();
  }
  return out;
}
