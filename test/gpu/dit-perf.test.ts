// The DiT's performance plumbing on CUDA (written without a GPU at hand; run by the GPU session):
// ops per block equal to the CPU's; the memory model equal to the measured peak (bf16; FP8 with
// and without FP8 activations; fused residual; streamed); no pool growth after the first forward
// (every block served from cached memory); FP8 and the fused residual against the CPU twin;
// streamed weights bit for bit the resident result; GEMM autotuning.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, expect, it } from 'vitest';

import { getDevice } from '../../lib/device.js';
import { cudaPoolStats, gemmPlans, resetCudaPoolHigh } from '../../lib/device-stats.js';
import type { HostTensor } from '../../lib/io/safetensors.js';
import { type DiTLoadOptions, StepVideoDiT } from '../../lib/models/dit/index.js';
import * as ops from '../../lib/ops.js';
import { Tensor } from '../../lib/tensor.js';
import { allFinite, bf16Tolerance, expectRelErr, relErr } from '../helpers/compare.js';
import { type Captured, readDiTCase, runDiTCase, uploadDiTInputs } from '../helpers/dit-golden.js';
import { contextBytes, estimateFor, inputsAtGrid, measureForwardPeak, opsOfOneBlock } from '../helpers/dit-perf.js';
import { requireGolden, tinyModelDir } from '../helpers/golden.js';
import { describeGpu } from '../helpers/gpu.js';
import { Rng, randn } from '../helpers/random.js';

const transformerDir = path.join(tinyModelDir, 'transformer');

/** Runs `body` with cuBLASLt autotuning on or off (off: the heuristic's first algorithm, the same every run). */
async function withAutotune<T>(on: boolean, body: () => Promise<T>): Promise<T> {
  const previous = process.env.STEPVIDEO_GEMM_AUTOTUNE;
  process.env.STEPVIDEO_GEMM_AUTOTUNE = on ? '1' : '0';
  try {
    return await body();
  } finally {
    if (previous === undefined) delete process.env.STEPVIDEO_GEMM_AUTOTUNE;
    else process.env.STEPVIDEO_GEMM_AUTOTUNE = previous;
  }
}

const withoutAutotune = <T>(body: () => Promise<T>): Promise<T> => withAutotune(false, body);

describeGpu('DiT performance plumbing on CUDA', () => {
  if (!requireGolden()) return;
  const manifest = JSON.parse(readFileSync(path.join(tinyModelDir, 'manifest.json'), 'utf8')) as { cases: { dit: { official_bf16_rel_err: number } } };
  const bf16Limit = 1.25 * manifest.cases.dit.official_bf16_rel_err;
  let golden: Map<string, HostTensor>;
  const twins = new Map<string, { output: Captured; inter: Map<string, Captured> }>();
  beforeAll(async () => {
    golden = await readDiTCase();
    // CPU twins with the official quantisation points: what each bf16 CUDA run computes up to bf16 rounding.
    for (const [label, options] of [['model', {}], ['fp8 per-row', { weights: 'fp8', fp8Activations: 'per-row' }], ['fp8 none', { weights: 'fp8', fp8Activations: 'none' }]] as Array<[string, DiTLoadOptions]>) {
      using twin = await StepVideoDiT.load(transformerDir, { device: 'cpu', numerics: 'bf16-official', ...options });
      twins.set(label, await runDiTCase(twin, golden));
    }
  });

  it('ops per block on CUDA equal the CPU count: 16, 13 with the fused residual, 16 with FP8 weights', async () => {
    for (const [options, expected] of [[{}, 16], [{ fusedResidual: true }, 13], [{ weights: 'fp8' }, 16], [{ streaming: true }, 16]] as Array<[DiTLoadOptions, number]>) {
      using model = await StepVideoDiT.load(transformerDir, { device: 'cuda', ...options });
      const { latents, y, clip, mask, timestep } = uploadDiTInputs(model, golden);
      using context = model.prepareContext({ y, clip, mask });
      const { block, forward } = await opsOfOneBlock(model, latents, timestep, context);
      console.log(`DiT ops on CUDA (${JSON.stringify(options)}): ${block} per block, ${forward} per forward`);
      expect(block).toBe(expected);
      for (const t of [latents, y, clip]) t.dispose();
    }
  });

  it('memory model: weights, context and forward peak equal device.memory() on CUDA', async () => {
    const cuda = getDevice('cuda');
    const text = { llm: golden.get('encoder_hidden_states')!.shape[1]!, clip: golden.get('encoder_hidden_states_2')!.shape[1]! };
    for (const options of [{}, { weights: 'fp8' }, { weights: 'fp8', fp8Activations: 'none' }, { fusedResidual: true }, { streaming: true }, { streaming: true, weights: 'fp8' }, { dtype: 'f32' }] as DiTLoadOptions[]) {
      await cuda.synchronize();
      const beforeLoad = cuda.memory().bytesInUse;
      using model = await StepVideoDiT.load(transformerDir, { device: 'cuda', ...options });
      await cuda.synchronize();
      expect(cuda.memory().bytesInUse - beforeLoad, `weights ${JSON.stringify(options)}`).toBe(model.weightBytes);
      for (const grid of [[3, 4, 6], [12, 16, 16]] as Array<[number, number, number]>) {
        const { latents, y, clip, mask, timestep } = inputsAtGrid(model, golden, grid, 11);
        using context = model.prepareContext({ y, clip, mask });
        const estimate = estimateFor(model, latents, context, text);
        expect(model.weightBytes).toBe(estimate.weightBytes);
        expect(contextBytes(context)).toBe(estimate.contextBytes);
        const { peak, output } = await measureForwardPeak(model, latents, timestep, context);
        console.log(`DiT memory, CUDA ${JSON.stringify(options)} grid ${grid}: forward peak ${peak} B measured, ${estimate.forwardPeakBytes} B modelled`);
        expect(allFinite(output)).toBe(true);
        expect(peak, `forward peak ${JSON.stringify(options)} grid ${grid}`).toBe(estimate.forwardPeakBytes);
        for (const t of [latents, y, clip]) t.dispose();
      }
    }
  });

  it('no per-block allocation: after the first forward the pool serves every block from cached memory', async () => {
    const cuda = getDevice('cuda');
    using model = await StepVideoDiT.load(transformerDir, { device: 'cuda' });
    // A grid big enough that each activation spans several of the pool's 2 MiB granules.
    const { latents, y, clip, mask, timestep } = inputsAtGrid(model, golden, [12, 32, 32], 12);
    using context = model.prepareContext({ y, clip, mask });
    const firstForward: number[] = [];
    (await model.forward(latents, timestep, context, { onBlock: () => firstForward.push(cudaPoolStats(cuda).reservedBytes) })).dispose();
    await cuda.synchronize();
    resetCudaPoolHigh(cuda);
    const reserved = cudaPoolStats(cuda).reservedBytes;
    const secondForward: number[] = [];
    (await model.forward(latents, timestep, context, { onBlock: () => secondForward.push(cudaPoolStats(cuda).reservedBytes) })).dispose();
    await cuda.synchronize();
    const after = cudaPoolStats(cuda);
    console.log(`pool reserved per block: first forward ${firstForward.join(', ')}; second ${secondForward.join(', ')}; high ${after.reservedHighBytes}`);
    expect(secondForward.every((bytes) => bytes === reserved)).toBe(true);
    expect(after.reservedHighBytes).toBe(reserved);
    for (const t of [latents, y, clip]) t.dispose();
  });

  for (const activations of ['per-row', 'none'] as const) {
    it(`FP8 weights (activations ${activations}): bf16 CUDA output against the CPU twin and the float64 reference`, async () => {
      using model = await StepVideoDiT.load(transformerDir, { device: 'cuda', weights: 'fp8', fp8Activations: activations });
      const run = await runDiTCase(model, golden);
      const twin = twins.get(`fp8 ${activations}`)!;
      expect(allFinite(run.output.data)).toBe(true);
      const toTwin = relErr(run.output.data, twin.output.data);
      const toReference = relErr(run.output.data, golden.get('output')!.data as Float32Array);
      console.log(`DiT golden, CUDA bf16 FP8 (${activations}): rel to the CPU twin ${toTwin.toExponential(3)}, to the float64 reference ${toReference.toExponential(3)}`);
      // What is left against the twin is bf16 rounding of the activations (as for the bf16 DiT).
      expect(toTwin).toBeLessThanOrEqual(bf16Limit);
      for (const [name, want] of twin.inter) expect(relErr(run.inter.get(name)!.data, want.data), name).toBeLessThanOrEqual(bf16Limit);
    });
  }

  it('fused residual: the golden DiT equals the unfused run within bf16 rounding, and the CPU twin', async () => {
    const outputs = await withoutAutotune(async () => {
      using fused = await StepVideoDiT.load(transformerDir, { device: 'cuda', fusedResidual: true });
      using plain = await StepVideoDiT.load(transformerDir, { device: 'cuda' });
      return { fused: await runDiTCase(fused, golden), plain: await runDiTCase(plain, golden) };
    });
    const toPlain = relErr(outputs.fused.output.data, outputs.plain.output.data);
    const toTwin = relErr(outputs.fused.output.data, twins.get('model')!.output.data);
    console.log(`DiT golden, CUDA bf16 fused residual: rel to unfused ${toPlain.toExponential(3)}, to the CPU twin ${toTwin.toExponential(3)}`);
    expect(toPlain).toBeLessThanOrEqual(bf16Limit);
    expect(toTwin).toBeLessThanOrEqual(bf16Limit);
    for (const name of ['transformer_blocks.0', 'transformer_blocks.1']) {
      expect(relErr(outputs.fused.inter.get(name)!.data, outputs.plain.inter.get(name)!.data), name).toBeLessThanOrEqual(bf16Limit);
    }
  });

  it('streamed weights: bit for bit the resident result (bf16 and FP8), after an abort too; memory back after dispose', async () => {
    const cuda = getDevice('cuda');
    await withoutAutotune(async () => {
      for (const weights of ['model', 'fp8'] as const) {
        using resident = await StepVideoDiT.load(transformerDir, { device: 'cuda', weights });
        const want = await runDiTCase(resident, golden);
        await cuda.synchronize();
        const before = cuda.memory().bytesInUse;
        const streamed = await StepVideoDiT.load(transformerDir, { device: 'cuda', weights, streaming: true });
        const got = await runDiTCase(streamed, golden);
        expect(Array.from(got.output.data), weights).toEqual(Array.from(want.output.data));
        const { latents, y, clip, mask, timestep } = uploadDiTInputs(streamed, golden);
        const context = streamed.prepareContext({ y, clip, mask });
        const controller = new AbortController();
        await expect(streamed.forward(latents, timestep, context, { signal: controller.signal, onBlock: () => controller.abort() })).rejects.toMatchObject({ code: 'ERR_ABORTED' });
        using again = await streamed.forward(latents, timestep, context);
        expect(Array.from(await again.toFloat32()), `${weights} after an abort`).toEqual(Array.from(want.output.data));
        for (const t of [latents, y, clip]) t.dispose();
        context.dispose();
        again.dispose();
        streamed.dispose();
        await cuda.synchronize();
        expect(cuda.memory().bytesInUse, weights).toBe(before);
      }
    });
  });

  it('GEMM autotuning: candidates timed on first use, the fastest kept, results equal to the untuned GEMM', async () => {
    const [m, k, n] = [4096, 6144, 6144];
    using x = Tensor.from(randn(new Rng(1), m * k), [m, k], { device: 'cuda', dtype: 'bf16' });
    using w = Tensor.from(randn(new Rng(2), n * k, 1 / Math.sqrt(k)), [n, k], { device: 'cuda', dtype: 'bf16' });
    const untuned = await withoutAutotune(async () => {
      using y = ops.linear(x, w);
      return await y.toFloat32();
    });
    // First use times the candidates; the second finds the timings done (the device was synchronised).
    await withAutotune(true, async () => {
      for (let run = 0; run < 3; run++) {
        using y = ops.linear(x, w);
        await getDevice('cuda').synchronize();
        if (run === 2) expectRelErr(await y.toFloat32(), untuned, bf16Tolerance(untuned), 'autotuned GEMM');
      }
    });
    const plan = gemmPlans().find((p) => p.kind === 'matmul' && p.m === m && p.n === n && p.k === k);
    expect(plan, 'a plan for the shape').toBeDefined();
    console.log(`autotuned [${m}, ${k}] x [${n}, ${k}]: ${plan!.candidates} candidates, ms ${plan!.candidateMs.map((t) => t.toFixed(3)).join(' ')}, chose ${plan!.chosen}`);
    expect(plan!.candidates).toBeGreaterThanOrEqual(1);
    if (plan!.candidates > 1) {
      expect(plan!.tuned).toBe(true);
      const measured = plan!.candidateMs.filter((t) => t >= 0);
      expect(plan!.candidateMs[plan!.chosen]).toBe(Math.min(...measured));
    }
  });
});
