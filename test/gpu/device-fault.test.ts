// A kernel that faults leaves the device unusable for the rest of the process (a CUDA context cannot
// recover from a sticky error). What must hold: the Node process lives on, the fault surfaces as a
// typed ERR_CUDA_FAULT naming the first failure, every later call on the device fails with that
// same error instead of crashing, buffers are released without throwing from destructors or
// finalizers, and the CPU backend keeps working (issue 12, item 1). This file faults its process's
// device on purpose: vitest runs every test file in a process of its own.
import { expect, it } from 'vitest';

import { deviceFault, getDevice } from '../../lib/device.js';
import { native } from '../../lib/native.js';
import * as ops from '../../lib/ops.js';
import { Tensor } from '../../lib/tensor.js';
import { describeGpu } from '../helpers/gpu.js';

describeGpu('a GPU fault', () => {
  it('is reported as ERR_CUDA_FAULT naming it, on every later call, while the process and the CPU backend live on', async () => {
    const device = getDevice('cuda');
    using before = Tensor.from(Float32Array.from({ length: 1000 }, (_, i) => i), [1000], { device });
    expect((await before.toFloat32())[999]).toBe(999);
    expect(deviceFault(device)).toBe('');

    native.debugFaultDevice(device.index);  // a kernel that traps, as a kernel bug would fault
    using doubled = ops.scale(before, 2);    // queued behind the fault (or refused once it is known)
    const read = doubled.toFloat32();
    await expect(read).rejects.toMatchObject({ code: 'ERR_CUDA_FAULT' });
    const first = (await read.catch((error: Error) => error)) as Error;
    expect(first.message).toMatch(/unusable after an earlier GPU fault/);
    expect(first.message).toMatch(/restart the process/);
    expect(deviceFault(device)).not.toBe('');

    // Every later call on the device fails with the same error, naming the same first fault.
    const fault = deviceFault(device);
    for (const attempt of [
      () => Tensor.from([1, 2, 3], [3], { device }),
      () => ops.scale(before, 3),
      () => device.info(),
    ]) {
      let error: unknown;
      try {
        attempt();
      } catch (caught) {
        error = caught;
      }
      expect(error).toMatchObject({ code: 'ERR_CUDA_FAULT' });
      expect((error as Error).message).toContain(fault);
    }
    await expect(before.toFloat32()).rejects.toMatchObject({ code: 'ERR_CUDA_FAULT' });
    await expect(device.synchronize()).rejects.toMatchObject({ code: 'ERR_CUDA_FAULT' });

    // Disposing device tensors after the fault does not throw (the frees fail quietly).
    before.dispose();
    doubled.dispose();

    // The CPU backend is untouched.
    using cpu = Tensor.from([1, 2, 3], [3], { device: 'cpu' });
    using tripled = ops.scale(cpu, 3);
    expect(Array.from(await tripled.toFloat32())).toEqual([3, 6, 9]);
  });
});
