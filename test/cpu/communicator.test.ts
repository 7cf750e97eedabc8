// How the ranks of one job exchange tensors (lib/parallel/communicator.ts): the all-to-all of
// copies (every part lands on its receiver as a copy, in rank order), the choice between NCCL and
// copies, and NCCL's absence reported with what to install.
import { describe, expect, it } from 'vitest';

import { Device, ncclInfo } from '../../lib/device.js';
import { StepVideoError } from '../../lib/errors.js';
import { native } from '../../lib/native.js';
import { CopyCommunicator, communicatorFor } from '../../lib/parallel/communicator.js';
import { Tensor } from '../../lib/tensor.js';
import * as stepvideo from '../../lib/index.js';

describe('CopyCommunicator', () => {
  it('all-to-all: rank r receives part [s][r] of every rank s, in rank order, as copies it owns', async () => {
    const comm = CopyCommunicator.virtual(Device.cpu, 3);
    const parts = [0, 1, 2].map((s) => [0, 1, 2].map((r) => Tensor.full([2, r + 1], 10 * s + r, 'f32', 'cpu')));
    const received = await comm.allToAll(parts);
    for (let r = 0; r < 3; r++) {
      for (let s = 0; s < 3; s++) {
        const got = received[r]![s]!;
        expect(got).not.toBe(parts[s]![r]);
        expect(got.shape).toEqual([2, r + 1]);
        expect(Array.from(await got.toFloat32())).toEqual(new Array(2 * (r + 1)).fill(10 * s + r));
      }
    }
    // The parts sent stay the sender's: disposing the received copies leaves them readable.
    for (const row of received) for (const t of row) t.dispose();
    expect(Array.from(await parts[2]![1]!.toFloat32())).toEqual([21, 21, 21, 21]);
    for (const row of parts) for (const t of row) t.dispose();
  });

  it('refuses a grid that is not ranks x ranks, and a rank count that is not a positive integer', async () => {
    const comm = CopyCommunicator.virtual(Device.cpu, 2);
    using t = Tensor.zeros([1]);
    await expect(comm.allToAll([[t, t]])).rejects.toThrow(/2 x 2 parts/);
    expect(() => CopyCommunicator.virtual(Device.cpu, 0)).toThrow(StepVideoError);
  });

  it('ranks sharing a device, or on the CPU, exchange by copies', () => {
    expect(communicatorFor([Device.cpu, Device.cpu])).toBeInstanceOf(CopyCommunicator);
  });

  it('an NCCL group without NCCL is ERR_UNSUPPORTED naming what to install (ERR_DEVICE without CUDA)', () => {
    let thrown: unknown;
    try {
      native.ncclGroupCreate([0]);
    } catch (error) {
      thrown = error;
    }
    if (!native.build.cuda) {
      expect((thrown as StepVideoError).code).toBe('ERR_DEVICE');
      return;
    }
    if (ncclInfo().path !== null) return;  // NCCL present: creating a group needs the GPUs it names
    expect((thrown as StepVideoError).code).toBe('ERR_UNSUPPORTED');
    expect((thrown as Error).message).toMatch(/ranks on several GPUs need NCCL: .*apt install libnccl2.*nvidia-nccl-cu12.*STEPVIDEO_NCCL/);
  });
});

describe('the package root', () => {
  it('exports the execution context and the parallel layer', () => {
    for (const name of ['ExecutionContext', 'contextFor', 'ParallelDiT', 'ParallelDiTContext', 'CopyCommunicator', 'NcclCommunicator', 'communicatorFor', 'ncclInfo'] as const) {
      expect(typeof stepvideo[name], name).toBe('function');
    }
  });
});
