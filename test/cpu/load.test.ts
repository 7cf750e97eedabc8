// Loading weights natively (file -> tensor, dtype converted) against the pure-TS reader.
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { Device } from '../../lib/device.js';
import { bf16ArrayToF32 } from '../../lib/dtype.js';
import { isStepVideoError } from '../../lib/errors.js';
import { openWeights } from '../../lib/io/index.js';
import { Weights, checkAgainstSpec, loadRecords } from '../../lib/io/load.js';
import { readSafetensors } from '../../lib/io/safetensors.js';
import { requireGolden, tinyModelDir } from '../helpers/golden.js';

const ditFile = path.join(tinyModelDir, 'transformer', 'diffusion_pytorch_model.safetensors');

describe.runIf(requireGolden())('native weight loading', () => {
  it('loads bf16 weights as f32 and bf16 with the bytes the TS reader sees', async () => {
    const index = await openWeights(path.join(tinyModelDir, 'transformer'));
    const host = await readSafetensors(ditFile);
    const names = index.names();
    const asF32 = await loadRecords(names.map((n) => index.get(n)), { device: 'cpu', dtype: 'f32', batchBytes: 1 << 20 });
    const asBf16 = await loadRecords(names.map((n) => index.get(n)), { device: 'cpu', dtype: 'bf16' });
    for (const name of names) {
      const expected = bf16ArrayToF32(host.get(name)!.data as Uint16Array);
      expect(Array.from(await asF32.get(name)!.toFloat32()), name).toEqual(Array.from(expected));
      expect(Array.from((await asBf16.get(name)!.toArray()) as Uint16Array)).toEqual(Array.from(host.get(name)!.data as Uint16Array));
    }
    for (const t of [...asF32.values(), ...asBf16.values()]) t.dispose();
  });

  it('loads the float32 torch checkpoint identically to the bf16 safetensors', async () => {
    const bin = await openWeights(path.join(tinyModelDir, 'hunyuan_clip', 'clip_text_encoder', 'pytorch_model.bin'));
    const st = await openWeights(path.join(tinyModelDir, 'hunyuan_clip', 'clip_text_encoder', 'model.safetensors'));
    const name = 'bert.encoder.layer.0.attention.self.query.weight';
    const [a, b] = await Promise.all([loadRecords([bin.get(name)], { device: 'cpu' }), loadRecords([st.get(name)], { device: 'cpu' })]);
    expect(Array.from(await a.get(name)!.toFloat32())).toEqual(Array.from(await b.get(name)!.toFloat32()));
    a.get(name)!.dispose();
    b.get(name)!.dispose();
  });

  it('checks names and shapes against a spec before reading', async () => {
    const index = await openWeights(ditFile);
    const spec = new Map(index.names().map((n) => [n, index.get(n).shape] as const));
    expect(() => checkAgainstSpec(index, spec)).not.toThrow();
    const missing = new Map(spec);
    missing.set('transformer_blocks.9.attn1.wqkv.weight', [768, 256]);
    expect(() => checkAgainstSpec(index, missing)).toThrow(expect.objectContaining({ code: 'ERR_WEIGHTS_MISSING', tensor: 'transformer_blocks.9.attn1.wqkv.weight' }));
    const fewer = new Map(spec);
    fewer.delete('proj_out.bias');
    expect(() => checkAgainstSpec(index, fewer)).toThrow(expect.objectContaining({ code: 'ERR_WEIGHTS_UNEXPECTED', tensor: 'proj_out.bias' }));
    const wrong = new Map(spec);
    wrong.set('proj_out.bias', [65]);
    expect(() => checkAgainstSpec(index, wrong)).toThrow(expect.objectContaining({ code: 'ERR_SHAPE', tensor: 'proj_out.bias' }));
    const weights = await Weights.load(index, spec, { device: 'cpu' });
    expect(weights.get('proj_out.bias').shape).toEqual([64]);
    weights.dispose();
  });

  it('stops between batches when aborted and frees what it loaded', async () => {
    const index = await openWeights(ditFile);
    const controller = new AbortController();
    const records = index.names().map((n) => index.get(n));
    await Device.cpu.synchronize();
    const before = Device.cpu.memory();
    let loaded = 0;
    const load = loadRecords(records, {
      device: 'cpu',
      batchBytes: 1,
      onProgress: (p) => {
        loaded = p.tensors;
        if (p.tensors >= 3) controller.abort();
      },
      signal: controller.signal,
    });
    await expect(load).rejects.toSatisfy((e: unknown) => isStepVideoError(e, 'ERR_ABORTED'));
    // It had loaded tensors (and stopped long before the last) ...
    expect(loaded).toBeGreaterThanOrEqual(3);
    expect(loaded).toBeLessThan(records.length);
    // ... and freed every one of them: the device holds what it held before, allocation for allocation.
    await Device.cpu.synchronize();
    const after = Device.cpu.memory();
    expect(after.bytesInUse).toBe(before.bytesInUse);
    expect(after.liveBlocks).toBe(before.liveBlocks);
  });

  it('reports a file that ends before its tensor data', async () => {
    const index = await openWeights(ditFile);
    const record = { ...index.get('proj_out.weight'), offset: 1e12 };
    await expect(loadRecords([record], { device: 'cpu' })).rejects.toMatchObject({ code: 'ERR_WEIGHTS_FORMAT' });
  });
});
