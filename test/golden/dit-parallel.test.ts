// Sequence parallelism (Ulysses) of the DiT on the CPU simulation of N devices (ranks with a
// communicator made of copies): the sharded forward equals the single-device forward bit for bit
// in f32 (every token's arithmetic is the same; only where it runs differs), with and without
// padded shards; an abort between blocks and a failure of one rank's exchange stop every rank and
// leave no memory behind. The tiny golden DiT has 2 heads (degree 2); degrees 3 and 4 run on a
// 12-head DiT with random weights in the released layout.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Device } from '../../lib/device.js';
import { StepVideoError } from '../../lib/errors.js';
import { type HostTensor, writeSafetensors } from '../../lib/io/safetensors.js';
import { ParallelDiT, StepVideoDiT, parseDiTConfig } from '../../lib/models/dit/index.js';
import { sample } from '../../lib/sampler/index.js';
import { ditWeightSpec } from '../../lib/models/dit/weights.js';
import { type Communicator, CopyCommunicator } from '../../lib/parallel/communicator.js';
import { Tensor } from '../../lib/tensor.js';
import { readDiTCase } from '../helpers/dit-golden.js';
import { inputsAtGrid } from '../helpers/dit-perf.js';
import { requireGolden, tinyModelDir } from '../helpers/golden.js';
import { Rng, randn } from '../helpers/random.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-dit-parallel-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A transformer/ folder like the tiny golden one with `heads` heads and random weights (std 1/sqrt(fan-in)). */
async function writeRandomDiT(dir: string, heads: number, layers: number): Promise<string> {
  const config = { ...JSON.parse(readFileSync(path.join(tinyModelDir, 'transformer', 'config.json'), 'utf8')), num_attention_heads: heads, num_layers: layers };
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  const rng = new Rng(heads * 1000 + layers);
  const tensors = new Map<string, HostTensor>();
  for (const [name, shape] of ditWeightSpec(parseDiTConfig(config, dir))) {
    const count = shape.reduce((a, b) => a * b, 1);
    const isNormWeight = /norm.*\.weight$/.test(name);
    const std = shape.length >= 2 ? 1 / Math.sqrt(shape[shape.length - 1]!) : 0.1;
    tensors.set(name, { dtype: 'f32', shape: [...shape], data: randn(rng, count, std, isNormWeight ? 1 : 0) });
  }
  await writeSafetensors(path.join(dir, 'diffusion_pytorch_model.safetensors'), tensors);
  return dir;
}

async function values(t: Tensor): Promise<Float32Array> {
  const out = await t.toFloat32();
  t.dispose();
  return out;
}

/** The single-device forward and the sequence-parallel one at `degree`, on the same inputs. */
async function bothForwards(model: StepVideoDiT, golden: Map<string, HostTensor>, grid: [number, number, number], degree: number) {
  const { latents, y, clip, mask, timestep } = inputsAtGrid(model, golden, grid, 11);
  using context = model.prepareContext({ y, clip, mask });
  const single = await values(await model.forward(latents, timestep, context));
  const blocks: number[] = [];
  const parallel = await values(await model.forwardSequenceParallel(latents, timestep, context, CopyCommunicator.virtual(Device.cpu, degree), { onBlock: (done) => blocks.push(done) }));
  for (const t of [latents, y, clip]) t.dispose();
  return { single, parallel, blocks };
}

/** Fails the `failAt`-th all-to-all (counting from 1): one rank's exchange going wrong. */
class FailingCommunicator implements Communicator {
  readonly #inner: CopyCommunicator;
  #calls = 0;
  constructor(inner: CopyCommunicator, readonly failAt: number) {
    this.#inner = inner;
  }
  get size() {
    return this.#inner.size;
  }
  get devices() {
    return this.#inner.devices;
  }
  async allToAll(parts: ReadonlyArray<ReadonlyArray<Tensor>>): Promise<Tensor[][]> {
    if (++this.#calls === this.failAt) throw new StepVideoError('ERR_CUDA', 'rank 1: the exchange failed (injected)');
    return this.#inner.allToAll(parts);
  }
}

describe.runIf(requireGolden())('DiT sequence parallelism on the CPU simulation', () => {
  let golden: Map<string, HostTensor>;
  let tiny: StepVideoDiT;
  let wide: StepVideoDiT;
  beforeAll(async () => {
    golden = await readDiTCase();
    tiny = await StepVideoDiT.load(path.join(tinyModelDir, 'transformer'), { device: 'cpu' });
    const dir = path.join(work, 'wide');
    mkdirSync(dir);
    wide = await StepVideoDiT.load(await writeRandomDiT(dir, 12, 2), { device: 'cpu' });
  }, 120_000);
  afterAll(() => {
    tiny?.dispose();
    wide?.dispose();
  });

  it('degree 2 on the golden tiny DiT equals the single-device forward bit for bit (even and padded shards)', async () => {
    for (const grid of [[2, 4, 6], [3, 1, 3]] as Array<[number, number, number]>) {
      const { single, parallel, blocks } = await bothForwards(tiny, golden, grid, 2);
      expect(parallel.length).toBe(single.length);
      expect(Buffer.from(parallel.buffer).equals(Buffer.from(single.buffer)), `grid ${grid}`).toBe(true);
      expect(blocks).toEqual([1, 2]);
    }
  });

  it('degrees 3 and 4 on a 12-head DiT equal the single-device forward bit for bit', async () => {
    for (const [degree, grid] of [[3, [2, 3, 4]], [4, [2, 3, 5]], [4, [1, 2, 2]]] as Array<[number, [number, number, number]]>) {
      const { single, parallel } = await bothForwards(wide, golden, grid, degree);
      expect(Math.max(...single.map(Math.abs))).toBeGreaterThan(0);
      expect(Buffer.from(parallel.buffer).equals(Buffer.from(single.buffer)), `degree ${degree}, grid ${grid}`).toBe(true);
    }
  }, 120_000);

  it('refuses a degree that does not divide the heads, and ranks on another device', async () => {
    const { latents, y, clip, mask, timestep } = inputsAtGrid(wide, golden, [1, 2, 2], 3);
    using context = wide.prepareContext({ y, clip, mask });
    await expect(wide.forwardSequenceParallel(latents, timestep, context, CopyCommunicator.virtual(Device.cpu, 5))).rejects.toThrow(/dividing the 12 attention heads/);
    for (const t of [latents, y, clip]) t.dispose();
  });

  it('CFG parallelism (alone and with sequence parallelism 2 or 3) equals the batched forward bit for bit', async () => {
    const { latents, y, clip, mask, timestep } = inputsAtGrid(wide, golden, [2, 3, 5], 13);
    using context = wide.prepareContext({ y, clip, mask });
    const single = await values(await wide.forward(latents, timestep, context));
    for (const sequenceParallel of [1, 2, 3]) {
      const parallel = new ParallelDiT(wide, { sequenceParallel, cfgParallel: true });
      expect(parallel.ranks).toBe(2 * sequenceParallel);
      using groups = parallel.prepareContext({ y, clip, mask });
      const blocks: number[] = [];
      const out = await values(await parallel.forward(latents, timestep, groups, { onBlock: (done) => blocks.push(done) }));
      expect(Buffer.from(out.buffer).equals(Buffer.from(single.buffer)), `CFG x SP ${sequenceParallel}`).toBe(true);
      expect(blocks).toEqual([1, 2]);
    }
    for (const t of [latents, y, clip]) t.dispose();
  }, 120_000);

  it('ranks with model replicas of their own (4 tiny DiTs: SP 2 x CFG) give the single-model output bit for bit', async () => {
    const replicas = [tiny];
    try {
      for (let i = 1; i < 4; i++) replicas.push(await StepVideoDiT.load(path.join(tinyModelDir, 'transformer'), { device: 'cpu' }));
      const { latents, y, clip, mask, timestep } = inputsAtGrid(tiny, golden, [3, 1, 3], 17);
      using context = tiny.prepareContext({ y, clip, mask });
      const single = await values(await tiny.forward(latents, timestep, context));
      const parallel = new ParallelDiT(tiny, { sequenceParallel: 2, cfgParallel: true }, replicas);
      expect(parallel.rankModels).toEqual(replicas);
      using groups = parallel.prepareContext({ y, clip, mask });
      // Every rank has its own context, from its own replica.
      expect(new Set(groups.groups.flat()).size).toBe(4);
      expect(groups.groups.flat().map((c) => c!.owner)).toEqual(replicas);
      const out = await values(await parallel.forward(latents, timestep, groups));
      expect(Buffer.from(out.buffer).equals(Buffer.from(single.buffer))).toBe(true);
      expect(() => new ParallelDiT(tiny, { sequenceParallel: 2 }, replicas)).toThrow(/2 ranks need 2 models/);
      for (const t of [latents, y, clip]) t.dispose();
    } finally {
      for (const r of replicas.slice(1)) r.dispose();
    }
  }, 120_000);

  it('sample() over the parallel DiT gives the single-device latents bit for bit', async () => {
    const noise = Float32Array.from(randn(new Rng(21), 1 * 2 * 64 * 3 * 4));
    using latents = Tensor.from(noise, [1, 2, 64, 3, 4], { device: 'cpu' });
    using y = Tensor.from(golden.get('encoder_hidden_states')!.data as Float32Array, golden.get('encoder_hidden_states')!.shape, { device: 'cpu' });
    using clip = Tensor.from(golden.get('encoder_hidden_states_2')!.data as Float32Array, golden.get('encoder_hidden_states_2')!.shape, { device: 'cpu' });
    const yMask = golden.get('encoder_attention_mask')!.data as Float32Array;  // [2, Lc + Ly]: conditional and unconditional rows
    const settings = { latents, text: { y, yMask, clip }, steps: 2, cfgScale: 7, timeShift: 13 };
    const single = await values(await sample(wide, settings));
    const parallel = await values(await sample(new ParallelDiT(wide, { sequenceParallel: 4, cfgParallel: true }), settings));
    expect(Buffer.from(parallel.buffer).equals(Buffer.from(single.buffer))).toBe(true);
  }, 120_000);

  it('an abort between blocks, or one rank failing, stops every rank and frees what they held', async () => {
    const { latents, y, clip, mask, timestep } = inputsAtGrid(wide, golden, [2, 3, 5], 5);
    using context = wide.prepareContext({ y, clip, mask });
    await Device.cpu.synchronize();
    const baseline = Device.cpu.memory().bytesInUse;

    const controller = new AbortController();
    const aborted = wide.forwardSequenceParallel(latents, timestep, context, CopyCommunicator.virtual(Device.cpu, 4), {
      signal: controller.signal,
      onBlock: () => controller.abort(),
    });
    await expect(aborted).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    await Device.cpu.synchronize();
    expect(Device.cpu.memory().bytesInUse).toBe(baseline);

    for (const failAt of [1, 2, 3]) {
      const failing = new FailingCommunicator(CopyCommunicator.virtual(Device.cpu, 3), failAt);
      await expect(wide.forwardSequenceParallel(latents, timestep, context, failing)).rejects.toThrow(/rank 1: the exchange failed/);
      await Device.cpu.synchronize();
      expect(Device.cpu.memory().bytesInUse, `failure at exchange ${failAt}`).toBe(baseline);
    }

    // CFG x SP: an abort stops both groups; memory back to the baseline.
    const parallel = new ParallelDiT(wide, { sequenceParallel: 2, cfgParallel: true });
    using groups = parallel.prepareContext({ y, clip, mask });
    await Device.cpu.synchronize();
    const withGroups = Device.cpu.memory().bytesInUse;
    const stop = new AbortController();
    await expect(parallel.forward(latents, timestep, groups, { signal: stop.signal, onBlock: () => stop.abort() })).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    await Device.cpu.synchronize();
    expect(Device.cpu.memory().bytesInUse).toBe(withGroups);
    for (const t of [latents, y, clip]) t.dispose();
  }, 120_000);
});
