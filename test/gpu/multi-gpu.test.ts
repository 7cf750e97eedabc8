// Ranks on several GPUs (needs at least two CUDA devices and NCCL; skipped, saying so, elsewhere):
// NCCL's all-to-all moves every part to its receiver, and the DiT golden case with sequence
// parallelism 2 over cuda:0 and cuda:1 (a replica on each) meets the bounds the single forward
// meets: f32 within 1e-4 of the float64 reference, bf16 within rho of the CPU twin
// (docs/TOLERANCES.md, "DiT golden, bf16"); device memory back to its baseline on both.
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { cudaDeviceCount, getDevice, ncclInfo } from '../../lib/device.js';
import { ParallelDiT, StepVideoDiT } from '../../lib/models/dit/index.js';
import { NcclCommunicator } from '../../lib/parallel/communicator.js';
import { Tensor } from '../../lib/tensor.js';
import { relErr } from '../helpers/compare.js';
import { readDiTCase, runDiTCase, uploadDiTInputs } from '../helpers/dit-golden.js';
import { requireGolden, tinyModelDir } from '../helpers/golden.js';
import { emulatedDevice } from '../helpers/gpu.js';
import { bf16Allowance } from '../helpers/tolerances.js';

const transformerDir = path.join(tinyModelDir, 'transformer');
const gpus = emulatedDevice ? 0 : cudaDeviceCount();
const nccl = gpus >= 2 ? ncclInfo() : undefined;
const why = gpus < 2 ? `${gpus} CUDA device(s) here${emulatedDevice ? ' (emulated)' : ''}, two needed` : nccl?.path === null ? `no NCCL: ${nccl.why}` : '';

(why ? describe.skip : describe)(`ranks on two GPUs over NCCL${why ? ` [skipped: ${why}]` : ''}`, () => {
  it('all-to-all: rank r receives part [s][r] of every rank s', async () => {
    const devices = [getDevice('cuda:0'), getDevice('cuda:1')];
    const comm = new NcclCommunicator(devices);
    const parts = [0, 1].map((s) => [0, 1].map((r) => Tensor.full([3, r + 2], 10 * s + r, 'bf16', devices[s]!)));
    const received = await comm.allToAll(parts);
    for (let r = 0; r < 2; r++)
      for (let s = 0; s < 2; s++) {
        expect(received[r]![s]!.device).toBe(devices[r]);
        expect(Array.from(await received[r]![s]!.toFloat32())).toEqual(new Array(3 * (r + 2)).fill(10 * s + r));
      }
    for (const t of [...parts.flat(), ...received.flat()]) t.dispose();
  });

  it('the DiT golden case with SP 2 over cuda:0 and cuda:1: f32 and bf16 within the single forward bounds, memory back on both', async () => {
    if (!requireGolden()) return;
    const golden = await readDiTCase();
    using twinModel = await StepVideoDiT.load(transformerDir, { device: 'cpu', numerics: 'bf16-official' });
    const twin = (await runDiTCase(twinModel, golden)).output.data;
    const rho = bf16Allowance(relErr(twin, golden.get('output_bf16_official')!.data as Float32Array));
    const devices = [getDevice('cuda:0'), getDevice('cuda:1')];
    for (const d of devices) await d.synchronize();
    const baseline = devices.map((d) => d.memory().bytesInUse);
    for (const dtype of ['f32', 'bf16'] as const) {
      const options = { dtype, ...(dtype === 'bf16' ? { numerics: 'bf16-official' as const } : {}) };
      const models = await Promise.all(devices.map((device) => StepVideoDiT.load(transformerDir, { device, ...options })));
      try {
        const { latents, y, clip, mask, timestep } = uploadDiTInputs(models[0]!, golden);
        const parallel = new ParallelDiT(models[0]!, { sequenceParallel: 2 }, models);
        using context = parallel.prepareContext({ y, clip, mask });
        using out = await parallel.forward(latents, timestep, context);
        const got = await out.toFloat32();
        for (const t of [latents, y, clip]) t.dispose();
        const err = dtype === 'f32' ? relErr(got, golden.get('output')!.data as Float32Array) : relErr(got, twin);
        console.log(`DiT golden, SP 2 over two GPUs (NCCL ${nccl!.version}), ${dtype}: rel ${err.toExponential(3)}`);
        expect(err).toBeLessThanOrEqual(dtype === 'f32' ? 1e-4 : rho);
      } finally {
        for (const m of models) m.dispose();
      }
    }
    for (const d of devices) await d.synchronize();
    expect(devices.map((d) => d.memory().bytesInUse)).toEqual(baseline);
  });
});
