// Typed wrapper of the head-split family (native/split_heads.h): a fused attention projection split
// into q, k and v in the attention layout, with QK-Norm and 3D RoPE (tables from lib/kernels/rope.ts)
// applied on the way.
import { opsOn } from '../context.js';
import { StepVideoError } from '../errors.js';
import { requireFloat, requireRank, sameDType, sameDevice } from '../op-utils.js';
import { formatShape } from '../shape.js';
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

/**
 * Splits a fused attention projection proj [B, N, H·parts·Dh] into per-part tensors in the
 * attention layout [B, H, N, Dh], applying QK-Norm and 3D RoPE to q and k on the way.
 */
export function splitHeads(proj: Tensor, options: SplitHeadsOptions): Partial<Record<HeadPart, Tensor>> {
  const { heads, layout, qNorm, kNorm, eps = 1e-6, rope } = options;
  sameDevice('splitHeads', proj, qNorm, kNorm, rope?.table);
  sameDType('splitHeads', proj, qNorm, kNorm);
  requireFloat('splitHeads', proj);
  requireRank('splitHeads', 'proj', proj, 3, '[B, N, heads·parts·Dh]');
  if (layout.length < 1 || layout.length > 3 || new Set(layout).size !== layout.length) {
    throw new StepVideoError('ERR_ARGUMENT', 'splitHeads: layout must name 1 to 3 distinct parts', { got: [...layout] });
  }
  const [batch, tokens, width] = proj.shape as [number, number, number];
  if (!Number.isInteger(heads) || heads <= 0 || width % (heads * layout.length) !== 0) {
    throw new StepVideoError('ERR_SHAPE', 'splitHeads: proj width is not heads·parts·Dh', {
      expected: `a multiple of ${heads} heads x ${layout.length} parts`,
      got: formatShape(proj.shape),
      tensor: 'proj',
    });
  }
  const headDim = width / (heads * layout.length);
  if ((qNorm && !layout.includes('q')) || (kNorm && !layout.includes('k'))) {
    throw new StepVideoError('ERR_ARGUMENT', 'splitHeads: a norm weight is given for a part the layout lacks', { got: [...layout] });
  }
  if (rope && rope.tokens !== tokens) {
    throw new StepVideoError('ERR_SHAPE', 'splitHeads: RoPE grid does not cover the tokens', { expected: tokens, got: formatShape(rope.grid), tensor: 'proj' });
  }
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
