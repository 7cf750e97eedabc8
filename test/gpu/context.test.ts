// The execution context on a CUDA device: kernel choices belong to a context and hold for
// everything a run() awaits (so concurrent jobs can differ), an op is refused on another device's
// context, and weight streaming's upload and wait go through the context's copy and work streams.
import { describe, expect, it } from 'vitest';

import { contextFor } from '../../lib/context.js';
import { Device, getDevice } from '../../lib/device.js';
import { StepVideoError } from '../../lib/errors.js';
import { attentionKernel } from '../../lib/kernels/attention.js';
import { Tensor } from '../../lib/tensor.js';
import { describeGpu } from '../helpers/gpu.js';

const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describeGpu('ExecutionContext on CUDA', () => {
  it('a context made current by run() chooses the kernels of fn and of everything it awaits', async () => {
    const device = getDevice('cuda');
    using q = Tensor.zeros([1, 2, 64, 128], 'bf16', 'cuda');
    const generic = device.context.withPolicy({ attention: 'generic' });
    expect(generic.policy.attention).toBe('generic');
    expect(attentionKernel(q, q, q)).toBe('mma');
    const inside = await generic.run(async () => {
      const before = attentionKernel(q, q, q);
      await tick(2);
      return [before, attentionKernel(q, q, q), contextFor(device) === generic];
    });
    expect(inside).toEqual(['generic', 'generic', true]);
    expect(attentionKernel(q, q, q)).toBe('mma');
    // Device.withKernelPolicy is the same for an async body now.
    expect(await device.withKernelPolicy({ attention: 'generic' }, async () => {
      await tick(1);
      return attentionKernel(q, q, q);
    })).toBe('generic');
  });

  it('concurrent runs with different kernel policies do not see each other', async () => {
    const device = getDevice('cuda');
    using q = Tensor.zeros([1, 2, 64, 128], 'bf16', 'cuda');
    const jobs = (['generic', 'mma', 'generic', 'auto'] as const).map((attention, i) =>
      device.context.withPolicy({ attention }).run(async () => {
        const seen: string[] = [];
        for (let step = 0; step < 3; step++) {
          seen.push(attentionKernel(q, q, q));
          await tick(((i + step) % 3) + 1);
        }
        return seen;
      }),
    );
    expect(await Promise.all(jobs)).toEqual([
      ['generic', 'generic', 'generic'],
      ['mma', 'mma', 'mma'],
      ['generic', 'generic', 'generic'],
      ['mma', 'mma', 'mma'],
    ]);
  });

  it("refuses an op whose tensors are not on its context's device", () => {
    using x = Tensor.zeros([4], 'f32', 'cuda');
    const cpu = Device.cpu.context.ops;
    let thrown: unknown;
    try {
      cpu.fill(x.handle, 1);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(StepVideoError);
    expect((thrown as StepVideoError).code).toBe('ERR_DEVICE');
    expect((thrown as StepVideoError).message).toMatch(/tensors are on cuda:0, its execution context is for cpu/);
  });

  it('uploads on the copy stream and orders the work after it with waitFor', async () => {
    const context = getDevice('cuda').context;
    const values = Float32Array.from({ length: 4096 }, (_, i) => Math.sin(i) * 3);
    const host = Tensor.from(values, [values.length], { device: 'cpu' });
    using slot = Tensor.zeros([values.length], 'f32', 'cuda');
    await Device.cpu.synchronize();  // the host tensor is filled on the CPU queue; upload reads it as it is
    const event = context.upload(slot, host);
    expect(event).not.toBeNull();
    context.waitFor(event);
    host.dispose();  // the native side keeps the source alive until the copy has read it
    expect(Array.from(await slot.toFloat32())).toEqual(Array.from(values));
    using onCpu = Tensor.zeros([values.length], 'f32', 'cpu');
    expect(() => context.upload(onCpu, onCpu)).toThrow(/dst is on cpu, the context on cuda:0/);
  });
});
