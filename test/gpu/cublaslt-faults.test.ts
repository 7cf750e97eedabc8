// cuBLASLt set-up failures fall back to the own GEMM kernel instead of failing the op or keeping a
// broken handle (issue 12, item 9): a failed cublasLtCreate (which may leave garbage in its output)
// and a workspace allocation that does not fit. The emulated device can make both happen; the file
// needs a process whose first GEMM is the one that fails (vitest runs each file in its own process).
import { expect, it } from 'vitest';

import { gemmPlans, trimCudaPool } from '../../lib/device-stats.js';
import { getDevice } from '../../lib/device.js';
import { native } from '../../lib/native.js';
import * as ops from '../../lib/ops.js';
import { Tensor } from '../../lib/tensor.js';
import { expectRelErr } from '../helpers/compare.js';
import { describeGpu } from '../helpers/gpu.js';
import { Rng, randn } from '../helpers/random.js';

const emulated = native.build.cudaEmulated;

describeGpu('cuBLASLt set-up failures', () => {
  it.runIf(emulated)('a failed handle creation and a workspace that does not fit fall back to the own kernel; the next GEMM uses cuBLASLt (emulated device)', async () => {
    const device = getDevice('cuda');
    const rng = new Rng(5);
    const a = randn(rng, 33 * 48), b = randn(rng, 40 * 48);
    using ac = Tensor.from(a, [33, 48], { device: 'cpu' });
    using bc = Tensor.from(b, [40, 48], { device: 'cpu' });
    using expected = ops.matmul(ac, bc, { transB: true });
    const reference = await expected.toFloat32();
    const product = async () => {
      using ag = Tensor.from(a, [33, 48], { device });
      using bg = Tensor.from(b, [40, 48], { device });
      using out = ops.matmul(ag, bg, { transB: true });
      return await out.toFloat32();
    };
    expect(gemmPlans()).toEqual([]);

    // 1. cublasLtCreate fails and writes garbage into its handle: this GEMM runs on the own kernel.
    native.emulatorInjectFailure!('cublasLtCreate', 1);
    expectRelErr(await product(), reference, 1e-5, 'after a failed cublasLtCreate');
    expect(gemmPlans()).toEqual([]);

    // 2. The handle is made now, but the 32 MiB workspace does not fit: the own kernel again, no error.
    await trimCudaPool(device);
    native.emulatorSetMemoryCapacity!(native.emulatorMemory!().reserved + 4 * 2 ** 20);
    try {
      expectRelErr(await product(), reference, 1e-5, 'with no room for the workspace');
      expect(gemmPlans()).toEqual([]);
    } finally {
      native.emulatorSetMemoryCapacity!(8 * 2 ** 30);
    }

    // 3. Room again: cuBLASLt takes the product (a plan with algorithms), with the handle made in step 2.
    expectRelErr(await product(), reference, 1e-5, 'through cuBLASLt');
    const plans = gemmPlans();
    expect(plans.map((plan) => plan.kind)).toEqual(['matmul']);
    expect(plans[0]!.candidates, 'the heuristic offered no algorithm: the handle is not a working one').toBeGreaterThan(0);
  });
});
