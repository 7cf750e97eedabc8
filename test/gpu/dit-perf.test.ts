// The DiT's performance plumbing on CUDA (written without a GPU at hand; run by the GPU session):
// ops per block equal to the CPU's; the memory model equal to the measured peak (bf16; FP8 with
// and without FP8 activations; fused residual; streamed); no pool growth after the first forward
// (every block served from cached memory); FP8 and the fused residual against the CPU twins within
// the bounds of docs/TOLERANCES.md ("FP8 and fused-residual DiT"); streamed weights bit for bit the
// resident result; GEMM autotuning.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';

import { getDevice } from '../../lib/device.js';
import { cudaPoolStats, gemmPlans, resetCudaPoolHigh } from '../../lib/device-stats.js';
import type { HostTensor } from '../../lib/io/safetensors.js';
import { type DiTLoadOptions, StepVideoDiT } from '../../lib/models/dit/index.js';
import * as ops from '../../lib/ops.js';
import { Tensor } from '../../lib/tensor.js';
import { allFinite, bf16Tolerance, expectRelErr, relErr } from '../helpers/compare.js';
import { type Captured, readDiTCase, runDiTCase, uploadDiTInputs } from '../helpers/dit-golden.js';
import { contextBytes, estimateFor, inputsAtGrid, measureForwardPeak, opsOfOneBlock, writeFp8RoundTripTransformer } from '../helpers/dit-perf.js';
import { requireGolden, tinyModelDir } from '../helpers/golden.js';
import { describeGpu, fitEmulated, withPolicy } from '../helpers/gpu.js';
import { Rng, randn } from '../helpers/random.js';
import { INTERMEDIATE_FACTOR, bf16Allowance, bf16VsOfficial, fp8Bound } from '../helpers/tolerances.js';

const transformerDir = path.join(tinyModelDir, 'transformer');

/** Runs `body` with cuBLASLt autotuning on or off (off: the heuristic's first algorithm, the same every run). */
function withAutotune<T>(on: boolean, body: () => Promise<T>): Promise<T> {
  return withPolicy({ gemmAutotune: on }, body);
}

const withoutAutotune = <T>(body: () => Promise<T>): Promise<T> => withAutotune(false, body);

describeGpu('DiT performance plumbing on CUDA', () => {
  if (!requireGolden()) return;
  let golden: Map<string, HostTensor>;
  const twins = new Map<string, { output: Captured; inter: Map<string, Captured> }>();
  let rho = 0; // the bf16 DiT's noise allowance, 1.25 r
  let officialNoise = 0; // r
  const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-dit-perf-gpu-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  beforeAll(async () => {
    golden = await readDiTCase();
    // CPU twins with the official quantisation points: what each bf16 CUDA run computes up to its own
    // rounding. 'fp8 bf16 weights': the weights-only FP8 model over the bf16-rounded round trip.
    const bf16Weights = await writeFp8RoundTripTransformer(path.join(work, 'fp8-bf16-weights'), { bf16Weights: true });
    for (const [label, dir, options] of [
      ['model', transformerDir, {}],
      ['fp8 per-row', transformerDir, { weights: 'fp8', fp8Activations: 'per-row' }],
      ['fp8 none', transformerDir, { weights: 'fp8', fp8Activations: 'none' }],
      ['fp8 bf16 weights', bf16Weights, {}],
    ] as Array<[string, string, DiTLoadOptions]>) {
      using twin = await StepVideoDiT.load(dir, { device: 'cpu', numerics: 'bf16-official', ...options });
      twins.set(label, await runDiTCase(twin, golden));
    }
    officialNoise = relErr(twins.get('model')!.output.data, golden.get('output_bf16_official')!.data as Float32Array);
    rho = bf16Allowance(officialNoise);
  });

  /** The output (name 'output') or a captured intermediate of a run. */
  const part = (run: { output: Captured; inter: Map<string, Captured> }, name: string) => (name === 'output' ? run.output : run.inter.get(name)!);

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

  // On the emulated device (test/helpers/gpu.ts) a forward of the tiny DiT at 3072 tokens takes about
  // a minute (attention and GEMMs at about 1 GFLOP/s): the larger grid is smaller there.
  const memoryGrid = fitEmulated<[number, number, number]>([12, 16, 16], [4, 8, 8], 'grid 12x16x16 -> 4x8x8 (3,072 -> 256 tokens) to fit CI time');
  it(`memory model: weights, context and forward peak equal device.memory() on CUDA${memoryGrid.note}`, async () => {
    const cuda = getDevice('cuda');
    const text = { llm: golden.get('encoder_hidden_states')!.shape[1]!, clip: golden.get('encoder_hidden_states_2')!.shape[1]! };
    for (const options of [{}, { weights: 'fp8' }, { weights: 'fp8', fp8Activations: 'none' }, { fusedResidual: true }, { streaming: true }, { streaming: true, weights: 'fp8' }, { dtype: 'f32' }] as DiTLoadOptions[]) {
      await cuda.synchronize();
      const beforeLoad = cuda.memory().bytesInUse;
      using model = await StepVideoDiT.load(transformerDir, { device: 'cuda', ...options });
      await cuda.synchronize();
      expect(cuda.memory().bytesInUse - beforeLoad, `weights ${JSON.stringify(options)}`).toBe(model.weightBytes);
      for (const grid of [[3, 4, 6], memoryGrid.value] as Array<[number, number, number]>) {
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

  const poolGrid = fitEmulated<[number, number, number]>([12, 32, 32], [4, 16, 16],
    'grid 12x32x32 -> 4x16x16 (12,288 -> 1,024 tokens: the QKV and FFN activations still span two granules) to fit CI time');
  it(`no per-block allocation: after the first forward the pool serves every block from cached memory${poolGrid.note}`, async () => {
    const cuda = getDevice('cuda');
    using model = await StepVideoDiT.load(transformerDir, { device: 'cuda' });
    // A grid big enough that each activation spans several of the pool's 2 MiB granules.
    const { latents, y, clip, mask, timestep } = inputsAtGrid(model, golden, poolGrid.value, 12);
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
    it(`FP8 weights (activations ${activations}): bf16 CUDA output and intermediates against the CPU twins`, async () => {
      using model = await StepVideoDiT.load(transformerDir, { device: 'cuda', weights: 'fp8', fp8Activations: activations });
      const run = await runDiTCase(model, golden);
      const twin = twins.get(`fp8 ${activations}`)!;
      const perRow = twins.get('fp8 per-row')!;
      const weightsOnly = twins.get('fp8 none')!;
      const bf16Weights = twins.get('fp8 bf16 weights')!;
      expect(allFinite(run.output.data)).toBe(true);
      for (const name of ['output', ...twin.inter.keys()]) {
        // Reference distances of this tensor: dW (bf16-rounded FP8 weights), dAct (FP8 activations at all).
        const dW = relErr(part(bf16Weights, name).data, part(weightsOnly, name).data);
        const dAct = relErr(part(perRow, name).data, part(weightsOnly, name).data);
        const noise = name === 'output' ? rho : INTERMEDIATE_FACTOR * rho;
        const got = part(run, name).data;
        const toTwin = relErr(got, part(twin, name).data);
        if (name === 'output') console.log(`DiT golden, CUDA bf16 FP8 (${activations}): rel to the CPU twin ${toTwin.toExponential(3)} (bound ${fp8Bound(noise, dW, dAct, activations).toExponential(3)}; rho ${rho.toExponential(3)}, dW ${dW.toExponential(3)}, dAct ${dAct.toExponential(3)})`);
        expect(toTwin, `${name} vs the CPU twin`).toBeLessThanOrEqual(fp8Bound(noise, dW, dAct, activations));
        if (activations === 'per-row') {
          // The GPU's activation quantization is no worse than the twin's (1.25 dAct from the weights-only twin).
          expect(relErr(got, part(weightsOnly, name).data), `${name} vs the weights-only twin`).toBeLessThanOrEqual(fp8Bound(noise, dW, dAct, activations, 'weights-only twin'));
        }
      }
    });
  }

  it('fused residual: the golden DiT within rho of the CPU twin, rho + r of the official output, 2 rho of the unfused run', async () => {
    const outputs = await withoutAutotune(async () => {
      using fused = await StepVideoDiT.load(transformerDir, { device: 'cuda', fusedResidual: true });
      using plain = await StepVideoDiT.load(transformerDir, { device: 'cuda' });
      return { fused: await runDiTCase(fused, golden), plain: await runDiTCase(plain, golden) };
    });
    const twin = twins.get('model')!;
    const toTwin = relErr(outputs.fused.output.data, twin.output.data);
    const toPlain = relErr(outputs.fused.output.data, outputs.plain.output.data);
    const toOfficial = relErr(outputs.fused.output.data, golden.get('output_bf16_official')!.data as Float32Array);
    console.log(`DiT golden, CUDA bf16 fused residual: rel to the CPU twin ${toTwin.toExponential(3)} (rho ${rho.toExponential(3)}), to unfused ${toPlain.toExponential(3)}, to the official bf16 output ${toOfficial.toExponential(3)}`);
    // The fused GEMM rounds once where the unfused pair rounds twice: its noise is within rho too.
    expect(toTwin).toBeLessThanOrEqual(rho);
    expect(toOfficial).toBeLessThanOrEqual(bf16VsOfficial(officialNoise));
    // Both runs within rho (2 rho per intermediate) of the same twin: triangle.
    expect(toPlain).toBeLessThanOrEqual(2 * rho);
    for (const name of ['transformer_blocks.0', 'transformer_blocks.1']) {
      expect(relErr(outputs.fused.inter.get(name)!.data, twin.inter.get(name)!.data), `${name} vs twin`).toBeLessThanOrEqual(INTERMEDIATE_FACTOR * rho);
      expect(relErr(outputs.fused.inter.get(name)!.data, outputs.plain.inter.get(name)!.data), `${name} vs unfused`).toBeLessThanOrEqual(2 * INTERMEDIATE_FACTOR * rho);
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

  // The reference cuBLASLt of the emulated device runs about 1.5 GFLOP/s (309 GFLOP here per GEMM).
  const tuned = fitEmulated<[number, number, number]>([4096, 6144, 6144], [256, 1024, 1024], '[4096, 6144] x [6144, 6144] -> [256, 1024] x [1024, 1024] to fit CI time');
  it(`GEMM autotuning: candidates timed on first use, the fastest kept, results equal to the untuned GEMM${tuned.note}`, async () => {
    const [m, k, n] = tuned.value;
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
