// Every kernel case (test/cases) on CUDA, f32 and bf16, against the float64 reference and the CPU
// twin; both GEMM paths; real-size cases against the CPU twin on a sample of the output. Cases that
// are exact by construction (data movement, gathers, exact casts, fills) must match value for value;
// the others within their bounds (docs/TOLERANCES.md, "Kernel cases").
import { expect, it } from 'vitest';

import { roundBf16 } from '../../lib/dtype.js';
import * as ops from '../../lib/ops.js';
import { Tensor } from '../../lib/tensor.js';
import { allCases, largeCases } from '../cases/index.js';
import { MUTANT_SEPARATION, type OpCase, type OpInput } from '../cases/types.js';
import { bf16Tolerance, exactValues, expectIdentical, expectRelErr, relErr, roundArrayBf16 } from '../helpers/compare.js';
import { describeGpu, withPolicy } from '../helpers/gpu.js';

function upload(input: OpInput, device: 'cpu' | 'cuda', floatDType: 'f32' | 'bf16', data = input.data): Tensor {
  return Tensor.from(data, input.shape, { device, dtype: input.dtype ?? floatDType });
}

function roundInput(input: OpInput): Float32Array | Int32Array {
  return input.dtype === undefined ? Float32Array.from(input.data as Float32Array, roundBf16) : input.data;
}

/** The case's mutants (a defect each) lie far outside the bound the output was held to (OpCase.mutants). */
function expectFarFromMutants(got: Float32Array, testCase: OpCase, data: Array<ArrayLike<number>>, tolerance: number, what: string): void {
  for (const mutant of testCase.mutants ?? []) {
    const distance = relErr(got, mutant.reference(data));
    expect(distance, `${what}: ${mutant.defect} is only ${distance.toExponential(2)} away`).toBeGreaterThan(MUTANT_SEPARATION * tolerance);
  }
}

describeGpu('kernels on CUDA', () => {
  for (const testCase of allCases()) {
    it(`${testCase.name} (f32)`, async () => {
      const onGpu = testCase.inputs.map((input) => upload(input, 'cuda', 'f32'));
      const onCpu = testCase.inputs.map((input) => upload(input, 'cpu', 'f32'));
      const gpuOut = testCase.run(onGpu);
      const cpuOut = testCase.run(onCpu);
      const ref = testCase.reference(testCase.inputs.map((input) => input.data));
      if (testCase.exact) {
        const got = await exactValues(gpuOut);
        expectIdentical(got, ref, `${testCase.name} vs reference`);
        expectIdentical(got, await exactValues(cpuOut), `${testCase.name} vs CPU twin`);
      } else {
        const got = await gpuOut.toFloat32();
        // f32 accumulation in another order (and ex2.approx, FMA contraction) than the CPU's: 1e-5
        // at least; FP8 tensor cores name their own bound (called after the run: it depends on the path).
        const tolerance = testCase.cudaF32Tolerance?.() ?? Math.max(testCase.tolerance ?? 0, 1e-5);
        expectRelErr(got, ref, tolerance, `${testCase.name} vs reference`);
        expectRelErr(got, await cpuOut.toFloat32(), tolerance, `${testCase.name} vs CPU twin`);
        expectFarFromMutants(got, testCase, testCase.inputs.map((input) => input.data), tolerance, `${testCase.name} (f32)`);
      }
      for (const t of [...onGpu, ...onCpu, gpuOut, cpuOut]) t.dispose();
    });
    if (testCase.bf16 === false) continue;
    it(`${testCase.name} (bf16)`, async () => {
      const rounded = testCase.inputs.map(roundInput);
      const onGpu = testCase.inputs.map((input, i) => upload(input, 'cuda', 'bf16', rounded[i]));
      const out = testCase.run(onGpu);
      expect(out.dtype).toBe('bf16');
      const ref = testCase.reference(rounded);
      if (testCase.exact) expectIdentical(await exactValues(out), ref, `${testCase.name} bf16`);
      else {
        const got = await out.toFloat32();
        const tolerance = bf16Tolerance(ref);
        expectRelErr(got, ref, tolerance, `${testCase.name} bf16`);
        expectFarFromMutants(got, testCase, rounded, tolerance, `${testCase.name} (bf16)`);
      }
      for (const t of [...onGpu, out]) t.dispose();
    });
  }

  for (const large of largeCases()) {
    it(`${large.name} (real size, sampled against the CPU twin)`, async () => {
      const expected = await large.runCpuSample();
      for (const dtype of large.dtypes ?? (['f32', 'bf16'] as const)) {
        const out = await large.runGpu(dtype);
        const stored = out.dtype;
        const got = large.sample(await out.toFloat32());
        out.dispose();
        if (large.exact) expectIdentical(got, stored === 'bf16' ? roundArrayBf16(expected) : expected, `${large.name} ${dtype}`);
        else expectRelErr(got, expected, (dtype === 'f32' ? large.cudaF32Tolerance?.() : undefined) ?? large.tolerance[dtype], `${large.name} ${dtype}`);
      }
    });
  }

  it('the own GEMM kernel matches cuBLASLt and the reference (bf16 and f32, odd shapes)', async () => {
    const cases = allCases().filter((c) => c.name.startsWith('matmul') || c.name.startsWith('linear'));
    for (const testCase of cases) {
      for (const dtype of ['f32', 'bf16'] as const) {
        const data = testCase.inputs.map((input) => (dtype === 'bf16' ? roundInput(input) : input.data));
        const inputs = testCase.inputs.map((input, i) => upload(input, 'cuda', dtype, data[i]));
        const viaLt = testCase.run(inputs);
        const viaFallback = withPolicy({ gemm: 'fallback' }, () => testCase.run(inputs));
        const ref = testCase.reference(data);
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
    expect(Array.from((await back.toArray()) as Float32Array)).toEqual(Array.from(data));
    const bf = ops.cast(gpu, 'bf16');
    const bfCpu = await bf.to('cpu');
    const bfOnHost = ops.cast(cpu, 'bf16');
    expect(Array.from((await bfCpu.toArray()) as Uint16Array)).toEqual(Array.from((await bfOnHost.toArray()) as Uint16Array));
    for (const t of [cpu, gpu, back, bf, bfCpu, bfOnHost]) t.dispose();
  });
});
