// Sequence and CFG parallelism of the DiT on CUDA (ranks sharing cuda:0; on the emulated device in
// CI): the golden case through ParallelDiT (SP 2 x CFG: 4 ranks) in f32 within the f32 golden bound
// of the single forward (1e-4 of the float64 reference), and in bf16 within rho of the CPU twin, the
// bound the single bf16 forward meets (docs/TOLERANCES.md, "DiT golden, bf16"); the parallel forward
// is the same arithmetic per token, so it needs no bound of its own. Device memory returns to its
// baseline.
import path from 'node:path';
import { beforeAll, expect, it } from 'vitest';

import { getDevice } from '../../lib/device.js';
import type { HostTensor } from '../../lib/io/safetensors.js';
import { ParallelDiT, StepVideoDiT } from '../../lib/models/dit/index.js';
import { allFinite, relErr } from '../helpers/compare.js';
import { readDiTCase, runDiTCase, uploadDiTInputs } from '../helpers/dit-golden.js';
import { requireGolden, tinyModelDir } from '../helpers/golden.js';
import { describeGpu } from '../helpers/gpu.js';
import { bf16Allowance } from '../helpers/tolerances.js';

const transformerDir = path.join(tinyModelDir, 'transformer');

async function parallelOutput(model: StepVideoDiT, golden: Map<string, HostTensor>): Promise<Float32Array> {
  const { latents, y, clip, mask, timestep } = uploadDiTInputs(model, golden);
  try {
    const parallel = new ParallelDiT(model, { sequenceParallel: 2, cfgParallel: true });
    using context = parallel.prepareContext({ y, clip, mask });
    using out = await parallel.forward(latents, timestep, context);
    return await out.toFloat32();
  } finally {
    for (const t of [latents, y, clip]) t.dispose();
  }
}

describeGpu('DiT sequence x CFG parallelism on CUDA (4 ranks on cuda:0)', () => {
  if (!requireGolden()) return;
  let golden: Map<string, HostTensor>;
  let twin: Float32Array;
  let officialNoise = 0;
  beforeAll(async () => {
    golden = await readDiTCase();
    using cpu = await StepVideoDiT.load(transformerDir, { device: 'cpu', numerics: 'bf16-official' });
    twin = (await runDiTCase(cpu, golden)).output.data;
    officialNoise = relErr(twin, golden.get('output_bf16_official')!.data as Float32Array);
  });

  it('f32: within 1e-4 of the float64 reference, as the single forward', async () => {
    using model = await StepVideoDiT.load(transformerDir, { device: 'cuda', dtype: 'f32' });
    const out = await parallelOutput(model, golden);
    const err = relErr(out, golden.get('output')!.data as Float32Array);
    console.log(`DiT golden, CUDA f32, SP 2 x CFG: rel ${err.toExponential(3)} to the float64 reference`);
    expect(err).toBeLessThanOrEqual(1e-4);
  });

  it('bf16: within rho of the CPU twin, never NaN, device memory back to its baseline', async () => {
    const device = getDevice('cuda');
    await device.synchronize();
    const baseline = device.memory().bytesInUse;
    {
      using model = await StepVideoDiT.load(transformerDir, { device: 'cuda', dtype: 'bf16', numerics: 'bf16-official' });
      const out = await parallelOutput(model, golden);
      expect(allFinite(out)).toBe(true);
      const rho = bf16Allowance(officialNoise);
      const err = relErr(out, twin);
      console.log(`DiT golden, CUDA bf16, SP 2 x CFG: rel ${err.toExponential(3)} to the CPU twin (rho ${rho.toExponential(3)})`);
      expect(err).toBeLessThanOrEqual(rho);
    }
    await device.synchronize();
    expect(device.memory().bytesInUse).toBe(baseline);
  });
});
