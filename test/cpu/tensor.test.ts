// Tensor lifecycle on the CPU backend: creation, read-back, views, dispose, memory accounting,
// device transfers, and the typed errors native code raises.
import { describe, expect, it } from 'vitest';

import { Device, getDevice } from '../../lib/device.js';
import { f32ToBf16Bits } from '../../lib/dtype.js';
import { StepVideoError, isStepVideoError } from '../../lib/errors.js';
import { native } from '../../lib/native.js';
import * as ops from '../../lib/ops.js';
import { Tensor, TensorScope } from '../../lib/tensor.js';

function expectCode(fn: () => unknown, code: string) {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(StepVideoError);
    expect((error as StepVideoError).code).toBe(code);
    return error as StepVideoError;
  }
  throw new Error(`expected ${code}, nothing was thrown`);
}

describe('Tensor', () => {
  it('round-trips every dtype through host memory', async () => {
    const f32 = Tensor.from(new Float32Array([1.5, -2, 3.25]), [3]);
    expect(Array.from((await f32.toArray()) as ArrayLike<number>)).toEqual([1.5, -2, 3.25]);
    const bf16 = Tensor.from(new Uint16Array([f32ToBf16Bits(1.5), f32ToBf16Bits(-2)]), [2]);
    expect(bf16.dtype).toBe('bf16');
    expect(Array.from(await bf16.toFloat32())).toEqual([1.5, -2]);
    const i32 = Tensor.from(new Int32Array([7, -9, 2 ** 30]), [3]);
    expect(Array.from((await i32.toArray()) as ArrayLike<number>)).toEqual([7, -9, 2 ** 30]);
    const i64 = Tensor.from(new BigInt64Array([1n, -(2n ** 40n)]), [2]);
    expect(Array.from((await i64.toArray()) as BigInt64Array)).toEqual([1n, -(2n ** 40n)]);
    const u8 = Tensor.from(new Uint8Array([0, 255, 17]), [3]);
    expect(Array.from((await u8.toArray()) as ArrayLike<number>)).toEqual([0, 255, 17]);
    for (const t of [f32, bf16, i32, i64, u8]) t.dispose();
  });

  it('converts f32 data into a bf16 tensor with round-to-nearest-even', async () => {
    const t = Tensor.from(new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, -0.1]), [3], { dtype: 'bf16' });
    const bits = (await t.toArray()) as Uint16Array;
    expect(Array.from(bits)).toEqual([f32ToBf16Bits(1 + 2 ** -8), f32ToBf16Bits(1 + 3 * 2 ** -8), f32ToBf16Bits(-0.1)]);
    expect(bits[0]).toBe(0x3f80); // tie rounds to even
    expect(bits[1]).toBe(0x3f82);
    t.dispose();
  });

  it('casts between dtypes', async () => {
    const x = Tensor.from(new Float32Array([0.1, -3.7, 1e6, 2.5]), [4]);
    const b = ops.cast(x, 'bf16');
    const back = ops.cast(b, 'f32');
    const values = await back.toFloat32();
    expect(Array.from(values).map((v, i) => Math.abs(v - [0.1, -3.7, 1e6, 2.5][i]!) / Math.abs([0.1, -3.7, 1e6, 2.5][i]!))).toSatisfy((errs: number[]) => errs.every((e) => e < 2 ** -8));
    const ints = ops.cast(x, 'i32');
    expect(Array.from((await ints.toArray()) as ArrayLike<number>)).toEqual([0, -3, 1000000, 2]);
    for (const t of [x, b, back, ints]) t.dispose();
  });

  it('makes views that share memory and outlive their source', async () => {
    const x = Tensor.from(Float32Array.from({ length: 24 }, (_, i) => i), [4, 6]);
    const r = x.reshape(2, -1);
    expect(r.shape).toEqual([2, 12]);
    expect(r.sharesMemoryWith(x)).toBe(true);
    const rows = x.narrow(1, 2);
    expect(rows.shape).toEqual([2, 6]);
    x.dispose();
    expect(Array.from((await rows.toArray()) as ArrayLike<number>)).toEqual(Array.from({ length: 12 }, (_, i) => i + 6));
    expect(Array.from((await r.toArray()) as ArrayLike<number>).slice(0, 3)).toEqual([0, 1, 2]);
    r.dispose();
    rows.dispose();
  });

  it('reports use after dispose as ERR_DISPOSED, and dispose is idempotent', async () => {
    const x = Tensor.zeros([3]);
    x.dispose();
    x.dispose();
    expect(x.disposed).toBe(true);
    expectCode(() => ops.add(x, x), 'ERR_DISPOSED');
    await expect(x.toArray()).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
  });

  it('accounts bytes in use and returns to the baseline after dispose', async () => {
    const cpu = Device.cpu;
    await cpu.synchronize();
    const before = cpu.memory().bytesInUse;
    const tensors = [Tensor.zeros([1000], 'f32'), Tensor.zeros([10, 10], 'bf16')];
    expect(cpu.memory().bytesInUse - before).toBe(4000 + 200);
    cpu.resetPeakMemory();
    expect(cpu.memory().peakBytes).toBeGreaterThanOrEqual(before + 4200);
    for (const t of tensors) t.dispose();
    await cpu.synchronize(); // queued fills hold references until they ran
    expect(cpu.memory().bytesInUse).toBe(before);
  });

  it('TensorScope frees what it tracked and keeps what was kept', () => {
    let kept: Tensor;
    let temp: Tensor;
    {
      using scope = new TensorScope();
      temp = scope.track(Tensor.zeros([2]));
      kept = scope.keep(scope.track(Tensor.zeros([2])));
    }
    expect(temp.disposed).toBe(true);
    expect(kept.disposed).toBe(false);
    kept.dispose();
  });

  it('copies to the same device with to()', async () => {
    const x = Tensor.from(new Float32Array([1, 2, 3]), [3]);
    const y = await x.to('cpu');
    expect(y.sharesMemoryWith(x)).toBe(false);
    expect(Array.from((await y.toArray()) as ArrayLike<number>)).toEqual([1, 2, 3]);
    x.dispose();
    y.dispose();
  });

  it('names the problem in shape errors', () => {
    const a = Tensor.zeros([2, 3]);
    const b = Tensor.zeros([4, 5]);
    const error = expectCode(() => ops.matmul(a, b), 'ERR_SHAPE');
    expect(error.message).toContain('[2, 3]');
    expectCode(() => ops.add(a, b), 'ERR_SHAPE');
    expectCode(() => a.reshape(7), 'ERR_SHAPE');
    expectCode(() => Tensor.empty([-1]), 'ERR_SHAPE');
    a.dispose();
    b.dispose();
  });

  it('rejects asking for a CUDA device that is not there', () => {
    if (native.cudaDeviceCount() > 0) return;
    const error = expectCode(() => getDevice('cuda'), 'ERR_DEVICE');
    expect(error.message).toMatch(/not available/);
    expectCode(() => Tensor.zeros([2], 'f32', 'cuda:3'), 'ERR_DEVICE');
  });
});

describe('native argument validation never crashes the process', () => {
  it('turns malformed calls into typed errors', () => {
    const x = Tensor.zeros([4]);
    const cpu = Device.cpu.context.ops;
    const bad: Array<() => unknown> = [
      () => cpu.unary({} as never, x.handle, 0, 1, 0),
      () => cpu.unary(x.handle, x.handle, 99, 1, 0),
      () => cpu.binary(x.handle, x.handle, x.handle, -1),
      () => cpu.copy(x.handle, x.handle, [5], [1], 0, [1], 0),
      () => cpu.copy(x.handle, x.handle, [4], [2], 0, [1], 0),
      () => cpu.copy(x.handle, x.handle, [4], [-1], 3, [1], 0),
      () => cpu.matmul(x.handle, x.handle, x.handle, null, false, 1),
      () => cpu.reduce(x.handle, x.handle, 3, 0),
      // an op taken off its context, or called on something else
      () => Reflect.apply(cpu.fill, undefined, [x.handle, 1]),
      () => Reflect.apply(cpu.fill, {}, [x.handle, 1]),
      () => Reflect.apply(cpu.fill, x.handle, [x.handle, 1]),
      () => new native.NativeContext(-1, 'fastest', 'pingpong', 2, false, 'auto', 'auto', false, false),
      () => new native.NativeContext(-1, 'auto', 'pingpong', 4, false, 'auto', 'auto', false, false),
      () => new native.NativeContext(99, 'auto', 'pingpong', 2, false, 'auto', 'auto', false, false),
      () => native.write(x.handle, new Float32Array(3), 0),
      () => new native.NativeTensor(-1, 42, [2]),
      () => new native.NativeTensor(-1, 0, [2 ** 40, 2 ** 20]),
      () => x.handle.view(0, [5], 0),
      () => x.handle.view(0, [1], 2),
      () => native.memoryStats(99),
    ];
    for (const call of bad) {
      let thrown: unknown;
      try {
        call();
      } catch (error) {
        thrown = error;
      }
      expect(isStepVideoError(thrown), String(thrown)).toBe(true);
    }
    x.dispose();
  });
});
