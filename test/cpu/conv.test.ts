// Argument checking of the convolution family and the VAE fusions: malformed calls are typed errors
// naming the problem, never crashes (the numerics are in test/cases/conv.ts and vae.ts).
import { describe, expect, it } from 'vitest';

import { conv3d, conv3dOutputShape, causalConv3d, repackConvWeight } from '../../lib/kernels/conv.js';
import { upsampleResidual } from '../../lib/kernels/vae.js';
import { Tensor } from '../../lib/tensor.js';

describe('conv3d arguments', () => {
  it('computes output shapes from padding, stride and upsampling', () => {
    using x = Tensor.zeros([17, 8, 6, 32]);
    using w = Tensor.zeros([16, 3, 3, 3, 32]);
    expect(conv3dOutputShape(x, w, { padding: { front: 2, top: 1, bottom: 1, left: 1, right: 1 } })).toEqual([17, 8, 6, 16]);
    expect(conv3dOutputShape(x, w, { stride: 2, padding: { front: 2, top: 1, bottom: 1, left: 1, right: 1 } })).toEqual([9, 4, 3, 16]);
    expect(conv3dOutputShape(x, w, { upsample: { time: 2, space: 2 }, padding: { front: 2, top: 1, bottom: 1, left: 1, right: 1 } })).toEqual([34, 16, 12, 16]);
    using w2d = Tensor.zeros([16, 1, 3, 3, 32]);
    expect(conv3dOutputShape(x, w2d, { stride: [1, 2, 2], padding: { bottom: 1, right: 1 } })).toEqual([17, 4, 3, 16]);
  });

  it('rejects mismatched channels, unpacked weights, bad outputs and aliasing with typed errors', () => {
    using x = Tensor.zeros([1, 3, 4, 4, 8]);
    using w = Tensor.zeros([4, 3, 3, 3, 6]);
    expect(() => conv3d(x, w)).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
    using unpacked = Tensor.zeros([4, 8, 3, 3]);
    expect(() => conv3d(x, unpacked)).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
    using good = Tensor.zeros([4, 3, 3, 3, 8]);
    using wrongOut = Tensor.zeros([1, 3, 4, 4, 5]);
    expect(() => causalConv3d(x, good, { out: wrongOut })).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
    using wrongResidual = Tensor.zeros([1, 3, 4, 5, 4]);
    expect(() => causalConv3d(x, good, { residual: wrongResidual })).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
    using small = Tensor.zeros([1, 1, 1, 1, 8]);
    expect(() => conv3d(small, good)).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
    expect(() => conv3d(x, good, { stride: 0 })).toThrow(expect.objectContaining({ code: 'ERR_ARGUMENT' }));
    using same = Tensor.zeros([1, 3, 4, 4, 8]);
    using w8 = Tensor.zeros([8, 1, 1, 1, 8]);
    using view = same.reshape(1, 3, 4, 4, 8);
    expect(() => conv3d(same, w8, { out: view })).toThrow(expect.objectContaining({ code: 'ERR_ARGUMENT' }));
    using bf = Tensor.zeros([4, 3, 3, 3, 8], 'bf16');
    expect(() => conv3d(x, bf)).toThrow(expect.objectContaining({ code: 'ERR_DTYPE' }));
    using vector = Tensor.zeros([4]);
    expect(() => repackConvWeight(vector)).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
  });

  it('writes into a given output view (time slices) and leaves the rest alone', async () => {
    using x = Tensor.from(Float32Array.from({ length: 4 * 2 * 2 * 8 }, (_, i) => Math.sin(i)), [4, 2, 2, 8]);
    using w = Tensor.from(Float32Array.from({ length: 8 * 8 }, (_, i) => Math.cos(i)), [8, 1, 1, 1, 8]);
    using whole = conv3d(x, w);
    using out = Tensor.full([4, 2, 2, 8], 7);
    using lastFrames = x.narrow(2, 2);
    using target = out.narrow(2, 2);
    conv3d(lastFrames, w, { out: target });
    const [got, want] = [await out.toFloat32(), await whole.toFloat32()];
    expect(Array.from(got.subarray(0, 64))).toEqual(new Array(64).fill(7));
    expect(Array.from(got.subarray(64))).toEqual(Array.from(want.subarray(64)));
  });
});

describe('upsampleResidual arguments', () => {
  it('rejects shapes that do not upsample to h', () => {
    using h = Tensor.zeros([4, 4, 4, 8]);
    using x = Tensor.zeros([2, 2, 3, 8]);
    expect(() => upsampleResidual(h, x, { time: 2, space: 2 })).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
    using x5 = Tensor.zeros([1, 2, 2, 2, 8]);
    expect(() => upsampleResidual(h, x5, { time: 2, space: 2 })).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
    using ok = Tensor.zeros([2, 2, 2, 8]);
    expect(() => upsampleResidual(h, ok, { time: 0, space: 2 })).toThrow(expect.objectContaining({ code: 'ERR_ARGUMENT' }));
  });
});
