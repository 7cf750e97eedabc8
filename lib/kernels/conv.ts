// Typed wrappers of the convolution family (native/conv.h): causal 3D and per-frame 2D convolutions
// on channels-last video, with zero padding, causal zero frames and nearest upsampling resolved on
// read (nothing padded or upsampled is materialised), and an optional fused residual.
import { StepVideoError } from '../errors.js';
import { opsOn } from '../context.js';
import { requireFloat, sameDType, sameDevice } from '../op-utils.js';
import * as ops from '../ops.js';
import { type Shape, formatShape, shapeEquals } from '../shape.js';
import { Tensor } from '../tensor.js';

/** Zero padding of the (upsampled) input: frames before/after, rows above/below, columns left/right. */
export interface ConvPadding {
  front: number;
  back: number;
  top: number;
  bottom: number;
  left: number;
  right: number;
}

export interface Conv3dOptions {
  /** [Cout]. */
  bias?: Tensor;
  /** Added to the output; the output's shape. */
  residual?: Tensor;
  /** (time, height, width) strides; a number sets all three. Default 1. */
  stride?: number | readonly [number, number, number];
  /** Zero padding; missing sides are 0. */
  padding?: Partial<ConvPadding>;
  /** Nearest upsampling of x by these factors (1, 2, 4 or 8) before the convolution, resolved on read. Default 1. */
  upsample?: { time?: number; space?: number };
  /** Write the result into this tensor (e.g. a time slice of a larger output) instead of a new one. */
  out?: Tensor;
}

interface ResolvedConv {
  inShape: number[];
  outShape: number[];
  stride: number[];
  pads: number[];
  upsample: number[];
  batched: boolean;
}

function resolve(x: Tensor, weight: Tensor, options: Conv3dOptions): ResolvedConv {
  if (weight.ndim !== 5) {
    throw new StepVideoError('ERR_SHAPE', 'conv3d: weight must be repacked to [Cout, kt, kh, kw, Cin] (see repackConvWeight)', { got: formatShape(weight.shape) });
  }
  if (x.ndim !== 4 && x.ndim !== 5) {
    throw new StepVideoError('ERR_SHAPE', 'conv3d: x must be channels-last [B, T, H, W, C] or [T, H, W, C]', { got: formatShape(x.shape) });
  }
  const batched = x.ndim === 5;
  const [batch, frames, height, width, channels] = (batched ? x.shape : [1, ...x.shape]) as [number, number, number, number, number];
  const [cout, kt, kh, kw, cin] = weight.shape as [number, number, number, number, number];
  if (cin !== channels) {
    throw new StepVideoError('ERR_SHAPE', 'conv3d: input channels differ from the weight', { expected: `[..., ${cin}]`, got: formatShape(x.shape) });
  }
  const stride = typeof options.stride === 'number' ? [options.stride, options.stride, options.stride] : [...(options.stride ?? [1, 1, 1])];
  const p = { front: 0, back: 0, top: 0, bottom: 0, left: 0, right: 0, ...options.padding };
  const up = [options.upsample?.time ?? 1, options.upsample?.space ?? 1];
  const pads = [p.front, p.back, p.top, p.bottom, p.left, p.right];
  const valid = stride.length === 3 && stride.every((v) => Number.isInteger(v) && v >= 1) && up.every((v) => [1, 2, 4, 8].includes(v)) && pads.every((v) => Number.isInteger(v) && v >= 0);
  if (!valid) {
    throw new StepVideoError('ERR_ARGUMENT', 'conv3d: strides must be integers >= 1, upsampling factors 1, 2, 4 or 8, paddings integers >= 0', { got: { stride, padding: pads, upsample: up } });
  }
  const extent = (size: number, before: number, after: number, k: number, s: number): number => Math.floor((size + before + after - k) / s) + 1;
  const outT = extent(frames * up[0]!, p.front, p.back, kt, stride[0]!);
  const outH = extent(height * up[1]!, p.top, p.bottom, kh, stride[1]!);
  const outW = extent(width * up[1]!, p.left, p.right, kw, stride[2]!);
  if (!(outT >= 1 && outH >= 1 && outW >= 1)) {
    throw new StepVideoError('ERR_SHAPE', 'conv3d: the kernel does not fit the padded input', { expected: `kernel ${kt}x${kh}x${kw} within the padded input`, got: formatShape(x.shape) });
  }
  return {
    inShape: [batch, frames, height, width, channels],
    outShape: [batch, outT, outH, outW, cout],
    stride,
    pads,
    upsample: up,
    batched,
  };
}

/** The output shape conv3d gives for x (4-D in, 4-D out). */
export function conv3dOutputShape(x: Tensor, weight: Tensor, options: Conv3dOptions = {}): number[] {
  const r = resolve(x, weight, options);
  return r.batched ? r.outShape : r.outShape.slice(1);
}

/** `t` viewed with `shape` (the same tensor when it already has it); new views are collected in `views`. */
function viewAs(t: Tensor, shape: Shape, what: string, views: Tensor[]): Tensor {
  if (shapeEquals(t.shape, shape)) return t;
  if (t.numel !== shape.reduce((a, b) => a * b, 1)) {
    throw new StepVideoError('ERR_SHAPE', `conv3d: ${what} must have the output's shape`, { expected: formatShape(shape), got: formatShape(t.shape), tensor: what });
  }
  const view = t.reshape(...shape);
  views.push(view);
  return view;
}

function enqueueConv(call: 'conv3d' | 'conv3dKernelName', x: Tensor, weight: Tensor, options: Conv3dOptions, out: Tensor): string | void {
  const r = resolve(x, weight, options);
  const views: Tensor[] = [];
  try {
    const x5 = viewAs(x, r.inShape, 'x', views);
    const out5 = viewAs(out, r.outShape, 'out', views);
    const residual5 = options.residual ? viewAs(options.residual, r.outShape, 'residual', views) : undefined;
    return opsOn(out5.device)[call](out5.handle, x5.handle, weight.handle, options.bias?.handle ?? null, residual5?.handle ?? null, r.stride, r.pads, r.upsample);
  } finally {
    for (const view of views) view.dispose();
  }
}

/**
 * Convolution of channels-last video x [B, T, H, W, Cin] (or [T, H, W, Cin]) with a repacked weight
 * [Cout, kt, kh, kw, Cin]: out [B, To, Ho, Wo, Cout] (4-D in, 4-D out). See native/conv.h for the
 * exact definition; f32 accumulation, one rounding.
 */
export function conv3d(x: Tensor, weight: Tensor, options: Conv3dOptions = {}): Tensor {
  const { bias, residual, out } = options;
  sameDevice('conv3d', x, weight, bias, residual, out);
  sameDType('conv3d', x, weight, bias, residual, out);
  requireFloat('conv3d', x);
  const target = out ?? Tensor.empty(conv3dOutputShape(x, weight, options), x.dtype, x.device);
  try {
    enqueueConv('conv3d', x, weight, options, target);
  } catch (error) {
    if (out === undefined) target.dispose();
    throw error;
  }
  return target;
}

/** Which implementation conv3d runs for these arguments ('cpu', 'simt', 'mma-128x128', ...): for benchmarks. */
export function conv3dKernelName(x: Tensor, weight: Tensor, options: Conv3dOptions = {}): string {
  using out = Tensor.empty(conv3dOutputShape(x, weight, options), x.dtype, x.device);
  return enqueueConv('conv3dKernelName', x, weight, { ...options, residual: undefined }, out) as string;
}

export interface CausalConvOptions {
  bias?: Tensor;
  residual?: Tensor;
  /** Temporal stride; the spatial strides follow it (Downsample3D uses (2, 2, 2)). Default 1. */
  stride?: number;
  /** Nearest upsampling of x before the convolution. */
  upsample?: { time?: number; space?: number };
  /** Causal zero frames in front (default kt − 1). */
  padFront?: number;
  out?: Tensor;
}

/**
 * The VAE's causal convolution: kt − 1 zero frames in front (CausalConv, and CausalConvAfterNorm's
 * zero frames after the norm), ⌊k/2⌋ zero rows/columns on each side, no padding at the back.
 */
export function causalConv3d(x: Tensor, weight: Tensor, options: CausalConvOptions = {}): Tensor {
  const [, kt, kh, kw] = weight.shape as [number, number, number, number, number];
  const stride = options.stride ?? 1;
  return conv3d(x, weight, {
    ...(options.bias ? { bias: options.bias } : {}),
    ...(options.residual ? { residual: options.residual } : {}),
    ...(options.upsample ? { upsample: options.upsample } : {}),
    ...(options.out ? { out: options.out } : {}),
    stride: [stride, stride, stride],
    padding: {
      front: options.padFront ?? kt - 1,
      top: Math.floor(kh / 2),
      bottom: Math.floor(kh / 2),
      left: Math.floor(kw / 2),
      right: Math.floor(kw / 2),
    },
  });
}

/**
 * Repacks a PyTorch convolution weight to the layout the kernels read: [Cout, Cin, kt, kh, kw] →
 * [Cout, kt, kh, kw, Cin], and a Conv2d weight [Cout, Cin, kh, kw] → [Cout, 1, kh, kw, Cin]. A copy.
 */
export function repackConvWeight(weight: Tensor): Tensor {
  if (weight.ndim === 5) return ops.permute(weight, [0, 2, 3, 4, 1]);
  if (weight.ndim === 4) {
    const [cout, cin, kh, kw] = weight.shape as [number, number, number, number];
    using view = weight.reshape(cout, cin, 1, kh, kw);
    return ops.permute(view, [0, 2, 3, 4, 1]);
  }
  throw new StepVideoError('ERR_SHAPE', 'repackConvWeight: expected a Conv3d [Cout, Cin, kt, kh, kw] or Conv2d [Cout, Cin, kh, kw] weight', { got: formatShape(weight.shape) });
}
