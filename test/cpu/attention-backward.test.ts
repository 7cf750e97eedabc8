// Argument checking of attentionBackward: what it does not compute (causal, ALiBi, grouped-query)
// and malformed calls are typed errors naming the problem, in the wrapper and again in the native
// glue (called directly here), never a crash. The numerics are in test/cases/attention-backward.ts.
import { describe, expect, it } from 'vitest';

import { getDevice } from '../../lib/device.js';
import { opsOn } from '../../lib/context.js';
import { attentionBackward } from '../../lib/kernels/attention.js';
import { Tensor } from '../../lib/tensor.js';

describe('attentionBackward arguments', () => {
  const [B, H, Nq, Nk, D] = [2, 2, 5, 7, 8];

  it('refuses causal, ALiBi and grouped-query attention (ERR_UNSUPPORTED)', () => {
    using q = Tensor.zeros([B, H, Nq, D]);
    using k = Tensor.zeros([B, H, Nk, D]);
    using out = Tensor.zeros([B, Nq, H, D]);
    expect(() => attentionBackward(q, k, k, out, out, { causal: true })).toThrow(expect.objectContaining({ code: 'ERR_UNSUPPORTED' }));
    expect(() => attentionBackward(q, k, k, out, out, { alibiSqrt: true })).toThrow(expect.objectContaining({ code: 'ERR_UNSUPPORTED' }));
    using kGrouped = Tensor.zeros([B, 1, Nk, D]);
    expect(() => attentionBackward(q, kGrouped, kGrouped, out, out)).toThrow(expect.objectContaining({ code: 'ERR_UNSUPPORTED' }));
  });

  it('refuses mismatched shapes, dtypes and kvLen with typed errors naming the tensor', () => {
    using q = Tensor.zeros([B, H, Nq, D]);
    using k = Tensor.zeros([B, H, Nk, D]);
    using out = Tensor.zeros([B, Nq, H, D]);
    using headMajor = Tensor.zeros([B, H, Nq, D]);
    expect(() => attentionBackward(q, k, k, headMajor, out)).toThrow(expect.objectContaining({ code: 'ERR_SHAPE', tensor: 'out' }));
    expect(() => attentionBackward(q, k, k, out, headMajor)).toThrow(expect.objectContaining({ code: 'ERR_SHAPE', tensor: 'dOut' }));
    using vShort = Tensor.zeros([B, H, Nk - 1, D]);
    expect(() => attentionBackward(q, k, vShort, out, out)).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
    using q3 = Tensor.zeros([B * H, Nq, D]);
    expect(() => attentionBackward(q3, k, k, out, out)).toThrow(expect.objectContaining({ code: 'ERR_SHAPE', tensor: 'q' }));
    using outBf16 = Tensor.zeros([B, Nq, H, D], 'bf16');
    expect(() => attentionBackward(q, k, k, outBf16, out)).toThrow(expect.objectContaining({ code: 'ERR_DTYPE' }));
    using kvLenF32 = Tensor.zeros([B]);
    expect(() => attentionBackward(q, k, k, out, out, { kvLen: kvLenF32 })).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
  });

  it('the native glue validates a complete call itself (wrong gradient buffers, wrong out)', () => {
    using q = Tensor.zeros([B, H, Nq, D]);
    using k = Tensor.zeros([B, H, Nk, D]);
    using out = Tensor.zeros([B, Nq, H, D]);
    using dk = Tensor.zeros([B, H, Nk, D]);
    using wrong = Tensor.zeros([B, H, Nk, D + 1]);
    const ops = opsOn(getDevice('cpu'));
    const call = (dq: Tensor, dkT: Tensor, outT: Tensor) => () =>
      ops.attentionBackward(dq.handle, dkT.handle, dk.handle, q.handle, k.handle, k.handle, outT.handle, out.handle, null, 0.5);
    expect(call(wrong, dk, out)).toThrow(/attentionBackward: dq must be \[2, 2, 5, 8\]/);
    expect(call(q, wrong, out)).toThrow(/attentionBackward: dk must be \[2, 2, 7, 8\]/);
    expect(call(q, dk, q)).toThrow(expect.objectContaining({ code: 'ERR_SHAPE', message: expect.stringMatching(/out must be \[2, 5, 2, 8\]/) }));
  });

  it('gives zero gradients for a batch item with no visible key, and for keys past kv_len', async () => {
    using q = Tensor.from(Float32Array.from({ length: B * H * Nq * D }, (_, i) => Math.sin(i)), [B, H, Nq, D]);
    using k = Tensor.from(Float32Array.from({ length: B * H * Nk * D }, (_, i) => Math.cos(i)), [B, H, Nk, D]);
    using dOut = Tensor.from(Float32Array.from({ length: B * Nq * H * D }, (_, i) => Math.sin(3 * i)), [B, Nq, H, D]);
    using out = Tensor.from(Float32Array.from({ length: B * Nq * H * D }, (_, i) => Math.cos(5 * i)), [B, Nq, H, D]);
    using kvLen = Tensor.from(Int32Array.from([0, 3]), [B], { dtype: 'i32' });
    const { dq, dk, dv } = attentionBackward(q, k, k, out, dOut, { kvLen });
    const [dqv, dkv, dvv] = [await dq.toFloat32(), await dk.toFloat32(), await dv.toFloat32()];
    for (const t of [dq, dk, dv]) t.dispose();
    const slab = (b: number, n: number) => [b * H * n * D, (b + 1) * H * n * D] as const;
    expect(dqv.subarray(...slab(0, Nq)).every((x) => x === 0)).toBe(true);
    expect(dqv.subarray(...slab(1, Nq)).some((x) => x !== 0)).toBe(true);
    for (const grad of [dkv, dvv]) {
      expect(grad.subarray(...slab(0, Nk)).every((x) => x === 0)).toBe(true);
      for (let h = 0; h < H; h++) {
        const head = ((1 * H + h) * Nk) * D;
        expect(grad.subarray(head, head + 3 * D).some((x) => x !== 0)).toBe(true);
        expect(grad.subarray(head + 3 * D, head + Nk * D).every((x) => x === 0)).toBe(true);
      }
    }
  });
});
