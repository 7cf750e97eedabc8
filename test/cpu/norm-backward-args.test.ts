// Argument checking of the backward norms (their numerics are kernel cases in
// test/cases/norm-backward.ts and test/cases/split-heads-backward.ts): a bad call is a typed error
// naming the tensor or the shape, and it leaves nothing allocated.
import { describe, expect, it } from 'vitest';

import { Device } from '../../lib/device.js';
import { layerNormBackward } from '../../lib/kernels/norm.js';
import { Rope3D } from '../../lib/kernels/rope.js';
import { splitHeadsBackward } from '../../lib/kernels/split-heads.js';
import { Tensor } from '../../lib/tensor.js';

describe('layerNormBackward argument checks', () => {
  it('rejects a dy of another shape or dtype and a scale whose groups do not divide the rows', () => {
    using x = Tensor.zeros([2, 3, 8]);
    using dy = Tensor.zeros([2, 3, 8]);
    using shortDy = Tensor.zeros([2, 4, 8]);
    using bfDy = Tensor.zeros([2, 3, 8], 'bf16');
    using scale4 = Tensor.zeros([4, 8]);
    using weight = Tensor.zeros([7]);
    const baseline = Device.cpu.memory().bytesInUse;
    expect(() => layerNormBackward(shortDy, x, { eps: 1e-6 })).toThrow(expect.objectContaining({ code: 'ERR_SHAPE', tensor: 'dy' }));
    expect(() => layerNormBackward(bfDy, x, { eps: 1e-6 })).toThrow(expect.objectContaining({ code: 'ERR_DTYPE' }));
    expect(() => layerNormBackward(dy, x, { scale: scale4, eps: 1e-6 })).toThrow(expect.objectContaining({ code: 'ERR_SHAPE', message: expect.stringContaining('scale') }));
    expect(() => layerNormBackward(dy, x, { weight, eps: 1e-6 })).toThrow(expect.objectContaining({ code: 'ERR_SHAPE', message: expect.stringContaining('weight') }));
    expect(Device.cpu.memory().bytesInUse).toBe(baseline);
  });
});

describe('splitHeadsBackward argument checks', () => {
  it('rejects a gradient of the wrong shape, a gradient of a part the layout lacks, and a RoPE grid of other tokens', () => {
    using proj = Tensor.zeros([1, 6, 2 * 2 * 128]);
    using dk = Tensor.zeros([1, 2, 6, 128]);
    using wrong = Tensor.zeros([1, 6, 2, 128]);
    using rope = Rope3D.create([1, 2, 4], { split: [64, 32, 32] });
    const baseline = Device.cpu.memory().bytesInUse;
    const options = { heads: 2, layout: ['k', 'v'] as const };
    expect(() => splitHeadsBackward({ k: wrong }, proj, options)).toThrow(expect.objectContaining({ code: 'ERR_SHAPE', tensor: 'dk' }));
    expect(() => splitHeadsBackward({ q: dk }, proj, options)).toThrow(expect.objectContaining({ code: 'ERR_ARGUMENT', tensor: 'dq' }));
    expect(() => splitHeadsBackward({ k: dk }, proj, { ...options, rope })).toThrow(expect.objectContaining({ code: 'ERR_SHAPE', tensor: 'proj' }));
    expect(() => splitHeadsBackward({ k: dk }, proj, { heads: 3, layout: ['k', 'v'] })).toThrow(expect.objectContaining({ code: 'ERR_SHAPE', tensor: 'proj' }));
    expect(Device.cpu.memory().bytesInUse).toBe(baseline);
  });

  it('gives zeros where no gradient is given', async () => {
    using proj = Tensor.from(Float32Array.from({ length: 2 * 3 * 2 * 128 }, (_, i) => Math.sin(i)), [1, 2, 3 * 2 * 128]);
    using dv = Tensor.from(Float32Array.from({ length: 2 * 2 * 128 }, (_, i) => i + 1), [1, 2, 2, 128]);
    using dproj = splitHeadsBackward({ v: dv }, proj, { heads: 2, layout: ['q', 'k', 'v'] });
    const values = await dproj.toFloat32();
    // dproj [1, 2 tokens, 2 heads, 3 parts, 128]: only v (part 2) is non-zero, dv [1, 2 heads, 2 tokens, 128] scattered.
    for (let n = 0; n < 2; n++)
      for (let h = 0; h < 2; h++)
        for (let part = 0; part < 3; part++)
          for (let d = 0; d < 128; d++) {
            const got = values[((n * 2 + h) * 3 + part) * 128 + d];
            expect(got).toBe(part === 2 ? (h * 2 + n) * 128 + d + 1 : 0);
          }
  });
});
