// Typed wrapper of the head-split family (native/split_heads.h): a fused attention projection split
// into q, k and v in the attention layout, with QK-Norm and 3D RoPE (tables from lib/kernels/rope.ts)
// applied on the way.
import { opsOn } from '../context.js';
import { StepVideoError } from '../errors.js';
import { requireFloat, requireRank, sameDType, sameDevice, withOutput } from '../op-utils.js';
import { formatShape, shapeEquals } from '../shape.js';
import { Tensor } from '../tensor.js';
import type { Rope3D } from './rope.js';

export type HeadPart = 'q' | 'k' | 'v';

export interface SplitHeadsOptions {
  heads: number;
  /** The parts each head holds side by side in the projection output, in order: ['q','k','v'] (wqkv), ['k','v'] (wkv), ['q'] (wq). */
  layout: readonly HeadPart[];
  /** Per-head RMSNorm weights [Dh] of q and k (QK-Norm). */
  qNorm?: Tensor;
  kNorm?: Tensor;
  /** RMSNorm epsilon (default 1e-6). */
  eps?: number;
  /** 3D RoPE applied to q and k after the norm (self-attention). */
  rope?: Rope3D;
}

/** The checks the forward and the backward share; returns the geometry of proj. */
function checkSplit(op: string, proj: Tensor, options: SplitHeadsOptions, ...grads: Array<Tensor | undefined>): { batch: number; tokens: number; headDim: number } {
  const { heads, layout, qNorm, kNorm, rope } = options;
  sameDevice(op, proj, ...grads, qNorm, kNorm, rope?.table);
  sameDType(op, proj, ...grads, qNorm, kNorm);
  requireFloat(op, proj);
  requireRank(op, 'proj', proj, 3, '[B, N, heads·parts·Dh]');
  if (layout.length < 1 || layout.length > 3 || new Set(layout).size !== layout.length) {
    throw new StepVideoError('ERR_ARGUMENT', `${op}: layout must name 1 to 3 distinct parts`, { got: [...layout] });
  }
  const [batch, tokens, width] = proj.shape as [number, number, number];
  if (!Number.isInteger(heads) || heads <= 0 || width % (heads * layout.length) !== 0) {
    throw new StepVideoError('ERR_SHAPE', `${op}: proj width is not heads·parts·Dh`, {
      expected: `a multiple of ${heads} heads x ${layout.length} parts`,
      got: formatShape(proj.shape),
      tensor: 'proj',
    });
  }
  if ((qNorm && !layout.includes('q')) || (kNorm && !layout.includes('k'))) {
    throw new StepVideoError('ERR_ARGUMENT', `${op}: a norm weight is given for a part the layout lacks`, { got: [...layout] });
  }
  if (rope && rope.tokens !== tokens) {
    throw new StepVideoError('ERR_SHAPE', `${op}: RoPE grid does not cover the tokens`, { expected: tokens, got: formatShape(rope.grid), tensor: 'proj' });
  }
  return { batch, tokens, headDim: width / (heads * layout.length) };
}

/**
 * Splits a fused attention projection proj [B, N, H·parts·Dh] into per-part tensors in the
 * attention layout [B, H, N, Dh], applying QK-Norm and 3D RoPE to q and k on the way.
 */
export function splitHeads(proj: Tensor, options: SplitHeadsOptions): Partial<Record<HeadPart, Tensor>> {
  const { heads, layout, qNorm, kNorm, eps = 1e-6, rope } = options;
  const { batch, tokens, headDim } = checkSplit('splitHeads', proj, options);
  const outputs: Partial<Record<HeadPart, Tensor>> = {};
  try {
    for (const part of layout) outputs[part] = Tensor.empty([batch, heads, tokens, headDim], proj.dtype, proj.device);
    opsOn(proj.device).splitHeads(
      proj.handle, outputs.q?.handle ?? null, outputs.k?.handle ?? null, outputs.v?.handle ?? null,
      qNorm?.handle ?? null, kNorm?.handle ?? null, rope?.table.handle ?? null,
      rope ? [...rope.grid] : [], rope ? [...rope.split] : [], heads, layout.length,
      layout.indexOf('q'), layout.indexOf('k'), layout.indexOf('v'), eps,
    );
  } catch (error) {
    for (const t of Object.values(outputs)) t.dispose();
    throw error;
  }
  return outputs;
}

/**
 * dproj of splitHeads(proj, options): the gradients of the parts [B, H, N, Dh] (a part left out has
 * zero gradient) → dproj [B, N, H·parts·Dh], laid out as proj. Needs the forward's input proj to
 * recompute the QK-Norm statistics; applies RoPE's transpose (rotation by −angle) then the RMSNorm
 * backward with the norm weight, for q and k; v is a plain scatter. The forward's rounding of the
 * normalised value to the dtype before the weight is not differentiated (taken as the identity).
 */
export function splitHeadsBackward(grads: Partial<Record<HeadPart, Tensor>>, proj: Tensor, options: SplitHeadsOptions): Tensor {
  const { heads, layout, qNorm, kNorm, eps = 1e-6, rope } = options;
  const { q: dq, k: dk, v: dv } = grads;
  const { batch, tokens, headDim } = checkSplit('splitHeadsBackward', proj, options, dq, dk, dv);
  const expected = [batch, heads, tokens, headDim];
  for (const part of ['q', 'k', 'v'] as const) {
    const grad = grads[part];
    if (grad === undefined) continue;
    if (!layout.includes(part)) {
      throw new StepVideoError('ERR_ARGUMENT', `splitHeadsBackward: a gradient of ${part} is given but the layout lacks it`, { got: [...layout], tensor: `d${part}` });
    }
    if (!shapeEquals(grad.shape, expected)) {
      throw new StepVideoError('ERR_SHAPE', `splitHeadsBackward: the gradient of ${part} must be [B, H, N, Dh]`, { expected: formatShape(expected), got: formatShape(grad.shape), tensor: `d${part}` });
    }
  }
  return withOutput(proj.shape, proj.dtype, proj, (dproj) =>
    opsOn(proj.device).splitHeadsBackward(
      dproj.handle, proj.handle, dq?.handle ?? null, dk?.handle ?? null, dv?.handle ?? null,
      qNorm?.handle ?? null, kNorm?.handle ?? null, rope?.table.handle ?? null,
      rope ? [...rope.grid] : [], rope ? [...rope.split] : [], heads, layout.length,
      layout.indexOf('q'), layout.indexOf('k'), layout.indexOf('v'), eps,
    ),
  );
}
