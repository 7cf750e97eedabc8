// The `stepvideo run` contract: inputs by name (extra tensors ignored, the earlier file wins),
// outputs by name, and every kind of bad input ends with exit code 1 and one line naming what and
// where — never a crash, never exit 0, stack traces only with --verbose.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { type HostTensor, readSafetensors, writeSafetensors } from '../../lib/io/safetensors.js';
import { relErr } from '../helpers/compare.js';
import { runCli } from '../helpers/cli.js';
import { casePath, requireGolden, tinyModelDir } from '../helpers/golden.js';
import { ditGoldenLimit } from '../helpers/tolerances.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-cli-run-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function writeCase(name: string, tensors: Map<string, HostTensor>): Promise<string> {
  const file = path.join(work, name);
  await writeSafetensors(file, Object.fromEntries(tensors));
  return file;
}

function expectOneLineError(result: { code: number | null; stderr: string }, code: string, ...mentions: string[]) {
  expect(result.code, result.stderr).toBe(1);
  // Progress lines may come first ("dit: loading ..."); the error is one line, the last one.
  const lines = result.stderr.trim().split('\n');
  const errors = lines.filter((line) => line.startsWith('stepvideo: error'));
  expect(errors, result.stderr).toHaveLength(1);
  expect(lines.at(-1)).toBe(errors[0]);
  expect(errors[0]).toMatch(new RegExp(`^stepvideo: error \\[${code}\\]: `));
  for (const mention of mentions) expect(errors[0]).toContain(mention);
  expect(result.stderr).not.toMatch(/\n\s+at /);
}

describe.runIf(requireGolden())('stepvideo run', () => {
  const dit = ['run', 'dit', '--model', tinyModelDir, '--device', 'cpu'];

  it('reads inputs by name: extra tensors are ignored and the earlier --inputs file wins', async () => {
    const golden = await readSafetensors(casePath('dit_case.safetensors'));
    const garbage = new Map(golden);
    const hidden = golden.get('hidden_states')!;
    garbage.set('hidden_states', { ...hidden, data: new Float32Array((hidden.data as Float32Array).length).fill(0.5) });
    const garbageFile = await writeCase('garbage.safetensors', garbage);
    const output = path.join(work, 'out.safetensors');
    const result = await runCli([...dit, '--inputs', casePath('dit_case.safetensors'), '--inputs', garbageFile, '--output', output]);
    expect(result.code, result.stderr).toBe(0);
    const got = (await readSafetensors(output)).get('output')!;
    expect(relErr(got.data as Float32Array, golden.get('output')!.data as Float32Array)).toBeLessThanOrEqual(ditGoldenLimit('output'));
  });

  it('takes the transformer/ folder itself as --model', async () => {
    const output = path.join(work, 'out-transformer.safetensors');
    const result = await runCli(['run', 'dit', '--model', path.join(tinyModelDir, 'transformer'), '--device', 'cpu', '--inputs', casePath('dit_case.safetensors'), '--output', output]);
    expect(result.code, result.stderr).toBe(0);
    const golden = await readSafetensors(casePath('dit_case.safetensors'));
    expect(relErr((await readSafetensors(output)).get('output')!.data as Float32Array, golden.get('output')!.data as Float32Array)).toBeLessThanOrEqual(ditGoldenLimit('output'));
  });

  it('--sequence-parallel 2 --cfg-parallel gives the one-rank output bit for bit, and a degree that does not divide the heads is one line', async () => {
    const plain = path.join(work, 'out-plain.safetensors');
    const parallel = path.join(work, 'out-parallel.safetensors');
    const base = [...dit, '--inputs', casePath('dit_case.safetensors')];
    const one = await runCli([...base, '--output', plain]);
    expect(one.code, one.stderr).toBe(0);
    const split = await runCli([...base, '--output', parallel, '--sequence-parallel', '2', '--cfg-parallel']);
    expect(split.code, split.stderr).toBe(0);
    expect(split.stderr).toContain('dit: sequence parallel 2 x CFG parallel: 4 ranks on cpu');
    const [a, b] = [plain, parallel].map((file) => readFileSync(file));
    expect(Buffer.compare(a!, b!)).toBe(0);
    expectOneLineError(await runCli([...base, '--output', parallel, '--sequence-parallel', '3']), 'ERR_ARGUMENT', 'dividing the 2 attention heads');
  });

  it('turns every kind of bad input into one line and exit code 1', async () => {
    const golden = await readSafetensors(casePath('dit_case.safetensors'));
    const withNaN = new Map(golden);
    const hidden = golden.get('hidden_states')!;
    const poisoned = Float32Array.from(hidden.data as Float32Array);
    poisoned[17] = Number.NaN;
    withNaN.set('hidden_states', { ...hidden, data: poisoned });
    const nanFile = await writeCase('nan.safetensors', withNaN);

    const wrongShape = new Map(golden);
    wrongShape.set('hidden_states', { dtype: 'f32', shape: [2, 3, 32, 4, 6], data: new Float32Array(2 * 3 * 32 * 4 * 6).fill(0.1) });
    const shapeFile = await writeCase('shape.safetensors', wrongShape);

    const missing = new Map(golden);
    missing.delete('encoder_attention_mask');
    const missingFile = await writeCase('missing.safetensors', missing);

    const bytes = readFileSync(casePath('dit_case.safetensors'));
    const truncated = path.join(work, 'truncated.safetensors');
    writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length / 3)));
    const notSafetensors = path.join(work, 'text.safetensors');
    writeFileSync(notSafetensors, 'this is not a safetensors file');
    const emptyModel = path.join(work, 'empty-model');
    mkdirSync(emptyModel, { recursive: true });
    const output = path.join(work, 'never.safetensors');
    const good = casePath('dit_case.safetensors');

    const cases: Array<[string[], string, string[]]> = [
      [['run', 'frobnicate', '--model', tinyModelDir], 'ERR_USAGE', ["'frobnicate'", 'dit']],
      [[...dit, '--inputs', good, '--output', output, '--steps', '3'], 'ERR_USAGE', ['--steps']],
      [['run', 'dit', '--inputs', good, '--output', output], 'ERR_USAGE', ['--model']],
      [[...dit, '--inputs', good], 'ERR_USAGE', ['--output']],
      [[...dit, '--inputs', good, '--output', output, '--dtype', 'bfloat16'], 'ERR_UNSUPPORTED', ['float32']],
      [[...dit, '--inputs', nanFile, '--output', output], 'ERR_NOT_FINITE', ['hidden_states', 'nan.safetensors']],
      [[...dit, '--inputs', shapeFile, '--output', output], 'ERR_SHAPE', ['hidden_states']],
      [[...dit, '--inputs', missingFile, '--output', output], 'ERR_ARGUMENT', ['encoder_attention_mask']],
      [[...dit, '--inputs', truncated, '--output', output], 'ERR_WEIGHTS_FORMAT', ['truncated.safetensors']],
      [[...dit, '--inputs', notSafetensors, '--output', output], 'ERR_WEIGHTS_FORMAT', ['text.safetensors']],
      [[...dit, '--inputs', path.join(work, 'absent.safetensors'), '--output', output], 'ERR_IO', ['absent.safetensors']],
      [['run', 'dit', '--model', emptyModel, '--device', 'cpu', '--inputs', good, '--output', output], 'ERR_WEIGHTS_MISSING', ['empty-model', 'the model root or transformer/']],
      // Another part of the layout (it has a config.json too) is never taken for the DiT.
      [['run', 'dit', '--model', path.join(tinyModelDir, 'step_llm'), '--device', 'cpu', '--inputs', good, '--output', output], 'ERR_WEIGHTS_MISSING', ["the layout's step_llm/ folder, not transformer/", path.join(tinyModelDir, 'step_llm', 'transformer', 'config.json')]],
      [[...dit, '--inputs', good, '--output', path.join(work, 'no-such-dir', 'out.safetensors')], 'ERR_IO', ['out.safetensors']],
    ];
    for (const [args, code, mentions] of cases) {
      const result = await runCli(args);
      expectOneLineError(result, code, ...mentions);
    }
    expect(existsSync(output)).toBe(false);
  });

  it('prints the stack with --verbose', async () => {
    const result = await runCli([...dit, '--inputs', path.join(work, 'absent.safetensors'), '--output', path.join(work, 'x.safetensors'), '--verbose']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^stepvideo: error \[ERR_IO\]/);
    expect(result.stderr).toMatch(/\n\s+at /);
  });
});
