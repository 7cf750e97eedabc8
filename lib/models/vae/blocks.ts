// Building blocks shared by the VAE's encoder and decoder. Activations are channels-last video of one
// batch item, [T, H, W, C]. Every block takes ownership of its input and returns a new tensor: it
// frees each intermediate (and the input) as soon as nothing reads it, which is what bounds the
// decoder's peak memory.
import { throwIfAborted } from '../../errors.js';
import type { Device } from '../../device.js';
import { attention } from '../../kernels/attention.js';
import { causalConv3d, conv3dOutputShape } from '../../kernels/conv.js';
import { groupNorm } from '../../kernels/norm.js';
import * as ops from '../../ops.js';
import { Tensor } from '../../tensor.js';
import { GROUP_NORM_GROUPS } from './config.js';

export interface BlockContext {
  /** A weight by module path (convolutions already repacked). */
  weight(name: string): Tensor;
  device: Device;
  signal: AbortSignal | undefined;
  /**
   * A GroupNorm + convolution whose input or output has at least this many elements runs in four
   * time slices (the official 2^30 rule): the normalised input then exists one slice at a time.
   * Numerically a no-op (GroupNorm is per frame; the causal conv reads two frames back).
   */
  timeSliceElements: number;
}

/**
 * Between blocks: waits for the device (so the host never queues more than one block ahead and an
 * abort takes effect within a block) and honours the signal.
 */
export async function checkpoint(ctx: BlockContext, what: string): Promise<void> {
  throwIfAborted(ctx.signal, what);
  await ctx.device.synchronize();
  throwIfAborted(ctx.signal, what);
}

/** GroupNorm `name` (32 groups, eps 1e-5, per frame), optionally + SiLU; x not consumed. */
export function norm(ctx: BlockContext, x: Tensor, name: string, silu: boolean): Tensor {
  return groupNorm(x, ctx.weight(`${name}.weight`), ctx.weight(`${name}.bias`), { groups: GROUP_NORM_GROUPS, eps: 1e-5, silu });
}

/** A causal convolution `name` (.weight repacked, .bias) on x, not consumed. */
export function conv(ctx: BlockContext, x: Tensor, name: string, options: { residual?: Tensor; stride?: number; upsample?: { time?: number; space?: number } } = {}): Tensor {
  return causalConv3d(x, ctx.weight(`${name}.weight`), { bias: ctx.weight(`${name}.bias`), ...options });
}

/**
 * conv(zero-pad-2-frames(SiLU(GroupNorm(x)))) (+ residual): CausalConvAfterNorm after
 * base_group_norm_with_zero_pad. The zero frames are the conv's virtual causal padding. Large
 * inputs run in four time slices; x is not consumed.
 */
export function normConv(ctx: BlockContext, x: Tensor, normName: string, convName: string, residual?: Tensor): Tensor {
  const weight = ctx.weight(`${convName}.weight`);
  const bias = ctx.weight(`${convName}.bias`);
  const kt = weight.shape[1]!;
  const outShape = conv3dOutputShape(x, weight, { padding: { front: kt - 1, top: 1, bottom: 1, left: 1, right: 1 } });
  const frames = x.shape[0]!;
  const large = x.numel >= ctx.timeSliceElements || outShape.reduce((a, b) => a * b, 1) >= ctx.timeSliceElements;
  const slices = large ? Math.min(4, frames) : 1;
  if (slices === 1) {
    using h = norm(ctx, x, normName, true);
    return causalConv3d(h, weight, { bias, ...(residual ? { residual } : {}) });
  }
  const out = Tensor.empty(outShape, x.dtype, x.device);
  try {
    for (let s = 0; s < slices; s++) {
      const first = Math.floor((s * frames) / slices), end = Math.floor(((s + 1) * frames) / slices);
      // Output frames [first, end) read input frames [first − (kt − 1), end); before frame 0 they are the zero frames.
      const from = Math.max(0, first - (kt - 1));
      using input = x.narrow(from, end - from);
      using h = norm(ctx, input, normName, true);
      using target = out.narrow(first, end - first);
      using residualSlice = residual?.narrow(first, end - first);
      causalConv3d(h, weight, { bias, out: target, padFront: kt - 1 - (first - from), ...(residualSlice ? { residual: residualSlice } : {}) });
    }
  } catch (error) {
    out.dispose();
    throw error;
  }
  return out;
}

/**
 * Resnet3DBlock (no time embedding): conv2(zp(SiLU(GN2(conv1(zp(SiLU(GN1(x)))))))) + shortcut(x),
 * the shortcut a 1×1×1 conv when the width changes. Consumes x.
 */
export function resBlock(ctx: BlockContext, x: Tensor, prefix: string): Tensor {
  let shortcut: Tensor | undefined;
  let h: Tensor | undefined;
  try {
    const cout = ctx.weight(`${prefix}.conv1.conv.weight`).shape[0]!;
    shortcut = cout !== x.shape[3] ? conv(ctx, x, `${prefix}.nin_shortcut.conv`) : x;
    h = normConv(ctx, x, `${prefix}.norm1`, `${prefix}.conv1.conv`);
    if (shortcut !== x) x.dispose();
    return normConv(ctx, h, `${prefix}.norm2`, `${prefix}.conv2.conv`, shortcut);
  } finally {
    h?.dispose();
    shortcut?.dispose();
    x.dispose();
  }
}

/**
 * AttnBlock: GN (no SiLU), 1×1×1 q/k/v, one head over all T·H·W positions in (t, h, w) order,
 * causal, scale 1/√C, then proj_out(attn) + x. Consumes x.
 */
export function attnBlock(ctx: BlockContext, x: Tensor, prefix: string): Tensor {
  try {
    const [T, H, W, C] = x.shape as [number, number, number, number];
    const tokens = T * H * W;
    let attended: Tensor;
    {
      using h = norm(ctx, x, `${prefix}.norm`, false);
      using q = conv(ctx, h, `${prefix}.q.conv`);
      using k = conv(ctx, h, `${prefix}.k.conv`);
      using v = conv(ctx, h, `${prefix}.v.conv`);
      using q4 = q.reshape(1, 1, tokens, C);
      using k4 = k.reshape(1, 1, tokens, C);
      using v4 = v.reshape(1, 1, tokens, C);
      attended = attention(q4, k4, v4, { causal: true });
    }
    using a = attended;
    using video = a.reshape(T, H, W, C);
    return conv(ctx, video, `${prefix}.proj_out.conv`, { residual: x });
  } finally {
    x.dispose();
  }
}

/** Mid block: Res, causal attention, Res. Consumes x. */
export async function midBlock(ctx: BlockContext, x: Tensor, prefix: string): Promise<Tensor> {
  let h = resBlock(ctx, x, `${prefix}.block_1`);
  try {
    await checkpoint(ctx, 'VAE mid block');
    h = attnBlock(ctx, h, `${prefix}.attn_1`);
    await checkpoint(ctx, 'VAE mid block');
    return resBlock(ctx, h, `${prefix}.block_2`);
  } catch (error) {
    h.dispose();  // the live activation (blocks consume their input; disposing twice is harmless)
    throw error;
  }
}

// ---- data movement of the v2 (un)patchify stages ----

/** Each channel repeated r times consecutively (repeat_interleave on the channel axis). */
export function repeatChannels(x: Tensor, r: number): Tensor {
  const [T, H, W, C] = x.shape as [number, number, number, number];
  using spread = x.reshape(T, H, W, C, 1);
  using repeated = ops.expand(spread, [T, H, W, C, r]);
  return repeated.reshape(T, H, W, C * r);
}

/**
 * Pixel shuffle 3D by 2 followed by dropping the first frame: input channel c·8 + a·4 + b·2 + d goes
 * to output (2t + a, 2y + b, 2x + d, c). [T, H, W, 8C] → [2T − 1, 2H, 2W, C]. Not consumed.
 */
export function pixelShuffle3d(x: Tensor): Tensor {
  const [T, H, W, C8] = x.shape as [number, number, number, number];
  const C = C8 / 8;
  using blocks = x.reshape(T, H, W, C, 2, 2, 2);
  using moved = ops.permute(blocks, [0, 4, 1, 5, 2, 6, 3]);  // [T, a, H, b, W, d, C]
  using frames = moved.reshape(2 * T, 2 * H, 2 * W, C);
  return frames.narrow(1, 2 * T - 1);
}

/**
 * One zero frame in front, then pixel unshuffle 3D by 2: (2t + dt − 1, 2y + dh, 2x + dw, c) goes to
 * channel c·8 + dt·4 + dh·2 + dw of (t, y, x). [T, H, W, C] → [(T + 1)/2, H/2, W/2, 8C]. Not consumed.
 */
export function pixelUnshuffle3d(x: Tensor): Tensor {
  const [T, H, W, C] = x.shape as [number, number, number, number];
  using zero = Tensor.zeros([1, H, W, C], x.dtype, x.device);
  using padded = ops.concat([zero, x], 0);
  const T2 = (T + 1) / 2;
  using blocks = padded.reshape(T2, 2, H / 2, 2, W / 2, 2, C);
  using moved = ops.permute(blocks, [0, 2, 4, 6, 1, 3, 5]);  // [T2, H2, W2, C, dt, dh, dw]
  return moved.reshape(T2, H / 2, W / 2, 8 * C);
}

/** Mean over consecutive groups of `group` channels: [..., C] → [..., C / group]. Not consumed. */
export function averageChannels(x: Tensor, group: number): Tensor {
  const C = x.shape[x.ndim - 1]!;
  using grouped = x.reshape(...x.shape.slice(0, -1), C / group, group);
  return ops.mean(grouped, -1);
}
