// Typed wrappers of the FP8 family (native/fp8.h): e4m3 codes in u8 tensors with one f32 scale per
// row (per output channel of a Linear weight), and the Linear over such a weight.
import { StepVideoError } from '../errors.js';
import { opsOn } from '../context.js';
import { requireFloat, requireRank, sameDevice, withOutput } from '../op-utils.js';
import { formatShape, numel } from '../shape.js';
import { Tensor } from '../tensor.js';

/** Largest finite e4m3 value: a row's scale is its amax / 448. */
export const FP8_E4M3_MAX = 448;

/** A matrix [rows, cols] as e4m3 codes (u8) and one f32 scale per row: value = decode(code) · scale. */
export class Fp8Weight implements Disposable {
  readonly codes: Tensor;
  readonly scales: Tensor;

  constructor(codes: Tensor, scales: Tensor) {
    if (codes.dtype !== 'u8' || codes.ndim !== 2 || scales.dtype !== 'f32' || scales.numel !== codes.size(0)) {
      throw new StepVideoError('ERR_SHAPE', 'an FP8 weight is u8 codes [rows, cols] with f32 scales [rows]', {
        got: `codes ${codes.dtype} ${formatShape(codes.shape)}, scales ${scales.dtype} ${formatShape(scales.shape)}`,
      });
    }
    this.codes = codes;
    this.scales = scales;
  }

  get shape(): readonly number[] {
    return this.codes.shape;
  }

  get byteLength(): number {
    return this.codes.byteLength + this.scales.byteLength;
  }

  get disposed(): boolean {
    return this.codes.disposed;
  }

  dispose(): void {
    this.codes.dispose();
    this.scales.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Quantizes x [rows, cols] (f32/bf16/f16) row by row: scale = amax/448, codes = e4m3(x / scale), RNE, saturating. */
export function quantizeFp8(x: Tensor): Fp8Weight {
  requireFloat('quantizeFp8', x);
  requireRank('quantizeFp8', 'x', x, 2, '[rows, cols]');
  const [rows, cols] = x.shape as [number, number];
  const scales = Tensor.empty([rows], 'f32', x.device);
  try {
    const codes = withOutput([rows, cols], 'u8', x, (out) => opsOn(out.device).fp8Quantize(out.handle, scales.handle, x.handle));
    return new Fp8Weight(codes, scales);
  } catch (error) {
    scales.dispose();
    throw error;
  }
}

/** decode(codes) · scale per row, as `dtype` [rows, cols]. */
export function dequantizeFp8(weight: Fp8Weight, dtype: 'f32' | 'bf16' | 'f16'): Tensor {
  sameDevice('dequantizeFp8', weight.codes, weight.scales);
  return withOutput([...weight.shape], dtype, weight.codes, (out) => opsOn(out.device).fp8Dequantize(out.handle, weight.codes.handle, weight.scales.handle));
}

export interface LinearFp8Options {
  /**
   * 'none': x as it is times the dequantized weight (FP8 weights alone); 'per-row': x quantized to
   * e4m3 per row first, the operands of the FP8 tensor-core GEMM.
   */
  activations?: 'none' | 'per-row';
  epilogue?: 'none' | 'gelu_tanh';
}

/** nn.Linear without bias over an FP8 weight [out, in]: x [..., in] → [..., out] in x's dtype. */
export function linearFp8(x: Tensor, weight: Fp8Weight, options: LinearFp8Options = {}): Tensor {
  const { activations = 'none', epilogue = 'none' } = options;
  sameDevice('linearFp8', x, weight.codes, weight.scales);
  requireFloat('linearFp8', x);
  const [out, features] = weight.shape as [number, number];
  if (x.ndim < 1 || x.size(-1) !== features) {
    throw new StepVideoError('ERR_SHAPE', 'linearFp8 input features differ from the weight', { expected: `[..., ${features}]`, got: formatShape(x.shape) });
  }
  if (activations !== 'none' && activations !== 'per-row') {
    throw new StepVideoError('ERR_ARGUMENT', 'unknown FP8 activation mode', { expected: "'none' or 'per-row'", got: activations });
  }
  if (epilogue !== 'none' && epilogue !== 'gelu_tanh') {
    throw new StepVideoError('ERR_ARGUMENT', 'unknown linearFp8 epilogue', { expected: "'none' or 'gelu_tanh'", got: epilogue });
  }
  const rows = x.ndim === 1 ? 1 : numel(x.shape.slice(0, -1));
  using flat = x.reshape(rows, features);
  using y = withOutput([rows, out], x.dtype, x, (o) =>
    opsOn(o.device).linearFp8(o.handle, flat.handle, weight.codes.handle, weight.scales.handle, activations === 'per-row' ? 1 : 0, epilogue === 'gelu_tanh' ? 1 : 0),
  );
  return y.reshape(...x.shape.slice(0, -1), out);
}
