// The sampler on CUDA: noise bit-identical to the CPU, the fused guidance + Euler kernel at the
// official bf16 rounding points (bit for bit against a TypeScript emulation), the loop against
// its CPU twin and the float64 loop, abort with device memory back to its baseline, and the
// sampler_case golden in bf16: within the golden contract (1.25 x the official bf16 error), within
// rho = 1.25 r of the CPU twin with the official numerics and rho + r of the official bf16 final
// latents, r the measured twin-to-official distance (docs/TOLERANCES.md, "Sampler golden, bf16").
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';

import { runCommand } from '../../lib/cli/commands/run.js';
import { getDevice } from '../../lib/device.js';
import { f32ArrayToBf16, f32ToF16Bits, roundBf16 } from '../../lib/dtype.js';
import { isStepVideoError } from '../../lib/errors.js';
import { readSafetensors } from '../../lib/io/safetensors.js';
import { StepVideoDiT } from '../../lib/models/dit/index.js';
import { randomNormal } from '../../lib/kernels/random.js';
import { cfgEulerStep } from '../../lib/kernels/sampler.js';
import * as ops from '../../lib/ops.js';
import { sample } from '../../lib/sampler/index.js';
import { Tensor } from '../../lib/tensor.js';
import { expectRelErr, relErr } from '../helpers/compare.js';
import { casePath, requireGolden, tinyModelDir } from '../helpers/golden.js';
import { describeGpu } from '../helpers/gpu.js';
import { LinearVelocityModel, referenceSample } from '../helpers/linear-velocity-model.js';
import { Rng, randn } from '../helpers/random.js';
import { officialNumericsSample } from '../helpers/sampler-twin.js';
import { bf16Allowance, bf16VsOfficial } from '../helpers/tolerances.js';

const bits = (a: Float32Array): number[] => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

async function noiseOn(device: 'cpu' | 'cuda', shape: number[], seed: bigint, offset = 0, dtype: 'f32' | 'bf16' | 'f16' = 'f32') {
  using t = randomNormal(shape, { seed, offset, dtype, device });
  return t.toArray();
}

describeGpu('sampler on CUDA', () => {
  it('noise: CUDA f32 equals the CPU bit for bit (odd shapes, 64-bit seeds and offsets, the whole real latents)', async () => {
    const cases: Array<[number[], bigint, number]> = [
      [[1], 0n, 0],
      [[7, 13], 1n, 1],
      [[3, 37, 5], 0x1234_5678_9abcn, 3],
      [[2, 1001], (1n << 63n) + 12345n, 2 ** 40 + 1],
      [[4099], (1n << 64n) - 1n, 2 ** 52],
      [[1, 36, 64, 34, 62], 20250217n, 0],
    ];
    for (const [shape, seed, offset] of cases) {
      const gpu = (await noiseOn('cuda', shape, seed, offset)) as Float32Array;
      const cpu = (await noiseOn('cpu', shape, seed, offset)) as Float32Array;
      expect(gpu.length).toBe(cpu.length);
      const cpuBits = bits(cpu);
      const differing = bits(gpu).filter((b, i) => b !== cpuBits[i]).length;
      expect(differing, `shape [${shape}] seed ${seed} offset ${offset}: ${differing} values differ`).toBe(0);
    }
  });

  it('noise: bf16 and f16 on CUDA are the CPU f32 values rounded once', async () => {
    const cpu = (await noiseOn('cpu', [3, 1021], 77n, 5)) as Float32Array;
    const bf16 = (await noiseOn('cuda', [3, 1021], 77n, 5, 'bf16')) as Uint16Array;
    const f16 = (await noiseOn('cuda', [3, 1021], 77n, 5, 'f16')) as Uint16Array;
    expect(Array.from(bf16)).toEqual(Array.from(f32ArrayToBf16(cpu)));
    expect(Array.from(f16)).toEqual(Array.from(cpu, f32ToF16Bits));
  });

  it('cfgEulerStep in bf16 rounds where the official code rounds, bit for bit, and that rounding shows', async () => {
    const rng = new Rng(11);
    const n = 100_003;
    const g = 9;
    const dt = Math.fround(0.0370370373);
    using x = Tensor.from(randn(rng, n), [n], { device: 'cuda' });
    using velocity = Tensor.from(randn(rng, 2 * n, 1.5), [2, n], { device: 'cuda', dtype: 'bf16' });
    using next = Tensor.empty([2, n], 'bf16', 'cuda');
    const x0 = await x.toFloat32();
    const v = await velocity.toFloat32();
    cfgEulerStep(x, velocity, { guidanceScale: g, dt, nextInput: next });
    const got = await x.toFloat32();
    const f = Math.fround;
    const expected = new Float32Array(n);
    let visible = 0;
    for (let i = 0; i < n; i++) {
      const c = v[i]!;
      const u = v[n + i]!;
      // noise_pred_uncond + g * (noise_pred_text - noise_pred_uncond), each op a bf16 tensor op, then .float() * dt.
      const combined = roundBf16(f(u + roundBf16(f(g * roundBf16(f(c - u))))));
      expected[i] = f(x0[i]! + f(combined * dt));
      if (expected[i] !== f(x0[i]! + f(f(u + f(g * f(c - u))) * dt))) visible++;
    }
    expect(bits(got)).toEqual(bits(expected));
    const nextBits = Array.from((await next.toArray()) as Uint16Array);
    const rounded = Array.from(f32ArrayToBf16(expected));
    expect(nextBits).toEqual([...rounded, ...rounded]);
    // The bf16 combination changes a sizeable share of the f32 results: the quantisation point is real.
    expect(visible / n).toBeGreaterThan(0.1);
  });

  it('cfgEulerStep in f32 and without guidance on CUDA: the f32 roundings exactly', async () => {
    const rng = new Rng(12);
    const n = 4099;
    const dt = Math.fround(0.6);
    for (const guidanceScale of [5, undefined]) {
      const copies = guidanceScale === undefined ? 1 : 2;
      using x = Tensor.from(randn(rng, n), [n], { device: 'cuda' });
      using velocity = Tensor.from(randn(rng, copies * n), [copies, n], { device: 'cuda' });
      const x0 = await x.toFloat32();
      const v = await velocity.toFloat32();
      cfgEulerStep(x, velocity, { dt, ...(guidanceScale !== undefined ? { guidanceScale } : {}) });
      const f = Math.fround;
      const expected = Float32Array.from(x0, (xi, i) => {
        const c = v[i]!;
        const combined = guidanceScale === undefined ? c : f(v[n + i]! + f(guidanceScale * f(c - v[n + i]!)));
        return f(xi + f(combined * dt));
      });
      expect(bits(await x.toFloat32())).toEqual(bits(expected));
    }
  });

  const PARAMS = { a: -0.8, b: 0.5, rowOffsets: [0.3, -0.2] };
  const SHAPE = [1, 3, 8, 5, 7];

  async function loopOn(device: 'cpu' | 'cuda', dtype: 'f32' | 'bf16', latents: Float32Array): Promise<Float32Array> {
    const on = getDevice(device);
    const rng = new Rng(3);
    using x = Tensor.from(latents, SHAPE, { device });
    using y = Tensor.from(randn(rng, 2 * 6 * 8), [2, 6, 8], { device });
    using clip = Tensor.from(randn(rng, 2 * 3 * 4), [2, 3, 4], { device });
    const yMask = [1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0];
    using out = await sample(new LinearVelocityModel(on, dtype, PARAMS), { latents: x, text: { y, yMask, clip }, steps: 6, cfgScale: 9, timeShift: 13 });
    expect(out.device).toBe(on);
    return (await out.toFloat32()).slice();
  }

  it('sample() with the linear stand-in: f32 CUDA equals its CPU twin; bf16 follows the emulated official bf16 loop', async () => {
    const latents = randn(new Rng(5), SHAPE.reduce((a, b) => a * b, 1));
    const cpu = await loopOn('cpu', 'f32', latents);
    const f32 = await loopOn('cuda', 'f32', latents);
    expectRelErr(f32, cpu, 1e-6, 'CUDA f32 loop vs CPU twin');
    const bf16 = await loopOn('cuda', 'bf16', latents);
    const reference = referenceSample({ latents, batch: 1, steps: 6, timeShift: 13, cfgScale: 9, params: PARAMS, modelDType: 'bf16' });
    // Near-exact: only a rare one-ulp difference in the model's f32 a·x + beta (fused or not) can
    // flip a bf16 rounding.
    const rel = expectRelErr(bf16, reference, 1e-3, 'CUDA bf16 loop vs the emulated bf16 loop');
    const exact = referenceSample({ latents, batch: 1, steps: 6, timeShift: 13, cfgScale: 9, params: PARAMS, modelDType: 'f32' });
    console.log(`linear stand-in loop, CUDA bf16: rel ${rel.toExponential(2)} vs emulation, ${relErr(bf16, exact).toExponential(2)} vs exact arithmetic`);
  });

  it('abort on CUDA: rejects with ERR_ABORTED, device memory returns to its baseline, the next job runs', async () => {
    const cuda = getDevice('cuda');
    const rng = new Rng(9);
    using x = Tensor.from(randn(rng, 2 * 3 * 8 * 5 * 7), [2, 3, 8, 5, 7], { device: 'cuda' });
    using y = Tensor.from(randn(rng, 4 * 6 * 8), [4, 6, 8], { device: 'cuda' });
    using clip = Tensor.from(randn(rng, 4 * 3 * 4), [4, 3, 4], { device: 'cuda' });
    const yMask = Array.from({ length: 4 * 9 }, (_, i) => (i % 9 < 5 + (i >= 18 ? 1 : 0) ? 1 : 0));
    const model = new LinearVelocityModel(cuda, 'bf16', { a: 0.5, b: 1, rowOffsets: [0, 1, 2, 3] }, 4);
    const controller = new AbortController();
    model.onBlock = (call, block) => {
      if (call === 1 && block === 2) controller.abort();
    };
    await cuda.synchronize();
    const before = cuda.memory().bytesInUse;
    let error: unknown;
    await sample(model, { latents: x, text: { y, yMask, clip }, steps: 8, signal: controller.signal }).catch((e: unknown) => (error = e));
    expect(isStepVideoError(error, 'ERR_ABORTED'), String(error)).toBe(true);
    expect(model.calls).toHaveLength(2);
    expect(cuda.memory().bytesInUse).toBe(before);
    model.onBlock = undefined;
    using out = await sample(model, { latents: x, text: { y, yMask, clip }, steps: 2 });
    expect(out.shape).toEqual([2, 3, 8, 5, 7]);
    out.dispose();
    expect(cuda.memory().bytesInUse).toBe(before);
  });

  it.runIf(requireGolden())('sampler_case in bf16 on CUDA (stepvideo run sample): near the CPU twin and the official bf16 final latents', async () => {
    const manifest = JSON.parse(readFileSync(path.join(tinyModelDir, 'manifest.json'), 'utf8')) as { cases: { sampler: { official_bf16_rel_err: number } } };
    const official = manifest.cases.sampler.official_bf16_rel_err;
    const samplerCase = await readSafetensors(casePath('sampler_case.safetensors'));
    const ditCase = await readSafetensors(casePath('dit_case.safetensors'));
    const reference = samplerCase.get('latents_final')!.data as Float32Array;
    const officialBf16 = samplerCase.get('latents_final_bf16_official')!.data as Float32Array;
    // The CPU twin: the same 3 steps over the DiT in f32 with the official quantisation points.
    const twin = await officialNumericsSample(samplerCase, ditCase);
    const officialNoise = relErr(twin, officialBf16); // r
    const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-sampler-gpu-'));
    const output = path.join(work, 'latents.safetensors');
    try {
      const code = await runCommand(
        ['sample', '--model', tinyModelDir, '--inputs', casePath('sampler_case.safetensors'), '--inputs', casePath('dit_case.safetensors'),
          '--output', output, '--device', 'cuda', '--dtype', 'bfloat16', '--steps', '3', '--cfg-scale', '9', '--time-shift', '13'],
        { stdout: () => {}, stderr: () => {}, signal: new AbortController().signal, interactive: false },
      );
      expect(code).toBe(0);
      const got = (await readSafetensors(output)).get('latents_final')!.data as Float32Array;
      const rel = expectRelErr(got, reference, 1.25 * official, 'sampler_case bf16 vs float64 (golden contract)');
      const toTwin = expectRelErr(got, twin, bf16Allowance(officialNoise), 'sampler_case bf16 vs the CPU twin');
      const toOfficial = expectRelErr(got, officialBf16, bf16VsOfficial(officialNoise), 'sampler_case bf16 vs the official bf16 final latents');
      console.log(`sampler_case bf16 CUDA: rel ${rel.toExponential(3)} to float64 (official bf16 ${official.toExponential(3)}), ${toTwin.toExponential(3)} to the CPU twin (bound ${bf16Allowance(officialNoise).toExponential(3)}), ${toOfficial.toExponential(3)} to the official bf16 output (bound ${bf16VsOfficial(officialNoise).toExponential(3)}; r ${officialNoise.toExponential(3)})`);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });

  it.runIf(requireGolden())('the bf16 DiT on CUDA: abort between its blocks frees device memory, the next run is normal', async () => {
    const cuda = getDevice('cuda');
    const samplerCase = await readSafetensors(casePath('sampler_case.safetensors'));
    const ditCase = await readSafetensors(casePath('dit_case.safetensors'));
    using dit = await StepVideoDiT.load(path.join(tinyModelDir, 'transformer'), { device: 'cuda', dtype: 'bf16' });
    const upload = (t: { shape: number[]; data: unknown }, dtype: 'f32' | 'bf16') => Tensor.from(t.data as Float32Array, t.shape, { device: 'cuda', dtype });
    using latents = upload(samplerCase.get('latents_init')!, 'f32');
    using y = upload(ditCase.get('encoder_hidden_states')!, 'bf16');
    using clip = upload(ditCase.get('encoder_hidden_states_2')!, 'bf16');
    const yMask = Array.from(ditCase.get('encoder_attention_mask')!.data as Float32Array);
    const run = { latents, text: { y, yMask, clip }, steps: 3, cfgScale: 9, timeShift: 13 };
    const reference = samplerCase.get('latents_final')!.data as Float32Array;
    const manifest = JSON.parse(readFileSync(path.join(tinyModelDir, 'manifest.json'), 'utf8')) as { cases: { sampler: { official_bf16_rel_err: number } } };
    using first = await sample(dit, run);
    expectRelErr(await first.toFloat32(), reference, 1.25 * manifest.cases.sampler.official_bf16_rel_err, 'sampler_case bf16 via sample()');
    first.dispose();
    // Measured after one full run, so anything the model caches on first use is already there.
    await cuda.synchronize();
    const before = cuda.memory().bytesInUse;

    const controller = new AbortController();
    let error: unknown;
    await sample(dit, {
      ...run,
      signal: controller.signal,
      onBlock: ({ step, block }) => {
        if (step === 1 && block === 1) controller.abort();
      },
    }).catch((e: unknown) => (error = e));
    expect(isStepVideoError(error, 'ERR_ABORTED'), String(error)).toBe(true);
    expect(cuda.memory().bytesInUse).toBe(before);
    using again = await sample(dit, run);
    expectRelErr(await again.toFloat32(), reference, 1.25 * manifest.cases.sampler.official_bf16_rel_err, 'sampler_case bf16 after an abort');
  });

  it('the fused step casts and duplicates like cast + concat would', async () => {
    // The first model input is built with ops (cast, concat); later ones by the kernel: same values.
    using x = randomNormal([5, 7], { seed: 3, device: 'cuda' });
    using zero = Tensor.zeros([2, 5, 7], 'bf16', 'cuda');
    using next = Tensor.empty([2, 5, 7], 'bf16', 'cuda');
    using copy = x.clone();
    cfgEulerStep(copy, zero, { guidanceScale: 9, dt: 0.5, nextInput: next });
    using half = ops.cast(x, 'bf16');
    using both = ops.concat([half, half], 0);
    expect(Array.from((await next.toArray()) as Uint16Array)).toEqual(Array.from((await both.toArray()) as Uint16Array));
  });
});
