// Typed wrappers of the normalisation kernels (native/norm.h).
import { StepVideoError } from '../errors.js';
import { opsOn } from '../context.js';
import { requireFloat, sameDType, sameDevice, withOutput } from '../op-utils.js';
import { formatShape, shapeEquals } from '../shape.js';
import type { Tensor } from '../tensor.js';

export interface LayerNormOptions {
  /** Affine weight [D]. */
  weight?: Tensor;
  /** Affine bias [D]. */
  bias?: Tensor;
  /** AdaLN modulation: y·(1 + scale) + shift, scale/shift [G, D] with the rows split evenly into G groups. */
  scale?: Tensor;
  shift?: Tensor;
  eps: number;
}

/** LayerNorm over the last dimension, optionally affine, optionally AdaLN-modulated. */
export function layerNorm(x: Tensor, options: LayerNormOptions): Tensor {
  const { weight, bias, scale, shift, eps } = options;
  sameDevice('layerNorm', x, weight, bias, scale, shift);
  sameDType('layerNorm', x, weight, bias, scale, shift);
  requireFloat('layerNorm', x);
  if ((scale === undefined) !== (shift === undefined)) {
    throw new StepVideoError('ERR_ARGUMENT', 'layerNorm: scale and shift come together');
  }
  return withOutput(x.shape, x.dtype, x, (out) =>
    opsOn(out.device).layerNorm(out.handle, x.handle, weight?.handle ?? null, bias?.handle ?? null, scale?.handle ?? null, shift?.handle ?? null, eps),
  );
}

/**
 * dx of layerNorm(x, { weight, bias, scale, shift, eps }) for dy like x: bias and shift do not enter
 * dx, so only weight and scale are taken (training: the norm weights and the modulation are frozen,
 * so there are no weight gradients). The statistics are recomputed from x.
 */
export function layerNormBackward(dy: Tensor, x: Tensor, options: { weight?: Tensor; scale?: Tensor; eps: number }): Tensor {
  const { weight, scale, eps } = options;
  sameDevice('layerNormBackward', dy, x, weight, scale);
  sameDType('layerNormBackward', dy, x, weight, scale);
  requireFloat('layerNormBackward', x);
  if (!shapeEquals(dy.shape, x.shape)) {
    throw new StepVideoError('ERR_SHAPE', 'layerNormBackward: dy must have the shape of x', { expected: formatShape(x.shape), got: formatShape(dy.shape), tensor: 'dy' });
  }
  return withOutput(x.shape, x.dtype, x, (dx) =>
    opsOn(dx.device).layerNormBackward(dx.handle, dy.handle, x.handle, weight?.handle ?? null, scale?.handle ?? null, eps),
  );
}

/** RMSNorm over the last dimension (normalised value rounded to the dtype before the weight). */
export function rmsNorm(x: Tensor, weight: Tensor | undefined, eps: number): Tensor {
  sameDevice('rmsNorm', x, weight);
  sameDType('rmsNorm', x, weight);
  requireFloat('rmsNorm', x);
  return withOutput(x.shape, x.dtype, x, (out) => opsOn(out.device).rmsNorm(out.handle, x.handle, weight?.handle ?? null, eps));
}

/**
 * GroupNorm computed per frame on channels-last video [..., H, W, C] (every leading index is a
 * frame with its own statistics), optionally followed by SiLU.
 */
export function groupNorm(x: Tensor, weight: Tensor, bias: Tensor, options: { groups?: number; eps?: number; silu?: boolean } = {}): Tensor {
  const { groups = 32, eps = 1e-5, silu = false } = options;
  sameDevice('groupNorm', x, weight, bias);
  sameDType('groupNorm', x, weight, bias);
  if (x.ndim < 3) throw new StepVideoError('ERR_SHAPE', 'groupNorm: x must be [..., H, W, C]', { got: formatShape(x.shape) });
  return withOutput(x.shape, x.dtype, x, (out) => opsOn(out.device).groupNorm(out.handle, x.handle, weight.handle, bias.handle, groups, eps, silu));
}
