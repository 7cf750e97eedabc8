// Typed wrapper of the attention kernel family (native/attention.h).
import { StepVideoError } from '../errors.js';
import { opsOn } from '../context.js';
import { requireFloat, requireRank, sameDType, sameDevice, withOutput } from '../op-utils.js';
import { formatShape } from '../shape.js';
import { Tensor } from '../tensor.js';

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
function resolve(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions, op = 'attention') {
  const { kvLen, causal = false, alibiSqrt = false } = options;
  sameDevice(op, q, k, v, kvLen);
  sameDType(op, q, k, v);
  requireFloat(op, q);
  requireRank(op, 'q', q, 4, '[B, H, Nq, D]');
  requireRank(op, 'k', k, 4, '[B, Hkv, Nk, D]');
  requireRank(op, 'v', v, 4, '[B, Hkv, Nk, D]');
  const [batch, heads, queries, headDim] = q.shape as [number, number, number, number];
  if (k.shape[0] !== batch || k.shape[3] !== headDim || v.shape.some((d, i) => d !== k.shape[i])) {
    throw new StepVideoError('ERR_SHAPE', `${op}: k and v must be [B, Hkv, Nk, D] matching q`, {
      expected: `[${batch}, Hkv, Nk, ${headDim}]`,
      got: `k ${formatShape(k.shape)}, v ${formatShape(v.shape)}`,
    });
  }
  if (kvLen && (kvLen.dtype !== 'i32' || kvLen.numel !== batch)) {
    throw new StepVideoError('ERR_SHAPE', `${op}: kvLen must be i32 [B]`, { expected: `i32 [${batch}]`, got: `${kvLen.dtype} ${formatShape(kvLen.shape)}` });
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

/** The gradients attentionBackward returns: dq [B, H, Nq, D], dk and dv [B, H, Nk, D]. */
export interface AttentionGrads {
  dq: Tensor;
  dk: Tensor;
  dv: Tensor;
}

/**
 * The backward of attention(q, k, v, { scale, kvLen }) (non-causal, no ALiBi, H == Hkv): given the
 * forward's inputs, its output `out` [B, Nq, H, D] and dOut (same shape), returns dq [B, H, Nq, D],
 * dk and dv [B, H, Nk, D]. The softmax is recomputed (nothing saved but out). Keys at or past
 * kvLen[b] get zero gradients (a batch item with kvLen 0 gets zeros everywhere, as its forward
 * output is zeros). Same dtype as q (f32; bf16 and f16 on CUDA, head dim <= 128 there), f32
 * accumulation. Takes the forward's options object; causal and ALiBi are refused (ERR_UNSUPPORTED).
 */
export function attentionBackward(q: Tensor, k: Tensor, v: Tensor, out: Tensor, dOut: Tensor, options: AttentionOptions = {}): AttentionGrads {
  const op = 'attentionBackward';
  if (options.causal || options.alibiSqrt) {
    throw new StepVideoError('ERR_UNSUPPORTED', `${op}: causal and ALiBi attention have no backward`, {
      got: `causal ${options.causal ?? false}, alibiSqrt ${options.alibiSqrt ?? false}`,
    });
  }
  const r = resolve(q, k, v, options, op);
  sameDevice(op, q, out, dOut);
  sameDType(op, q, out, dOut);
  const [batch, heads, , headDim] = q.shape as [number, number, number, number];
  if (k.shape[1] !== heads) {
    throw new StepVideoError('ERR_UNSUPPORTED', `${op}: grouped-query attention (Hkv != H) has no backward`, {
      expected: `k ${formatShape([batch, heads, k.shape[2]!, headDim])}`,
      got: `k ${formatShape(k.shape)}`,
    });
  }
  for (const [name, t] of [['out', out], ['dOut', dOut]] as const) {
    if (t.ndim !== 4 || t.shape.some((d, i) => d !== r.outShape[i])) {
      throw new StepVideoError('ERR_SHAPE', `${op}: ${name} must be [B, Nq, H, D] as the forward's output`, {
        expected: formatShape(r.outShape),
        got: formatShape(t.shape),
        tensor: name,
      });
    }
  }
  const dq = Tensor.empty(q.shape, q.dtype, q.device);
  const dk = Tensor.empty(k.shape, k.dtype, k.device);
  const dv = Tensor.empty(v.shape, v.dtype, v.device);
  try {
    opsOn(q.device).attentionBackward(dq.handle, dk.handle, dv.handle, q.handle, k.handle, v.handle, out.handle, dOut.handle, r.kvLen?.handle ?? null, r.scale);
  } catch (error) {
    for (const t of [dq, dk, dv]) t.dispose();
    throw error;
  }
  return { dq, dk, dv };
}
