// Argument checking of the embedding and SwiGLU kernels (their numerics are kernel cases in
// test/cases): a bad call is a typed error that names the offending id or shape, and it leaves
// nothing allocated.
import { describe, expect, it } from 'vitest';

import { Device } from '../../lib/device.js';
import { embedding } from '../../lib/kernels/embedding.js';
import { swiglu } from '../../lib/kernels/swiglu.js';
import { Tensor } from '../../lib/tensor.js';

describe('embedding argument checks', () => {
  it('names the first out-of-range id by its position, before anything is enqueued', () => {
    using table = Tensor.zeros([10, 4]);
    const baseline = Device.cpu.memory().bytesInUse;
    const ids = Int32Array.from([1, 2, 3, 4, 5, 10]);
    expect(() => embedding(table, ids, [2, 3], 'input_ids')).toThrow(expect.objectContaining({ code: 'ERR_ARGUMENT', tensor: 'input_ids', message: expect.stringContaining('10 at [1, 2]') }));
    expect(() => embedding(table, Int32Array.from([-1]))).toThrow(expect.objectContaining({ code: 'ERR_ARGUMENT', message: expect.stringContaining('0 <= id < 10') }));
    expect(() => embedding(table, BigInt64Array.from([3n, 1n << 40n]))).toThrow(expect.objectContaining({ code: 'ERR_ARGUMENT' }));
    expect(Device.cpu.memory().bytesInUse).toBe(baseline);
  });

  it('checks the table and the ids shape', () => {
    using table = Tensor.zeros([10, 4]);
    using flat = Tensor.zeros([40]);
    using ints = Tensor.zeros([10, 4], 'i32');
    expect(() => embedding(table, Int32Array.from([1, 2, 3]), [2, 2])).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
    expect(() => embedding(flat, Int32Array.from([1]))).toThrow(expect.objectContaining({ code: 'ERR_SHAPE', tensor: 'table' }));
    expect(() => embedding(ints, Int32Array.from([1]))).toThrow(expect.objectContaining({ code: 'ERR_DTYPE' }));
  });

  it('handles an empty batch of ids', async () => {
    using table = Tensor.from(Float32Array.from({ length: 12 }, (_, i) => i), [3, 4]);
    using out = embedding(table, new Int32Array(0), [0, 5]);
    expect(out.shape).toEqual([0, 5, 4]);
    expect((await out.toFloat32()).length).toBe(0);
  });
});

describe('swiglu argument checks', () => {
  it('needs an even last dimension', () => {
    using odd = Tensor.zeros([2, 7]);
    using scalar = Tensor.zeros([]);
    expect(() => swiglu(odd)).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
    expect(() => swiglu(scalar)).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
  });
});
