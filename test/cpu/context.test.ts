// The execution context on the CPU backend: which context an op uses (the device's default, or the
// one made current by run(), across awaits and nested runs), that ops really go through it (an op
// called on another device's context, or off any context, is refused), and weight streaming's
// upload and wait as context methods.
import { describe, expect, it } from 'vitest';

import { ExecutionContext, contextFor } from '../../lib/context.js';
import { Device } from '../../lib/device.js';
import { StepVideoError } from '../../lib/errors.js';
import * as ops from '../../lib/ops.js';
import { Tensor } from '../../lib/tensor.js';

describe('ExecutionContext on the CPU', () => {
  it('ops use the device default context unless run() made another current, in fn and what it awaits', async () => {
    const cpu = Device.cpu;
    expect(contextFor(cpu)).toBe(cpu.context);
    const a = cpu.context.withPolicy({});
    const b = cpu.context.withPolicy({});
    expect(a).not.toBe(cpu.context);
    const seen: ExecutionContext[] = [];
    await a.run(async () => {
      seen.push(contextFor(cpu));
      await new Promise((resolve) => setTimeout(resolve, 1));
      seen.push(contextFor(cpu));
      await b.run(async () => {
        await Promise.resolve();
        seen.push(contextFor(cpu));
      });
      seen.push(contextFor(cpu));
    });
    seen.push(contextFor(cpu));
    expect(seen).toEqual([a, a, b, a, cpu.context]);
  });

  it('concurrent runs keep their own contexts', async () => {
    const cpu = Device.cpu;
    const contexts = [cpu.context.withPolicy({}), cpu.context.withPolicy({}), cpu.context.withPolicy({})];
    const observed = await Promise.all(
      contexts.map((context, i) =>
        context.run(async () => {
          await new Promise((resolve) => setTimeout(resolve, (3 - i) * 2));
          return contextFor(cpu);
        }),
      ),
    );
    expect(observed).toEqual(contexts);
  });

  it('computes the same through any context of the device', async () => {
    const x = Tensor.from(new Float32Array([1, -2, 3.5, 0.25]), [4]);
    const viaDefault = ops.mul(x, x);
    const viaOther = Device.cpu.context.withPolicy({}).run(() => ops.mul(x, x));
    expect(Array.from(await viaOther.toFloat32())).toEqual(Array.from(await viaDefault.toFloat32()));
    for (const t of [x, viaDefault, viaOther]) t.dispose();
  });

  it('refuses kernel choices on the CPU, naming the device', () => {
    const error = (() => {
      try {
        Device.cpu.context.withPolicy({ attention: 'generic' });
      } catch (e) {
        return e as StepVideoError;
      }
      throw new Error('expected ERR_DEVICE');
    })();
    expect(error.code).toBe('ERR_DEVICE');
    expect(error.message).toMatch(/CPU backend/);
    expect(() => Device.cpu.setKernelPolicy({ gemm: 'fallback' })).toThrow(/CPU backend/);
  });

  it('uploads and waits through the context: the copy lands in program order, sources may be disposed at once', async () => {
    const context = Device.cpu.context;
    const host = Tensor.from(new Float32Array([4, 5, 6]), [3]);
    const slot = Tensor.zeros([3]);
    const event = context.upload(slot, host);
    expect(event).toBeNull();  // the CPU executor keeps program order: nothing to wait for
    context.waitFor(event);
    host.dispose();
    expect(Array.from(await slot.toFloat32())).toEqual([4, 5, 6]);
    const wrong = Tensor.zeros([4]);
    expect(() => context.upload(wrong, slot)).toThrow(/differ in dtype or size/);
    slot.dispose();
    wrong.dispose();
  });
});
