// The CUDA runtime's fault paths that do not lose the device (issue 12): staging buffers released
// with their copy's own event, kernel-choice variables read only where their kernel runs, fused
// cuBLASLt epilogues kept away from unaligned vectors, and (on the emulated device, whose memory
// capacity a test can set) out-of-memory recovery by trimming the pool. Each test fails against the
// code before its fix on the emulated device; on a GPU they run as they are.
import { expect, it } from 'vitest';

import { cudaStagingStats, trimCudaPool } from '../../lib/device-stats.js';
import { getDevice } from '../../lib/device.js';
import { DEFAULT_KERNEL_POLICY, kernelPolicyFromEnvironment } from '../../lib/kernel-policy.js';
import { attention } from '../../lib/kernels/attention.js';
import { randomNormal } from '../../lib/kernels/random.js';
import { Fp8Weight, linearFp8, quantizeFp8 } from '../../lib/kernels/fp8.js';
import { linearResidual } from '../../lib/kernels/linear.js';
import { native } from '../../lib/native.js';
import * as ops from '../../lib/ops.js';
import { Tensor } from '../../lib/tensor.js';
import { expectRelErr } from '../helpers/compare.js';
import { withEnv } from '../helpers/env.js';
import { describeGpu } from '../helpers/gpu.js';
import { Rng, randn } from '../helpers/random.js';

const emulated = native.build.cudaEmulated;

/** `data` on `device` as a view one element into its storage (4 bytes for f32: never 16-byte aligned). */
function offsetView(data: Float32Array, shape: number[], device: 'cpu' | 'cuda'): Tensor {
  const padded = new Float32Array(data.length + 1);
  padded.set(data, 1);
  using base = Tensor.from(padded, [padded.length], { device });
  using view = base.narrow(1, data.length);
  return view.reshape(...shape);
}

describeGpu('CUDA runtime fault paths', () => {
  it('a read-back releases its staging buffer with its own copy, so the next read reuses it while later work is queued', async () => {
    // Made on the device (no upload through a staging buffer of this size), an odd size no other test reads.
    using x = randomNormal([12_345], { seed: 3, device: 'cuda' });
    const first = await x.toFloat32();
    const afterFirst = cudaStagingStats();
    // Work queued after the first read (not yet run on the emulated device's deferred streams): a
    // buffer released with an event recorded at release time would wait for it; one released with
    // its copy's event is free at once.
    using doubled = ops.scale(x, 2);
    expect(Array.from(await x.toFloat32())).toEqual(Array.from(first));
    const afterSecond = cudaStagingStats();
    expect(afterSecond.allocations, 'the second read page-locked a new buffer').toBe(afterFirst.allocations);
    expect(afterSecond.reuses).toBeGreaterThan(afterFirst.reuses);
    expect((await doubled.toFloat32())[7]).toBeCloseTo(2 * first[7]!, 6);
  });

  it('stray STEPVIDEO_ATTENTION_HOPPER_* values leave the default attention paths alone (read only where the Hopper kernel runs)', async () => {
    const stray = { STEPVIDEO_ATTENTION_HOPPER_SCHEDULE: 'sideways', STEPVIDEO_ATTENTION_HOPPER_STAGES: '7' };
    // The environment is read into the device's kernel policy once: the stray values are not read
    // for the default paths, and where the Hopper kernel is asked for they are an error naming the variable.
    expect(kernelPolicyFromEnvironment(stray)).toEqual(DEFAULT_KERNEL_POLICY);
    expect(() => kernelPolicyFromEnvironment({ ...stray, STEPVIDEO_ATTENTION: 'hopper' })).toThrow(/STEPVIDEO_ATTENTION_HOPPER_SCHEDULE/);
    const rng = new Rng(77);
    const make = (dtype: 'bf16' | 'f32') => Tensor.from(randn(rng, 2 * 96 * 128), [1, 2, 96, 128], { device: 'cuda', dtype });
    const outputs: Tensor[] = [];
    // No native code reads them either: the default paths run with the variables set around the calls.
    withEnv(stray, () => {
      for (const dtype of ['bf16', 'f32'] as const) {
        using q = make(dtype);
        using k = make(dtype);
        using v = make(dtype);
        outputs.push(attention(q, k, v));
      }
    });
    for (const out of outputs) {
      expect((await out.toFloat32()).every(Number.isFinite)).toBe(true);
      out.dispose();
    }
  });

  it('fused cuBLASLt epilogues are not given unaligned bias, gate or FP8 scale vectors (the results equal the CPU twin)', async () => {
    const rng = new Rng(91);
    const rows = 2 * 24, n = 40, k = 64;
    const x = randn(rng, rows * k), w = randn(rng, n * k, 0.2), residual = randn(rng, rows * n), gate = randn(rng, 2 * n), bias = randn(rng, n);
    const run = async (device: 'cuda' | 'cpu') => {
      using xt = Tensor.from(x, [rows, k], { device });
      using wt = Tensor.from(w, [n, k], { device });
      using rt = Tensor.from(residual, [rows, n], { device });
      using gt = offsetView(gate, [2, n], device);       // the gate row starts 4 bytes past an alignment
      using bt = offsetView(bias, [n], device);
      using gated = linearResidual(xt, wt, rt, gt);
      using biased = ops.matmul(xt, wt, { transB: true, bias: bt });
      return { gated: await gated.toFloat32(), biased: await biased.toFloat32() };
    };
    const gpu = await run('cuda');
    const cpu = await run('cpu');
    expectRelErr(gpu.gated, cpu.gated, 1e-5, 'linearResidual with an offset f32 gate');
    expectRelErr(gpu.biased, cpu.biased, 1e-5, 'matmul with an offset bias');

    // FP8: the weight's per-row scales as an offset view.
    const fp8 = async (device: 'cuda' | 'cpu') => {
      using wt = Tensor.from(w, [n, k], { device });
      using quantized = quantizeFp8(wt);
      const scales = await quantized.scales.toFloat32();
      using offsetScales = offsetView(scales, [n], device);
      const weight = new Fp8Weight(quantized.codes, offsetScales);  // disposed through its parts
      using xt = Tensor.from(x, [rows, k], { device });
      using out = linearFp8(xt, weight, { activations: 'per-row' });
      return await out.toFloat32();
    };
    // The CPU twin computes the FP8 product exactly in f32; the bound covers Hopper's FP8 accumulation (docs/TOLERANCES.md, "FP8").
    expectRelErr(await fp8('cuda'), await fp8('cpu'), 4e-4, 'linearFp8 with offset weight scales');
  });

  it.runIf(emulated)('an allocation the fragmented pool cannot serve succeeds once the pool is trimmed; a real shortage names the figures (emulated device: its capacity is settable)', async () => {
    const device = getDevice('cuda');
    await trimCudaPool(device);
    const reserved = native.emulatorMemory!().reserved;
    const MiB = 2 ** 20;
    native.emulatorSetMemoryCapacity!(reserved + 100 * MiB);
    try {
      // Two 40 MiB blocks freed back to the pool: 80 MiB reserved and unused, in pieces of the wrong size.
      for (let i = 0; i < 2; i++) {
        using a = Tensor.empty([10 * MiB], 'f32', device);
        using b = Tensor.empty([10 * MiB], 'f32', device);
        void a;
        void b;
      }
      using big = Tensor.empty([15 * MiB], 'f32', device);  // 60 MiB: fits only after the trim
      expect(big.numel).toBe(15 * MiB);
      let error: unknown;
      try {
        Tensor.empty([50 * MiB], 'f32', device).dispose();  // 200 MiB: more than the device has
      } catch (caught) {
        error = caught;
      }
      expect(error).toMatchObject({ code: 'ERR_CUDA_OOM' });
      expect((error as Error).message).toMatch(/could not allocate 200 MiB \(in use \d+ MiB, reserved by the pool \d+ MiB, free on the device \d+ MiB of \d+ MiB\)/);
    } finally {
      native.emulatorSetMemoryCapacity!(8 * 2 ** 30);
    }
  });
});
