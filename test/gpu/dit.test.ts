// The DiT golden case on CUDA: f32 against the float64 reference (rel <= 1e-4, output and every
// intermediate), bf16 against it within 1.25x the official bf16 run's error (never NaN), bf16
// intermediates against the CPU twin run with the same (official) numerics, and device memory
// returned after forward, abort and dispose.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, expect, it } from 'vitest';

import { getDevice } from '../../lib/device.js';
import type { HostTensor } from '../../lib/io/safetensors.js';
import { type DiTNumerics, StepVideoDiT } from '../../lib/models/dit/index.js';
import { allFinite, relErr } from '../helpers/compare.js';
import { type Captured, compareDiTCase, readDiTCase, runDiTCase, uploadDiTInputs } from '../helpers/dit-golden.js';
import { requireGolden, tinyModelDir } from '../helpers/golden.js';
import { describeGpu } from '../helpers/gpu.js';

const transformerDir = path.join(tinyModelDir, 'transformer');

describeGpu('DiT golden case on CUDA', () => {
  if (!requireGolden()) return;
  const manifest = JSON.parse(readFileSync(path.join(tinyModelDir, 'manifest.json'), 'utf8')) as { cases: { dit: { official_bf16_rel_err: number } } };
  const bf16Limit = 1.25 * manifest.cases.dit.official_bf16_rel_err;
  let golden: Map<string, HostTensor>;
  let cpuTwin: { output: Captured; inter: Map<string, Captured> };
  beforeAll(async () => {
    golden = await readDiTCase();
    // The CPU reference with the official bf16 path's quantisation points (f32 compute): what the
    // bf16 CUDA run computes, up to bf16 rounding of the activations.
    using twin = await StepVideoDiT.load(transformerDir, { device: 'cpu', numerics: 'bf16-official' });
    cpuTwin = await runDiTCase(twin, golden);
  });

  it('f32: output and every intermediate within 1e-4 of the float64 reference', async () => {
    using model = await StepVideoDiT.load(transformerDir, { device: 'cuda', dtype: 'f32' });
    const errors = compareDiTCase(golden, await runDiTCase(model, golden), { output: 1e-4, inter: 1e-4 });
    console.log(`DiT golden, CUDA f32 rel errors: ${[...errors].map(([n, e]) => `${n} ${e.toExponential(2)}`).join(', ')}`);
  });

  for (const numerics of ['bf16-official', 'exact'] as DiTNumerics[]) {
    it(`bf16 (${numerics} numerics): output within 1.25x the official bf16 error, never NaN`, async () => {
      using model = await StepVideoDiT.load(transformerDir, { device: 'cuda', dtype: 'bf16', numerics });
      expect(model.dtype).toBe('bf16');
      const run = await runDiTCase(model, golden);
      expect(allFinite(run.output.data)).toBe(true);
      const rel = relErr(run.output.data, golden.get('output')!.data as Float32Array);
      console.log(`DiT golden, CUDA bf16 ${numerics}: output rel ${rel.toExponential(3)} (limit ${bf16Limit.toExponential(3)}, official bf16 ${(bf16Limit / 1.25).toExponential(3)})`);
      expect(rel).toBeLessThanOrEqual(bf16Limit);
      for (const [name, captured] of run.inter) expect(allFinite(captured.data), `${name} finite`).toBe(true);
      if (numerics === 'bf16-official') {
        // Same quantisation points as the CPU twin: what is left is bf16 rounding of activations.
        for (const [name, want] of cpuTwin.inter) {
          const got = run.inter.get(name)!;
          expect(got.shape, name).toEqual(want.shape);
          const e = relErr(got.data, want.data);
          expect(e, `${name} vs CPU twin: ${e.toExponential(3)}`).toBeLessThanOrEqual(bf16Limit);
        }
        expect(relErr(run.output.data, cpuTwin.output.data)).toBeLessThanOrEqual(bf16Limit);
        // And near the official bf16 run itself (without its quantisation points we would be ~0.049 away).
        const toOfficial = relErr(run.output.data, golden.get('output_bf16_official')!.data as Float32Array);
        console.log(`DiT golden, CUDA bf16: rel to the official bf16 output ${toOfficial.toExponential(3)}`);
        expect(toOfficial).toBeLessThanOrEqual(0.5 * manifest.cases.dit.official_bf16_rel_err);
      }
    });
  }

  it('returns every device byte after forward, after an abort, and after dispose', async () => {
    const cuda = getDevice('cuda');
    await cuda.synchronize();
    const beforeLoad = cuda.memory().bytesInUse;
    const model = await StepVideoDiT.load(transformerDir, { device: 'cuda' });
    const { latents, y, clip, mask, timestep } = uploadDiTInputs(model, golden);
    const context = model.prepareContext({ y, clip, mask });
    await cuda.synchronize();
    const baseline = cuda.memory().bytesInUse;
    const out = await model.forward(latents, timestep, context);
    expect(out.dtype).toBe('bf16');
    out.dispose();
    await cuda.synchronize();
    expect(cuda.memory().bytesInUse).toBe(baseline);

    const controller = new AbortController();
    const aborted = model.forward(latents, timestep, context, { signal: controller.signal, onBlock: () => controller.abort() });
    await expect(aborted).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    await cuda.synchronize();
    expect(cuda.memory().bytesInUse).toBe(baseline);

    for (const t of [latents, y, clip]) t.dispose();
    context.dispose();
    model.dispose();
    await cuda.synchronize();
    expect(cuda.memory().bytesInUse).toBe(beforeLoad);
  });
});
