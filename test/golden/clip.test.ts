// Hunyuan-CLIP (BertModel) against the official reference on the tiny golden model, float32 on
// the CPU backend, from the released-format pytorch_model.bin and from the safetensors copy; the
// `stepvideo run clip` component; mask validation; memory hygiene.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Device } from '../../lib/device.js';
import { type HostTensor, readSafetensors, writeSafetensors } from '../../lib/io/safetensors.js';
import { ClipTextEncoder, keyLengthsFromMask } from '../../lib/models/clip/index.js';
import { runCli } from '../helpers/cli.js';
import { expectRelErr } from '../helpers/compare.js';
import { casePath, requireGolden, tinyModelDir } from '../helpers/golden.js';
import { F32_GOLDEN } from '../helpers/tolerances.js';

const clipDir = path.join(tinyModelDir, 'hunyuan_clip', 'clip_text_encoder');
const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-clip-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('attention mask to key lengths', () => {
  it('accepts right-padding prefix masks', () => {
    expect(Array.from(keyLengthsFromMask(Int32Array.from([1, 1, 0, 1, 1, 1]), 2, 3))).toEqual([2, 3]);
    expect(Array.from(keyLengthsFromMask(BigInt64Array.from([1n, 0n, 0n]), 1, 3))).toEqual([1]);
  });
  it('rejects left padding, holes, other values and empty rows, naming the row', () => {
    expect(() => keyLengthsFromMask(Int32Array.from([1, 1, 1, 0, 1, 1]), 2, 3)).toThrow(expect.objectContaining({ code: 'ERR_ARGUMENT', tensor: 'attention_mask', message: expect.stringContaining('row 1') }));
    expect(() => keyLengthsFromMask(Int32Array.from([1, 0, 1]), 1, 3)).toThrow(expect.objectContaining({ code: 'ERR_ARGUMENT' }));
    expect(() => keyLengthsFromMask(Int32Array.from([1, 2, 0]), 1, 3)).toThrow(expect.objectContaining({ code: 'ERR_ARGUMENT' }));
    expect(() => keyLengthsFromMask(Int32Array.from([0, 0, 0]), 1, 3)).toThrow(expect.objectContaining({ code: 'ERR_ARGUMENT', message: expect.stringContaining('no valid token') }));
    expect(() => keyLengthsFromMask(Int32Array.from([1, 1]), 1, 3)).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
  });
});

describe.runIf(requireGolden())('Hunyuan-CLIP on the CPU backend (golden clip_case)', () => {
  // Read in beforeAll, not while collecting: without the goldens the suite is skipped, not an ENOENT.
  let golden: Map<string, HostTensor>;
  let ids: Int32Array;
  let mask: Int32Array;
  let expected: Float32Array;
  let shape: [number, number];
  beforeAll(async () => {
    golden = await readSafetensors(casePath('clip_case.safetensors'));
    ids = golden.get('input_ids')!.data as Int32Array;
    mask = golden.get('attention_mask')!.data as Int32Array;
    expected = golden.get('last_hidden_state')!.data as Float32Array;
    shape = golden.get('input_ids')!.shape as [number, number];
  });

  it('matches the float64 reference within 10x its measured f32 error from pytorch_model.bin (float32)', async () => {
    const baseline = Device.cpu.memory().bytesInUse;
    {
      using model = await ClipTextEncoder.load(clipDir, { device: 'cpu' });
      expect(model.config).toMatchObject({ vocabSize: 120, hiddenSize: 64, numLayers: 2, numHeads: 4, headDim: 16, intermediateSize: 128, maxPositions: 77, eps: 1e-12 });
      using hidden = await model.forward(ids, mask, shape);
      expect(hidden.shape).toEqual([2, 16, 64]);
      expect(hidden.dtype).toBe('f32');
      const rel = expectRelErr(await hidden.toFloat32(), expected, F32_GOLDEN.clip, 'clip_case last_hidden_state');
      console.log(`clip_case float32 CPU rel err ${rel.toExponential(3)} (pytorch_model.bin)`);
    }
    expect(Device.cpu.memory().bytesInUse).toBe(baseline);
  });

  it('gives the same result from the safetensors copy of the weights', async () => {
    using fromBin = await ClipTextEncoder.load(clipDir, { device: 'cpu' });
    using fromSafetensors = await ClipTextEncoder.load(clipDir, { device: 'cpu', weightsFile: path.join(clipDir, 'model.safetensors') });
    using a = await fromBin.forward(ids, mask, shape);
    using b = await fromSafetensors.forward(ids, mask, shape);
    expect(Array.from(await b.toFloat32())).toEqual(Array.from(await a.toFloat32()));
  });

  it('masks padding inside attention: pad ids change only the pad positions', async () => {
    using model = await ClipTextEncoder.load(clipDir, { device: 'cpu' });
    const valid = Array.from(mask.subarray(16)).filter((v) => v === 1).length;
    expect(valid).toBeLessThan(16);
    const edited = Int32Array.from(ids);
    for (let j = 16 + valid; j < 32; j++) edited[j] = 5 + j;
    using a = await model.forward(ids, mask, shape);
    using b = await model.forward(edited, mask, shape);
    const [ha, hb] = [await a.toFloat32(), await b.toFloat32()];
    expect(Array.from(hb.subarray(0, (16 + valid) * 64))).toEqual(Array.from(ha.subarray(0, (16 + valid) * 64)));
    expect(Array.from(hb.subarray((16 + valid) * 64))).not.toEqual(Array.from(ha.subarray((16 + valid) * 64)));
  });

  it('rejects a non-prefix mask, out-of-range ids and sequences past max_position_embeddings', async () => {
    using model = await ClipTextEncoder.load(clipDir, { device: 'cpu' });
    const holes = Int32Array.from(mask);
    holes[3] = 0;
    await expect(model.forward(ids, holes, shape)).rejects.toMatchObject({ code: 'ERR_ARGUMENT', tensor: 'attention_mask', message: expect.stringContaining('row 0') });
    const bad = Int32Array.from(ids);
    bad[1] = 120;
    await expect(model.forward(bad, mask, shape)).rejects.toMatchObject({ code: 'ERR_ARGUMENT', tensor: 'input_ids' });
    await expect(model.forward(new Int32Array(78), new Int32Array(78).fill(1), [1, 78])).rejects.toMatchObject({ code: 'ERR_SHAPE', tensor: 'input_ids' });
  });

  it('`stepvideo run clip` writes last_hidden_state matching the reference, with --model at any level of the layout', async () => {
    const inputs = path.join(work, 'clip-inputs.safetensors');
    await writeSafetensors(inputs, { input_ids: golden.get('input_ids')!, attention_mask: golden.get('attention_mask')! });
    for (const model of [tinyModelDir, path.join(tinyModelDir, 'hunyuan_clip'), clipDir]) {
      const output = path.join(work, `clip-out-${path.basename(model)}.safetensors`);
      const result = await runCli(['run', 'clip', '--model', model, '--inputs', inputs, '--output', output, '--device', 'cpu']);
      expect(result.code, `--model ${model}: ${result.stderr}`).toBe(0);
      expect(result.stderr).toContain(`clip: loading ${clipDir}`);
      const hidden = (await readSafetensors(output)).get('last_hidden_state')!;
      expect(hidden.shape).toEqual([2, 16, 64]);
      expectRelErr(hidden.data as Float32Array, expected, F32_GOLDEN.clip, `clip component last_hidden_state (--model ${model})`);
    }
  });

  it('`stepvideo run clip` reports a left-padded mask as an argument error', async () => {
    const inputs = path.join(work, 'clip-left.safetensors');
    const leftPadded = Int32Array.from(mask);
    leftPadded.reverse();
    await writeSafetensors(inputs, { input_ids: golden.get('input_ids')!, attention_mask: { dtype: 'i32', shape: [...shape], data: leftPadded } });
    const result = await runCli(['run', 'clip', '--model', tinyModelDir, '--inputs', inputs, '--output', path.join(work, 'never.safetensors'), '--device', 'cpu']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('ERR_ARGUMENT');
    expect(result.stderr).toContain('attention_mask');
  });
});
