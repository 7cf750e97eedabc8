// The event loop stays free while the CPU backend computes: ops are queued to the executor
// thread and read back asynchronously.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';

import { Device } from '../../lib/device.js';
import * as ops from '../../lib/ops.js';
import { Tensor } from '../../lib/tensor.js';

describe('asynchrony of the CPU backend', () => {
  it('keeps event-loop delay under 50 ms during seconds of queued compute', async () => {
    const a = Tensor.full([1024, 1024], 0.5);
    const b = Tensor.full([1024, 1024], 0.25);
    const histogram = monitorEventLoopDelay({ resolution: 5 });
    histogram.enable();
    const started = performance.now();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const outputs: Tensor[] = [];
    for (let i = 0; i < 24; i++) outputs.push(ops.matmul(a, b));
    const enqueueMs = performance.now() - started;
    const last = await outputs[outputs.length - 1]!.toFloat32();
    const totalMs = performance.now() - started;
    clearInterval(timer);
    histogram.disable();
    expect(last[0]).toBeCloseTo(1024 * 0.125, 3);
    // Enqueueing is cheap; the work itself took long enough for the measurement to mean something.
    expect(enqueueMs).toBeLessThan(totalMs / 2);
    expect(totalMs).toBeGreaterThan(100);
    expect(histogram.max / 1e6).toBeLessThan(50);
    expect(ticks).toBeGreaterThan(totalMs / 10 / 3);
    for (const t of [a, b, ...outputs]) t.dispose();
    await Device.cpu.synchronize();
  });

  it('reports a failure of queued work at the next synchronisation, then recovers', async () => {
    // An allocation that cannot be satisfied is reported synchronously as ERR_OOM...
    expect(() => Tensor.empty([2 ** 24, 2 ** 24], 'f32')).toThrow(expect.objectContaining({ code: 'ERR_OOM' }));
    // ...and the backend keeps working afterwards.
    const x = Tensor.from(new Float32Array([1, 2, 3]));
    const y = ops.scale(x, 2);
    expect(Array.from(await y.toFloat32())).toEqual([2, 4, 6]);
    x.dispose();
    y.dispose();
  });
});
