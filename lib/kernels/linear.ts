// Typed wrapper of the gated-residual linear (native/linear.h): the AdaLN block's
// `x + gate ⊙ (a·Wᵀ)` as one op, the add fused into the GEMM's epilogue on CUDA.
import { StepVideoError } from '../errors.js';
import { opsOn } from '../context.js';
import { requireFloat, sameDType, sameDevice, withOutput } from '../op-utils.js';
import { formatShape, numel, shapeEquals } from '../shape.js';
import type { Tensor } from '../tensor.js';

/**
 * residual + gate ⊙ (x · weightᵀ): x [..., in], weight [out, in], residual [..., out] with x's
 * leading dimensions, gate [G, out] broadcast over G equal groups of rows (the batch items); no
 * gate: a plain residual add.
 */
export function linearResidual(x: Tensor, weight: Tensor, residual: Tensor, gate?: Tensor): Tensor {
  sameDevice('linearResidual', x, weight, residual, gate);
  sameDType('linearResidual', x, weight, residual, gate);
  requireFloat('linearResidual', x);
  if (weight.ndim !== 2 || x.ndim < 1 || x.size(-1) !== weight.size(1)) {
    throw new StepVideoError('ERR_SHAPE', 'linearResidual: x [..., in] and weight [out, in] do not fit', {
      expected: `[..., ${weight.ndim === 2 ? weight.size(1) : 'in'}]`,
      got: `x ${formatShape(x.shape)}, weight ${formatShape(weight.shape)}`,
    });
  }
  const outShape = [...x.shape.slice(0, -1), weight.size(0)];
  if (!shapeEquals(residual.shape, outShape)) {
    throw new StepVideoError('ERR_SHAPE', 'linearResidual: the residual must have the output shape', { expected: formatShape(outShape), got: formatShape(residual.shape), tensor: 'residual' });
  }
  const rows = x.ndim === 1 ? 1 : numel(x.shape.slice(0, -1));
  using flatX = x.reshape(rows, x.size(-1));
  using flatResidual = residual.reshape(rows, weight.size(0));
  using y = withOutput([rows, weight.size(0)], x.dtype, x, (out) =>
    opsOn(out.device).linearResidual(out.handle, flatX.handle, weight.handle, flatResidual.handle, gate?.handle ?? null),
  );
  return y.reshape(outShape);
}
