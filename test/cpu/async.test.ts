// The event loop stays free while the CPU backend computes: ops are queued to the executor
// thread and read back asynchronously.
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';

import { Device } from '../../lib/device.js';
import { cpuPendingJobs } from '../../lib/device-stats.js';
import * as ops from '../../lib/ops.js';
import { Tensor } from '../../lib/tensor.js';

describe('asynchrony of the CPU backend', () => {
  it('returns from enqueueing at once and keeps the event loop free during seconds of queued compute', async () => {
    const a = Tensor.full([1024, 1024], 0.5);
    const b = Tensor.full([1024, 1024], 0.25);
    const loop = performance.eventLoopUtilization();
    const outputs: Tensor[] = [];
    for (let i = 0; i < 24; i++) outputs.push(ops.matmul(a, b));
    // States, not times: enqueueing returned with most of the work (2 GFLOP a product) still queued,
    // and the event loop turned while it was (a loop blocked by the work could not run this callback
    // before the queue drained).
    expect(cpuPendingJobs(), 'jobs still queued when the enqueueing loop returned').toBeGreaterThan(12);
    await new Promise((resolve) => setImmediate(resolve));
    expect(cpuPendingJobs(), 'jobs still queued at the next turn of the event loop').toBeGreaterThan(0);
    const last = await outputs[outputs.length - 1]!.toFloat32();
    expect(last[0]).toBeCloseTo(1024 * 0.125, 3);
    // Over the whole run the loop was idle most of the time, measured generously: a loop that waited
    // for the work is busy ~100% of it; measured 2-4% on a loaded 2-core runner. Time the process
    // spends descheduled while idle counts as idle, so a busy runner does not move this.
    const busy = performance.eventLoopUtilization(loop).utilization;
    expect(busy, 'event-loop utilization during the queued compute').toBeLessThan(0.5);
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
