// Step-LLM (Step1Model) against the official reference outputs on the tiny golden model, float32
// on the CPU backend; the `stepvideo run step-llm` component end to end; config/weights mismatch
// errors; abort and memory hygiene.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Device } from '../../lib/device.js';
import { type HostTensor, readSafetensors, writeSafetensors } from '../../lib/io/safetensors.js';
import { StepLlm } from '../../lib/models/step-llm/index.js';
import { runCli } from '../helpers/cli.js';
import { expectRelErr, relErr } from '../helpers/compare.js';
import { casePath, requireGolden, tinyModelDir } from '../helpers/golden.js';
import { F32_GOLDEN } from '../helpers/tolerances.js';

const llmDir = path.join(tinyModelDir, 'step_llm');
const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-llm-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A copy of the golden step_llm/ folder with config.json edited. */
function editedModel(name: string, edit: (config: Record<string, unknown>) => void): string {
  const dir = path.join(work, name);
  mkdirSync(dir, { recursive: true });
  const config = JSON.parse(readFileSync(path.join(llmDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  edit(config);
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  copyFileSync(path.join(llmDir, 'model.safetensors'), path.join(dir, 'model.safetensors'));
  return dir;
}

describe.runIf(requireGolden())('Step-LLM on the CPU backend (golden step_llm_case)', () => {
  // Read in beforeAll, not while collecting: without the goldens the suite is skipped, not an ENOENT.
  let ids: HostTensor;
  let expected: Float32Array;
  let shape: [number, number];
  beforeAll(async () => {
    const golden = await readSafetensors(casePath('step_llm_case.safetensors'));
    ids = golden.get('input_ids')!;
    expected = golden.get('y')!.data as Float32Array;
    shape = ids.shape as [number, number];
  });

  it('reads the config and derives the layout from it', async () => {
    using model = await StepLlm.load(llmDir, { device: 'cpu' });
    expect(model.config).toMatchObject({ hiddenSize: 256, numHeads: 2, numGroups: 1, numLayers: 2, headDim: 128, ffnHiddenSize: 300, ffnDim: 512, eps: 1e-5, vocabSize: 2416, fp32Residual: false });
    expect(model.dtype).toBe('f32');
  });

  it('matches the float64 reference within 10x its measured f32 error (float32)', async () => {
    const baseline = Device.cpu.memory().bytesInUse;
    {
      using model = await StepLlm.load(llmDir, { device: 'cpu' });
      using y = await model.forward(ids.data as Int32Array, shape);
      expect(y.shape).toEqual([2, 32, 256]);
      const rel = expectRelErr(await y.toFloat32(), expected, F32_GOLDEN.stepLlm, 'step_llm_case y');
      console.log(`step_llm_case float32 CPU rel err ${rel.toExponential(3)}`);
      // int64 ids (what torch tokenizers return) give the same result.
      using y64 = await model.forward(BigInt64Array.from(ids.data as Int32Array, (v) => BigInt(v)), shape);
      expect(Array.from(await y64.toFloat32())).toEqual(Array.from(await y.toFloat32()));
    }
    expect(Device.cpu.memory().bytesInUse).toBe(baseline);
  });

  it('loads the released layout: weights sharded over several files behind model.safetensors.index.json', async () => {
    const dir = path.join(work, 'sharded');
    mkdirSync(dir, { recursive: true });
    copyFileSync(path.join(llmDir, 'config.json'), path.join(dir, 'config.json'));
    const tensors = [...(await readSafetensors(path.join(llmDir, 'model.safetensors')))];
    const shards = [tensors.filter((_, i) => i % 2 === 0), tensors.filter((_, i) => i % 2 === 1)];
    const weightMap: Record<string, string> = {};
    for (const [i, shard] of shards.entries()) {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      await writeSafetensors(path.join(dir, file), new Map(shard));
      for (const [name] of shard) weightMap[name] = file;
    }
    writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    using sharded = await StepLlm.load(dir, { device: 'cpu' });
    using single = await StepLlm.load(llmDir, { device: 'cpu' });
    using a = await sharded.forward(ids.data as Int32Array, shape);
    using b = await single.forward(ids.data as Int32Array, shape);
    expect(Array.from(await a.toFloat32())).toEqual(Array.from(await b.toFloat32()));
  });

  it('is causal: changing later tokens leaves earlier positions unchanged', async () => {
    using model = await StepLlm.load(llmDir, { device: 'cpu' });
    const edited = Int32Array.from(ids.data as Int32Array);
    for (let j = 20; j < 32; j++) edited[j] = (edited[j]! * 7 + 3) % 2416;
    using a = await model.forward(ids.data as Int32Array, shape);
    using b = await model.forward(edited, shape);
    const [ya, yb] = [await a.toFloat32(), await b.toFloat32()];
    expect(Array.from(yb.subarray(0, 20 * 256))).toEqual(Array.from(ya.subarray(0, 20 * 256)));
    expect(relErr(yb.subarray(20 * 256, 32 * 256), ya.subarray(20 * 256, 32 * 256))).toBeGreaterThan(1e-2);
    expect(Array.from(yb.subarray(32 * 256))).toEqual(Array.from(ya.subarray(32 * 256)));
  });

  it('`stepvideo run step-llm` writes y matching the reference, with --model the root or step_llm/', async () => {
    const inputs = path.join(work, 'llm-inputs.safetensors');
    await writeSafetensors(inputs, { input_ids: ids });
    for (const model of [tinyModelDir, llmDir]) {
      const output = path.join(work, `llm-y-${path.basename(model)}.safetensors`);
      const result = await runCli(['run', 'step-llm', '--model', model, '--inputs', inputs, '--output', output, '--device', 'cpu']);
      expect(result.code, `--model ${model}: ${result.stderr}`).toBe(0);
      const y = (await readSafetensors(output)).get('y')!;
      expect(y.dtype).toBe('f32');
      expect(y.shape).toEqual([2, 32, 256]);
      expectRelErr(y.data as Float32Array, expected, F32_GOLDEN.stepLlm, `step-llm component y (--model ${model})`);
    }
  });

  it('rejects token ids outside the vocabulary, naming the position', async () => {
    using model = await StepLlm.load(llmDir, { device: 'cpu' });
    const bad = Int32Array.from(ids.data as Int32Array);
    bad[37] = 2416;
    await expect(model.forward(bad, shape)).rejects.toMatchObject({ code: 'ERR_ARGUMENT', tensor: 'input_ids', message: expect.stringContaining('2416 at [1, 5]') });
    bad[37] = -1;
    await expect(model.forward(bad, shape)).rejects.toMatchObject({ code: 'ERR_ARGUMENT' });
    await expect(model.forward(ids.data as Int32Array, [2, 31])).rejects.toMatchObject({ code: 'ERR_SHAPE' });
  });

  it('reports a config that disagrees with the weights as ERR_CONFIG naming the key', async () => {
    const cases: Array<[string, (c: Record<string, unknown>) => void, string]> = [
      ['layers', (c) => (c.num_layers = 3), 'num_layers'],
      ['groups', (c) => (c.num_attention_groups = 2), 'num_attention_groups'],
      ['ffn', (c) => (c.ffn_hidden_size = 600), 'ffn_hidden_size'],
      ['vocab', (c) => (c.padded_vocab_size = 4096), 'padded_vocab_size'],
    ];
    for (const [name, edit, key] of cases) {
      const dir = editedModel(name, edit);
      await expect(StepLlm.load(dir, { device: 'cpu' }), name).rejects.toMatchObject({ code: 'ERR_CONFIG', message: expect.stringContaining(`'${key}'`) });
    }
    await expect(StepLlm.load(editedModel('heads', (c) => (c.num_attention_heads = 3)), { device: 'cpu' })).rejects.toMatchObject({ code: 'ERR_CONFIG' });
    await expect(StepLlm.load(editedModel('missing', (c) => delete c.hidden_size), { device: 'cpu' })).rejects.toMatchObject({ code: 'ERR_CONFIG', message: expect.stringContaining('hidden_size') });
  });

  it('refuses bf16 on the CPU backend', async () => {
    await expect(StepLlm.load(llmDir, { device: 'cpu', dtype: 'bf16' })).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' });
  });

  it('honours an AbortSignal between layers and frees what it made', async () => {
    using model = await StepLlm.load(llmDir, { device: 'cpu' });
    const baseline = Device.cpu.memory().bytesInUse;
    const controller = new AbortController();
    const pending = model.forward(ids.data as Int32Array, shape, { signal: controller.signal });
    controller.abort(new Error('stop'));
    await expect(pending).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    await Device.cpu.synchronize();
    expect(Device.cpu.memory().bytesInUse).toBe(baseline);
  });
});
