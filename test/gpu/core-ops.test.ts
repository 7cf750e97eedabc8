// The foundation ops on CUDA: f32 and bf16, each against the float64 reference and against the
// CPU twin on the same inputs; both GEMM paths (cuBLASLt and the own fallback kernel).
import { expect, it } from 'vitest';

import { roundBf16 } from '../../lib/dtype.js';
import * as ops from '../../lib/ops.js';
import { Tensor } from '../../lib/tensor.js';
import { bf16Tolerance, expectRelErr, relErr } from '../helpers/compare.js';
import { describeGpu } from '../helpers/gpu.js';
import { coreOpCases } from '../helpers/op-cases.js';

describeGpu('foundation ops on CUDA', () => {
  for (const testCase of coreOpCases()) {
    it(`${testCase.name} (f32)`, async () => {
      const onGpu = testCase.inputs.map((input) => Tensor.from(input.data, input.shape, { device: 'cuda' }));
      const onCpu = testCase.inputs.map((input) => Tensor.from(input.data, input.shape, { device: 'cpu' }));
      const gpuOut = testCase.run(onGpu);
      const cpuOut = testCase.run(onCpu);
      const got = await gpuOut.toFloat32();
      const ref = testCase.reference(testCase.inputs.map((input) => input.data));
      expectRelErr(got, ref, Math.max(testCase.tolerance ?? 0, 1e-5), `${testCase.name} vs reference`);
      expectRelErr(got, await cpuOut.toFloat32(), Math.max(testCase.tolerance ?? 0, 1e-5), `${testCase.name} vs CPU twin`);
      for (const t of [...onGpu, ...onCpu, gpuOut, cpuOut]) t.dispose();
    });
    if (testCase.bf16 === false) continue;
    it(`${testCase.name} (bf16)`, async () => {
      const rounded = testCase.inputs.map((input) => Float32Array.from(input.data, roundBf16));
      const onGpu = testCase.inputs.map((input, i) => Tensor.from(rounded[i]!, input.shape, { device: 'cuda', dtype: 'bf16' }));
      const out = testCase.run(onGpu);
      expect(out.dtype).toBe('bf16');
      const got = await out.toFloat32();
      const ref = testCase.reference(rounded);
      expectRelErr(got, ref, bf16Tolerance(ref), `${testCase.name} bf16`);
      for (const t of [...onGpu, out]) t.dispose();
    });
  }

  it('the own GEMM kernel matches cuBLASLt and the reference (bf16 and f32, odd shapes)', async () => {
    const cases = coreOpCases().filter((c) => c.name.startsWith('matmul') || c.name.startsWith('linear'));
    for (const testCase of cases) {
      for (const dtype of ['f32', 'bf16'] as const) {
        const rounded = testCase.inputs.map((input) => (dtype === 'bf16' ? Float32Array.from(input.data, roundBf16) : input.data));
        const inputs = testCase.inputs.map((input, i) => Tensor.from(rounded[i]!, input.shape, { device: 'cuda', dtype }));
        const viaLt = testCase.run(inputs);
        process.env.STEPVIDEO_GEMM = 'fallback';
        let viaFallback: Tensor;
        try {
          viaFallback = testCase.run(inputs);
        } finally {
          delete process.env.STEPVIDEO_GEMM;
        }
        const ref = testCase.reference(rounded);
        const tolerance = dtype === 'bf16' ? bf16Tolerance(ref) : 1e-5;
        const fallback = await viaFallback.toFloat32();
        expectRelErr(fallback, ref, tolerance, `${testCase.name} ${dtype} fallback`);
        expect(relErr(fallback, await viaLt.toFloat32())).toBeLessThanOrEqual(2 * tolerance);
        for (const t of [...inputs, viaLt, viaFallback]) t.dispose();
      }
    }
  });

  it('moves tensors between host and device without changing them', async () => {
    const data = Float32Array.from({ length: 4099 }, (_, i) => Math.sin(i) * 100);
    const cpu = Tensor.from(data, [4099]);
    const gpu = await cpu.to('cuda');
    const back = await gpu.to('cpu');
    expect(Array.from(await back.toArray())).toEqual(Array.from(data));
    const bf = ops.cast(gpu, 'bf16');
    const bfCpu = await bf.to('cpu');
    const bfOnHost = ops.cast(cpu, 'bf16');
    expect(Array.from((await bfCpu.toArray()) as Uint16Array)).toEqual(Array.from((await bfOnHost.toArray()) as Uint16Array));
    for (const t of [cpu, gpu, back, bf, bfCpu, bfOnHost]) t.dispose();
  });
});
