// Typed wrapper of the attention kernel family (native/attention.h).
import { StepVideoError } from '../errors.js';
import { opsOn } from '../context.js';
import { requireFloat, requireRank, sameDType, sameDevice, withOutput } from '../op-utils.js';
import { formatShape } from '../shape.js';
import type { Tensor } from '../tensor.js';

export interface AttentionOptions {
  /** Softmax scale; default 1/sqrt(head_dim). */
  scale?: number;
  /** i32 [B]: batch item b sees keys [0, kvLen[b]) only (prefix/padding mask). */
  kvLen?: Tensor;
  /** Query i sees keys j <= i + (Nk - Nq). */
  causal?: boolean;
  /** Adds -slope_h·sqrt(i - j) with standard ALiBi slopes (causal only). */
  alibiSqrt?: boolean;
}

/** The kernel that runs an attention call: the CPU backend, or a CUDA kernel (see cuda/attention.cu). */
export type AttentionKernel = 'cpu' | 'generic' | 'mma' | 'hopper';

/** Checks the arguments; returns the output shape and the resolved options. */
function resolve(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions) {
  const { kvLen, causal = false, alibiSqrt = false } = options;
  sameDevice('attention', q, k, v, kvLen);
  sameDType('attention', q, k, v);
  requireFloat('attention', q);
  requireRank('attention', 'q', q, 4, '[B, H, Nq, D]');
  requireRank('attention', 'k', k, 4, '[B, Hkv, Nk, D]');
  requireRank('attention', 'v', v, 4, '[B, Hkv, Nk, D]');
  const [batch, heads, queries, headDim] = q.shape as [number, number, number, number];
  if (k.shape[0] !== batch || k.shape[3] !== headDim || v.shape.some((d, i) => d !== k.shape[i])) {
    throw new StepVideoError('ERR_SHAPE', 'attention: k and v must be [B, Hkv, Nk, D] matching q', {
      expected: `[${batch}, Hkv, Nk, ${headDim}]`,
      got: `k ${formatShape(k.shape)}, v ${formatShape(v.shape)}`,
    });
  }
  if (kvLen && (kvLen.dtype !== 'i32' || kvLen.numel !== batch)) {
    throw new StepVideoError('ERR_SHAPE', 'attention: kvLen must be i32 [B]', { expected: `i32 [${batch}]`, got: `${kvLen.dtype} ${formatShape(kvLen.shape)}` });
  }
  const scale = options.scale ?? 1 / Math.sqrt(headDim);
  return { outShape: [batch, queries, heads, headDim], kvLen, scale, causal, alibiSqrt };
}

/**
 * Scaled dot-product attention. q [B, H, Nq, D], k/v [B, Hkv, Nk, D] (H a multiple of Hkv:
 * grouped-query attention) → out [B, Nq, H, D] (token-major, ready for the output projection).
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): Tensor {
  const r = resolve(q, k, v, options);
  return withOutput(r.outShape, q.dtype, q, (out) =>
    opsOn(out.device).attention(out.handle, q.handle, k.handle, v.handle, r.kvLen?.handle ?? null, r.scale, r.causal, r.alibiSqrt),
  );
}

/**
 * Which kernel attention(q, k, v, options) would run now (the device's kernel policy is read at the
 * call, as attention reads it). A forced kernel that cannot take the call throws ERR_UNSUPPORTED,
 * as attention would.
 */
export function attentionKernel(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): AttentionKernel {
  const r = resolve(q, k, v, options);
  // The native side validates a complete call, output included; nothing is enqueued, so a view of
  // q with the output's shape stands in for it (no allocation at real sizes).
  using out = q.viewAs(r.outShape, q.dtype, 0);
  return opsOn(out.device).attentionKernelName(out.handle, q.handle, k.handle, v.handle, r.kvLen?.handle ?? null, r.scale, r.causal, r.alibiSqrt) as AttentionKernel;
}
