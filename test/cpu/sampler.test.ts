// The denoising loop (lib/sampler/sample.ts) on the CPU with a linear stand-in for the DiT: the
// result against a float64 loop, what the model is fed (batching, dtype, timesteps, text rows),
// guidance on and off, progress, abort between steps and inside the model, memory, and errors.
import { describe, expect, it } from 'vitest';

import { Device } from '../../lib/device.js';
import { type ErrorCode, isStepVideoError } from '../../lib/errors.js';
import { flowMatchSigmas, generateNoise, sample, type SampleOptions, type SampleProgress } from '../../lib/sampler/index.js';
import { Tensor } from '../../lib/tensor.js';
import { expectRelErr } from '../helpers/compare.js';
import { LinearVelocityModel, referenceSample } from '../helpers/linear-velocity-model.js';
import { Rng, randn } from '../helpers/random.js';

const cpu = Device.cpu;
const SHAPE = [1, 3, 4, 5, 6];
const N = SHAPE.reduce((a, b) => a * b, 1);
const CLIP_LEN = 3;
const LLM_LEN = 6;
// Row offsets: prompt rows first, then negative rows; guidance amplifies their difference.
const PARAMS = { a: -0.8, b: 0.5, rowOffsets: [0.3, -0.2, 0.7, 0.1] };

interface Inputs extends Disposable {
  latents: Tensor;
  latentsData: Float32Array;
  text: SampleOptions['text'];
}

/** Latents [B, 3, 4, 5, 6] and text for `rows` rows, each row with its own number of valid LLM tokens. */
function makeInputs(rows: number, batch = 1, seed = 7): Inputs {
  const rng = new Rng(seed);
  const latentsData = randn(rng, batch * N);
  const latents = Tensor.from(latentsData, [batch, ...SHAPE.slice(1)], { device: 'cpu' });
  const y = Tensor.from(randn(rng, rows * LLM_LEN * 8), [rows, LLM_LEN, 8], { device: 'cpu' });
  const clip = Tensor.from(randn(rng, rows * CLIP_LEN * 4), [rows, CLIP_LEN, 4], { device: 'cpu' });
  const yMask: number[] = [];
  for (let r = 0; r < rows; r++) for (let j = 0; j < CLIP_LEN + LLM_LEN; j++) yMask.push(j < CLIP_LEN + 2 + r ? 1 : 0);
  return {
    latents,
    latentsData,
    text: { y, yMask, clip },
    [Symbol.dispose]() {
      for (const t of [latents, y, clip]) t.dispose();
    },
  };
}

async function expectRejects(promise: Promise<unknown>, code: ErrorCode, pattern: RegExp): Promise<void> {
  try {
    await promise;
  } catch (error) {
    expect(isStepVideoError(error), String(error)).toBe(true);
    expect((error as { code: string }).code).toBe(code);
    expect((error as Error).message).toMatch(pattern);
    return;
  }
  throw new Error(`expected a rejection with ${code}`);
}

describe('sample() on the CPU with a linear stand-in model', () => {
  it('reproduces the float64 guided Euler loop and feeds the model as the official pipeline does', async () => {
    using inputs = makeInputs(2);
    const model = new LinearVelocityModel(cpu, 'f32', PARAMS);
    const before = cpu.memory().bytesInUse;
    using out = await sample(model, { latents: inputs.latents, text: inputs.text, steps: 4, cfgScale: 9, timeShift: 13 });
    expect(out.shape).toEqual(SHAPE);
    expect(out.dtype).toBe('f32');
    const expected = referenceSample({ latents: inputs.latentsData, batch: 1, steps: 4, timeShift: 13, cfgScale: 9, params: PARAMS, modelDType: 'f32' });
    const rel = expectRelErr(await out.toFloat32(), expected, 1e-6, 'guided loop');
    console.log(`guided loop vs float64: rel ${rel.toExponential(2)}`);

    // One model call per step over [x, x] with both text rows, timesteps sigma_0..sigma_3.
    const sigmas = flowMatchSigmas(4, 13);
    expect(model.calls.map((c) => c.shape)).toEqual(Array.from({ length: 4 }, () => [2, ...SHAPE.slice(1)]));
    expect(model.calls.map((c) => c.timestep)).toEqual(Array.from({ length: 4 }, (_, i) => [sigmas[i]!, sigmas[i]!]));
    expect(model.calls.every((c) => c.dtype === 'f32')).toBe(true);
    expect(model.conditionings).toHaveLength(1);
    expect(model.conditionings[0]!.yShape).toEqual([2, LLM_LEN, 8]);
    expect(model.conditionings[0]!.clipShape).toEqual([2, CLIP_LEN, 4]);
    expect(model.conditionings[0]!.mask).toEqual(Array.from(inputs.text.yMask));
    expect(model.openContexts).toBe(0);
    // Only the returned latents remain.
    expect(cpu.memory().bytesInUse - before).toBe(N * 4);
  });

  it('pairs prompt row b with negative row B + b for a batch of two videos', async () => {
    using inputs = makeInputs(4, 2);
    const model = new LinearVelocityModel(cpu, 'f32', PARAMS);
    using out = await sample(model, { latents: inputs.latents, text: inputs.text, steps: 3, cfgScale: 5, timeShift: 17 });
    const expected = referenceSample({ latents: inputs.latentsData, batch: 2, steps: 3, timeShift: 17, cfgScale: 5, params: PARAMS, modelDType: 'f32' });
    expectRelErr(await out.toFloat32(), expected, 1e-6, 'batch of two');
    expect(model.calls[0]!.shape[0]).toBe(4);
  });

  it('makes no unconditional pass when cfgScale <= 1 and drops the negative rows', async () => {
    using inputs = makeInputs(2);
    const model = new LinearVelocityModel(cpu, 'f32', PARAMS);
    using out = await sample(model, { latents: inputs.latents, text: inputs.text, steps: 5, cfgScale: 1, timeShift: 7 });
    const expected = referenceSample({ latents: inputs.latentsData, batch: 1, steps: 5, timeShift: 7, cfgScale: 1, params: PARAMS, modelDType: 'f32' });
    expectRelErr(await out.toFloat32(), expected, 1e-6, 'unguided loop');
    expect(model.calls.map((c) => c.shape[0])).toEqual([1, 1, 1, 1, 1]);
    expect(model.calls.every((c) => c.timestep.length === 1)).toBe(true);
    expect(model.conditionings[0]!.yShape[0]).toBe(1);
    expect(model.conditionings[0]!.mask).toEqual(Array.from(inputs.text.yMask).slice(0, CLIP_LEN + LLM_LEN));
    // With one row of text only, the same.
    using single = makeInputs(1);
    using again = await sample(new LinearVelocityModel(cpu, 'f32', PARAMS), { latents: single.latents, text: single.text, steps: 2, cfgScale: 0.5 });
    expect(again.shape).toEqual(SHAPE);
  });

  it('reports progress after every step with the latents of that step', async () => {
    using inputs = makeInputs(2);
    const model = new LinearVelocityModel(cpu, 'f32', PARAMS);
    const expectedAfter: Float64Array[] = [];
    referenceSample({
      latents: inputs.latentsData, batch: 1, steps: 5, timeShift: 13, cfgScale: 9, params: PARAMS, modelDType: 'f32',
      afterStep: (_, x) => expectedAfter.push(Float64Array.from(x)),
    });
    const seen: Array<Omit<SampleProgress, 'latents'>> = [];
    const sigmas = flowMatchSigmas(5, 13);
    using out = await sample(model, {
      latents: inputs.latents,
      text: inputs.text,
      steps: 5,
      onProgress: async ({ latents, ...rest }) => {
        seen.push(rest);
        expect(latents.dtype).toBe('f32');
        expectRelErr(await latents.toFloat32(), expectedAfter[rest.step - 1]!, 1e-6, `latents after step ${rest.step}`);
      },
    });
    expect(seen.map((p) => [p.step, p.total, p.timestep])).toEqual([1, 2, 3, 4, 5].map((s) => [s, 5, sigmas[s - 1]!]));
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.elapsedMs).toBeGreaterThanOrEqual(seen[i - 1]!.elapsedMs);
    expect(seen.every((p) => p.etaMs >= 0)).toBe(true);
    expect(seen[4]!.etaMs).toBe(0);
    // The base preset was used for cfg and shift.
    expect(model.calls[0]!.shape[0]).toBe(2);
    expect(out.disposed).toBe(false);
  });

  it("reports the model's blocks within each step", async () => {
    using inputs = makeInputs(2);
    const seen: number[][] = [];
    using out = await sample(new LinearVelocityModel(cpu, 'f32', PARAMS, 3), {
      latents: inputs.latents,
      text: inputs.text,
      steps: 2,
      onBlock: (p) => seen.push([p.step, p.total, p.block, p.blocks]),
    });
    expect(seen).toEqual([[0, 2, 1, 3], [0, 2, 2, 3], [0, 2, 3, 3], [1, 2, 1, 3], [1, 2, 2, 3], [1, 2, 3, 3]]);
  });

  it('generates the initial noise from a seed, the same as generateNoise', async () => {
    using inputs = makeInputs(2);
    using noise = generateNoise(SHAPE, 99n, cpu);
    using fromLatents = await sample(new LinearVelocityModel(cpu, 'f32', PARAMS), { latents: noise, text: inputs.text, steps: 2 });
    using fromSeed = await sample(new LinearVelocityModel(cpu, 'f32', PARAMS), { noise: { seed: 99n, shape: SHAPE }, text: inputs.text, steps: 2 });
    expect(Array.from(await fromSeed.toFloat32())).toEqual(Array.from(await fromLatents.toFloat32()));
  });

  describe('abort', () => {
    it('rejects at once, before any model call, when the signal has already fired', async () => {
      using inputs = makeInputs(2);
      const model = new LinearVelocityModel(cpu, 'f32', PARAMS);
      const before = cpu.memory().bytesInUse;
      await expectRejects(sample(model, { latents: inputs.latents, text: inputs.text, signal: AbortSignal.abort() }), 'ERR_ABORTED', /sampling aborted/);
      expect(model.calls).toHaveLength(0);
      expect(cpu.memory().bytesInUse).toBe(before);
    });

    it('stops between steps, frees everything, and the next job runs normally', async () => {
      using inputs = makeInputs(2);
      const model = new LinearVelocityModel(cpu, 'f32', PARAMS);
      const before = cpu.memory().bytesInUse;
      const controller = new AbortController();
      const run = sample(model, {
        latents: inputs.latents,
        text: inputs.text,
        steps: 6,
        signal: controller.signal,
        onProgress: (p) => {
          if (p.step === 2) controller.abort(new Error('user pressed stop'));
        },
      });
      await expectRejects(run, 'ERR_ABORTED', /sampling aborted/);
      expect(model.calls).toHaveLength(2);
      expect(model.openContexts).toBe(0);
      expect(cpu.memory().bytesInUse).toBe(before);

      using out = await sample(model, { latents: inputs.latents, text: inputs.text, steps: 3 });
      const expected = referenceSample({ latents: inputs.latentsData, batch: 1, steps: 3, timeShift: 13, cfgScale: 9, params: PARAMS, modelDType: 'f32' });
      expectRelErr(await out.toFloat32(), expected, 1e-6, 'the job after an abort');
    });

    for (const style of ['library', 'foreign'] as const) {
      it(`stops inside the model's forward between its blocks (${style} error from the model)`, async () => {
        using inputs = makeInputs(2);
        const model = new LinearVelocityModel(cpu, 'f32', PARAMS, 4);
        model.abortStyle = style;
        const controller = new AbortController();
        model.onBlock = (call, block) => {
          if (call === 2 && block === 1) controller.abort();
        };
        const before = cpu.memory().bytesInUse;
        let error: unknown;
        await sample(model, { latents: inputs.latents, text: inputs.text, steps: 10, signal: controller.signal }).catch((e: unknown) => (error = e));
        expect(isStepVideoError(error, 'ERR_ABORTED'), String(error)).toBe(true);
        if (style === 'foreign') expect(((error as Error).cause as Error).message).toBe('cancelled by the model');
        expect(model.calls).toHaveLength(3);
        expect(model.openContexts).toBe(0);
        expect(cpu.memory().bytesInUse).toBe(before);
      });
    }
  });

  describe('errors', () => {
    it('validates the latents, the text conditioning and the settings before any work', async () => {
      using inputs = makeInputs(2);
      using oneRow = makeInputs(1);
      const model = new LinearVelocityModel(cpu, 'f32', PARAMS);
      const base = { latents: inputs.latents, text: inputs.text };
      using flat = inputs.latents.reshape(3, 4, 30);
      using y2d = inputs.text.y.reshape(2, LLM_LEN * 8);
      using clip3 = Tensor.zeros([3, CLIP_LEN, 4]);
      const before = cpu.memory().bytesInUse;
      const badMask = Array.from(inputs.text.yMask);
      badMask[1] = 0; // a CLIP position masked
      const holeMask = Array.from(inputs.text.yMask);
      holeMask[CLIP_LEN + LLM_LEN + CLIP_LEN] = 0; // a zero before a one in row 1
      const cases: Array<[Partial<SampleOptions>, ErrorCode, RegExp]> = [
        [{ latents: undefined }, 'ERR_ARGUMENT', /needs the initial latents or a noise seed, not both: .*got neither/],
        [{ noise: { seed: 1, shape: SHAPE } }, 'ERR_ARGUMENT', /got both/],
        [{ latents: flat }, 'ERR_SHAPE', /latents must be \[B, F, C, H, W\]: got \[3, 4, 30\]/],
        [{ text: { ...inputs.text, y: y2d } }, 'ERR_SHAPE', /text.y must be \[rows, Ly, C0\]/],
        [{ text: { ...inputs.text, clip: clip3 } }, 'ERR_SHAPE', /same rows: expected 2, got 3/],
        [{ text: oneRow.text }, 'ERR_SHAPE', /do not fit 1 video\(s\): expected 2 rows under guidance: 1 prompt\(s\), then 1 negative\(s\), got 1 rows/],
        [{ text: { ...inputs.text, yMask: badMask.slice(1) } }, 'ERR_SHAPE', /yMask must be \[rows, Lc \+ Ly\]: expected 2 × 9 values, got 17 values/],
        [{ text: { ...inputs.text, yMask: badMask } }, 'ERR_ARGUMENT', /yMask row 0 must be 3 CLIP ones, then ones, then zeros: got 0 at position 1/],
        [{ text: { ...inputs.text, yMask: holeMask } }, 'ERR_ARGUMENT', /yMask row 1 .*got 1 at position 4/],
        [{ steps: 0 }, 'ERR_ARGUMENT', /steps must be an integer/],
        [{ steps: 2.5 }, 'ERR_ARGUMENT', /steps must be an integer/],
        [{ cfgScale: Number.NaN }, 'ERR_ARGUMENT', /cfgScale must be a finite number/],
        [{ timeShift: 0 }, 'ERR_ARGUMENT', /timeShift must be a positive number/],
        [{ preset: 'slow' as never }, 'ERR_ARGUMENT', /unknown sampler preset/],
      ];
      for (const [override, code, pattern] of cases) {
        await expectRejects(sample(model, { ...base, ...override } as SampleOptions), code, pattern);
      }
      expect(model.calls).toHaveLength(0);
      expect(cpu.memory().bytesInUse).toBe(before);
    });

    it('reports a model whose output does not match its input, and frees everything', async () => {
      using inputs = makeInputs(2);
      const model = new LinearVelocityModel(cpu, 'f32', PARAMS);
      model.dropRow = true;
      const before = cpu.memory().bytesInUse;
      await expectRejects(sample(model, { latents: inputs.latents, text: inputs.text, steps: 2 }), 'ERR_SHAPE', /velocity that does not match its input: expected f32 \[2, 3, 4, 5, 6\], got f32 \[1, 3, 4, 5, 6\]/);
      expect(model.openContexts).toBe(0);
      expect(cpu.memory().bytesInUse).toBe(before);
    });
  });
});
