// `stepvideo run sample` and sample() over the tiny DiT against the official sampler (cases/
// sampler_case.safetensors: 3 Euler steps, cfg 9, shift 13, text inputs of dit_case, float64
// reference): float32 on the CPU within 10x its measured error (F32_GOLDEN); with the official bf16
// quantisation points, near the official bf16 final latents (r, on which the bf16 CUDA bounds rest:
// docs/TOLERANCES.md). The bf16 CUDA run is in test/gpu/sampler.test.ts.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runCommand } from '../../lib/cli/commands/run.js';
import { type HostTensor, readSafetensors } from '../../lib/io/safetensors.js';
import { StepVideoDiT } from '../../lib/models/dit/index.js';
import { sample } from '../../lib/sampler/index.js';
import { Device } from '../../lib/device.js';
import { Tensor } from '../../lib/tensor.js';
import { expectRelErr, relErr } from '../helpers/compare.js';
import { casePath, requireGolden, tinyModelDir } from '../helpers/golden.js';
import { officialNumericsSample } from '../helpers/sampler-twin.js';
import { F32_GOLDEN, MEASURED, isAsRecorded } from '../helpers/tolerances.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-sampler-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.runIf(requireGolden())('sampler_case: 3 Euler steps, cfg 9, shift 13 (float32, CPU)', () => {
  // Read in beforeAll, not while collecting: without the goldens the suite is skipped, not an ENOENT.
  let samplerCase: Map<string, HostTensor>;
  let ditCase: Map<string, HostTensor>;
  let expected: Float32Array;
  beforeAll(async () => {
    samplerCase = await readSafetensors(casePath('sampler_case.safetensors'));
    ditCase = await readSafetensors(casePath('dit_case.safetensors'));
    expected = samplerCase.get('latents_final')!.data as Float32Array;
  });

  it('stepvideo run sample matches latents_final', async () => {
    const output = path.join(work, 'latents.safetensors');
    const lines: string[] = [];
    const code = await runCommand(
      ['sample', '--model', tinyModelDir, '--inputs', casePath('sampler_case.safetensors'), '--inputs', casePath('dit_case.safetensors'),
        '--output', output, '--device', 'cpu', '--dtype', 'float32', '--steps', '3', '--cfg-scale', '9', '--time-shift', '13'],
      { stdout: (t) => lines.push(t), stderr: (t) => lines.push(t), signal: new AbortController().signal, interactive: false },
    );
    expect(code).toBe(0);
    const written = (await readSafetensors(output)).get('latents_final')!;
    expect(written.dtype).toBe('f32');
    expect(written.shape).toEqual([1, 3, 64, 4, 6]);
    const rel = expectRelErr(written.data as Float32Array, expected, F32_GOLDEN.sampler, 'latents_final (CLI)');
    console.log(`sampler_case float32 CPU via stepvideo run sample: rel err ${rel.toExponential(3)}`);
    expect(lines.filter((l) => /sample: step \d\/3/.test(l))).toHaveLength(3);
  });

  it('stepvideo run sample reports bad options and missing inputs by name', async () => {
    const context = { stdout: () => {}, stderr: () => {}, signal: new AbortController().signal, interactive: false };
    const common = ['--model', tinyModelDir, '--output', path.join(work, 'never.safetensors'), '--device', 'cpu'];
    const cases: Array<[string[], string, RegExp]> = [
      [['--inputs', casePath('sampler_case.safetensors'), '--inputs', casePath('dit_case.safetensors'), '--preset', 'fast'], 'ERR_USAGE', /unknown --preset: expected base \| turbo, got fast/],
      [['--inputs', casePath('sampler_case.safetensors')], 'ERR_ARGUMENT', /missing input tensor 'encoder_hidden_states'/],
      [['--inputs', casePath('sampler_case.safetensors'), '--inputs', casePath('dit_case.safetensors'), '--steps', '0'], 'ERR_ARGUMENT', /steps must be an integer/],
    ];
    for (const [args, code, pattern] of cases) {
      const error = await runCommand(['sample', ...common, ...args], context).then(
        () => undefined,
        (e: unknown) => e as { code: string; message: string },
      );
      expect(error?.code, args.join(' ')).toBe(code);
      expect(error?.message).toMatch(pattern);
    }
  });

  it('with the official bf16 quantisation points, lands near the official bf16 final latents (r as recorded)', async () => {
    const got = await officialNumericsSample(samplerCase, ditCase);
    const toOfficial = relErr(got, samplerCase.get('latents_final_bf16_official')!.data as Float32Array);
    const toReference = relErr(got, expected);
    console.log(`sampler_case, CPU f32 with bf16-official numerics: rel to the official bf16 final latents ${toOfficial.toExponential(4)}, to the reference ${toReference.toExponential(3)}`);
    // The quantisation points make most of the official run's error: far nearer to it than to the reference.
    expect(toOfficial).toBeLessThanOrEqual(0.5 * toReference);
    expect(isAsRecorded(toOfficial, MEASURED.samplerOfficialNoise), `r = ${toOfficial.toExponential(4)}: update docs/TOLERANCES.md and MEASURED`).toBe(true);
  });

  it('sample() over StepVideoDiT matches latents_final, frees its memory, and aborts between DiT blocks', async () => {
    using dit = await StepVideoDiT.load(path.join(tinyModelDir, 'transformer'), { device: 'cpu', dtype: 'f32' });
    const host = (name: string, from: Map<string, { shape: number[]; data: unknown }>) => {
      const t = from.get(name)!;
      return Tensor.from(t.data as Float32Array, t.shape, { device: 'cpu' });
    };
    using latents = host('latents_init', samplerCase);
    using y = host('encoder_hidden_states', ditCase);
    using clip = host('encoder_hidden_states_2', ditCase);
    const yMask = Array.from(ditCase.get('encoder_attention_mask')!.data as Float32Array);
    const before = Device.cpu.memory().bytesInUse;
    using out = await sample(dit, { latents, text: { y, yMask, clip }, steps: 3, cfgScale: 9, timeShift: 13 });
    const first = (await out.toFloat32()).slice();
    const rel = expectRelErr(first, expected, F32_GOLDEN.sampler, 'latents_final (API)');
    console.log(`sampler_case float32 CPU via sample(): rel err ${rel.toExponential(3)}`);
    out.dispose();
    expect(Device.cpu.memory().bytesInUse).toBe(before);

    // Abort inside the DiT's forward, between its blocks: rejected soon, memory back, next run exact.
    const controller = new AbortController();
    const blocksSeen: number[][] = [];
    let error: unknown;
    await sample(dit, {
      latents, text: { y, yMask, clip }, steps: 3, cfgScale: 9, timeShift: 13, signal: controller.signal,
      onBlock: ({ step, block }) => {
        blocksSeen.push([step, block]);
        if (step === 1 && block === 1) controller.abort();
      },
    }).catch((e: unknown) => (error = e));
    expect((error as { code?: string }).code, String(error)).toBe('ERR_ABORTED');
    expect(blocksSeen.at(-1)).toEqual([1, 1]); // the second block of step 2 never finished
    expect(Device.cpu.memory().bytesInUse).toBe(before);
    using again = await sample(dit, { latents, text: { y, yMask, clip }, steps: 3, cfgScale: 9, timeShift: 13 });
    expect(Array.from(await again.toFloat32())).toEqual(Array.from(first));
  });
});
