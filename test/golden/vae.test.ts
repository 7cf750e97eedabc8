// The video VAE (version 2) against the official implementation's float64 outputs on the tiny golden
// model (vae/ folder with config.json overrides, weights stored in bf16 with the released naming):
// float32 on the CPU backend within 10x the measured f32 error (F32_GOLDEN), for decode (two chunks
// and the boundary mix) and encode (moments of one 17-frame chunk); plus the streaming form, time
// slicing, sampling, errors and memory ownership.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Device } from '../../lib/device.js';
import { opCount } from '../../lib/device-stats.js';
import { isStepVideoError } from '../../lib/errors.js';
import { type HostTensor, readSafetensors, writeSafetensors } from '../../lib/io/safetensors.js';
import * as ops from '../../lib/ops.js';
import { VideoVAE } from '../../lib/models/vae/index.js';
import { Tensor } from '../../lib/tensor.js';
import { expectRelErr, relErr } from '../helpers/compare.js';
import { runCli } from '../helpers/cli.js';
import { casePath, requireGolden, tinyModelDir } from '../helpers/golden.js';
import { F32_GOLDEN } from '../helpers/tolerances.js';

const run = requireGolden();
const vaeDir = path.join(tinyModelDir, 'vae');

describe.skipIf(!run)('VAE v2 golden case, float32 on the CPU', () => {
  let vae: VideoVAE;
  let golden: Map<string, HostTensor>;
  const input = (name: string): Tensor => {
    const t = golden.get(name)!;
    return Tensor.from(t.data as Float32Array, t.shape, { device: 'cpu' });
  };
  const expected = (name: string): Float32Array => golden.get(name)!.data as Float32Array;

  beforeAll(async () => {
    golden = await readSafetensors(casePath('vae_case.safetensors'));
    vae = await VideoVAE.load(vaeDir, { device: 'cpu' });
  });
  afterAll(() => vae?.dispose());

  it('loads the golden config overrides and the released naming (decoder.conv_out without .conv)', () => {
    expect(vae.config.zChannels).toBe(4);
    expect(vae.config.decoder).toEqual({ ch: 32, chMult: [1, 2, 4, 4], blocksPerLevel: 3 });
    expect(vae.config.encoder).toEqual({ ch: 32, chMult: [1, 2, 4, 4], blocksPerLevel: 2 });
    expect(vae.dtype).toBe('f32');
  });

  it('decode: latents [1, 6, 4, 4, 4] -> decoded [1, 34, 3, 64, 64], rel <= 10x the measured f32 error; memory back to baseline', async () => {
    const baseline = Device.cpu.memory().bytesInUse;
    {
      using latents = input('latents');
      const out = await vae.decode(latents);
      using decoded = out!;
      expect(decoded.shape).toEqual([1, 34, 3, 64, 64]);
      const rel = expectRelErr(await decoded.toFloat32(), expected('decoded'), F32_GOLDEN.vaeDecode, 'decoded');
      console.log(`vae decode f32 CPU rel err ${rel.toExponential(3)} (official bf16: ${relErr(expected('decoded_bf16_official'), expected('decoded')).toExponential(3)})`);
    }
    await Device.cpu.synchronize();
    expect(Device.cpu.memory().bytesInUse).toBe(baseline);
  });

  it('encode: frames [1, 17, 3, 64, 64] -> encoded_moments [1, 3, 8, 4, 4], rel <= 10x the measured f32 error; memory back to baseline', async () => {
    const baseline = Device.cpu.memory().bytesInUse;
    {
      using frames = input('frames');
      using moments = await vae.encodeMoments(frames);
      expect(moments.shape).toEqual([1, 3, 8, 4, 4]);
      const rel = expectRelErr(await moments.toFloat32(), expected('encoded_moments'), F32_GOLDEN.vaeEncode, 'encoded_moments');
      console.log(`vae encode f32 CPU rel err ${rel.toExponential(3)} (official bf16: ${relErr(expected('encoded_moments_bf16_official'), expected('encoded_moments')).toExponential(3)})`);
    }
    await Device.cpu.synchronize();
    expect(Device.cpu.memory().bytesInUse).toBe(baseline);
  });

  it('streams final chunks in order (chunk 0 after chunk 1 is decoded), each equal to the golden frames', async () => {
    using latents = input('latents');
    const seen: Array<{ index: number; total: number; shape: readonly number[] }> = [];
    const frameSize = 3 * 64 * 64;
    const result = await vae.decode(latents, {
      onChunk: async (frames, index, total) => {
        seen.push({ index, total, shape: frames.shape });
        const want = expected('decoded').subarray(index * 17 * frameSize, (index + 1) * 17 * frameSize);
        expectRelErr(await frames.toFloat32(), want, F32_GOLDEN.vaeDecode, `chunk ${index}`);
      },
    });
    expect(result).toBeUndefined();
    expect(seen).toEqual([
      { index: 0, total: 2, shape: [1, 17, 3, 64, 64] },
      { index: 1, total: 2, shape: [1, 17, 3, 64, 64] },
    ]);
  });

  // Chunk 0 and chunk 1 decoded on their own (unmixed), shared by the next tests.
  let unmixed: [Float32Array, Float32Array] | undefined;

  it('the boundary mix is sequential: 0.6/0.4 into the next chunk, then 0.76/0.24 in effect', async () => {
    using latents = input('latents');
    using first = ops.slice(latents, 1, 0, 3);
    using second = ops.slice(latents, 1, 3, 6);
    using a = (await vae.decode(first))!;
    using b = (await vae.decode(second))!;
    unmixed = [await a.toFloat32(), await b.toFloat32()];
    const [av, bv] = unmixed;
    const mixed = expected('decoded');
    const frameSize = 3 * 64 * 64;
    const last = av.subarray(16 * frameSize, 17 * frameSize), firstOfNext = bv.subarray(0, frameSize);
    const newFirst = firstOfNext.map((v, i) => 0.6 * v + 0.4 * last[i]!);
    const newLast = last.map((v, i) => 0.6 * v + 0.4 * newFirst[i]!);
    expectRelErr(newLast, mixed.subarray(16 * frameSize, 17 * frameSize), F32_GOLDEN.vaeDecode, 'mixed last frame of chunk 0');
    expectRelErr(newFirst, mixed.subarray(17 * frameSize, 18 * frameSize), F32_GOLDEN.vaeDecode, 'mixed first frame of chunk 1');
    // Away from the boundary, chunks are independent: frames 1..15 of chunk 1 are untouched by the mix.
    expectRelErr(bv.subarray(frameSize, 16 * frameSize), mixed.subarray(18 * frameSize, 33 * frameSize), F32_GOLDEN.vaeDecode, 'chunk 1 interior');
  });

  it('time-sliced GroupNorm + conv (forced on every layer), through the async iterator, gives the same frames', async () => {
    expect(unmixed).toBeDefined();
    using sliced = await VideoVAE.load(vaeDir, { device: 'cpu', parts: ['decoder'], timeSliceElements: 1 });
    using latents = input('latents');
    using first = ops.slice(latents, 1, 0, 3);
    const chunks: number[] = [];
    for await (const chunk of sliced.decodeChunks(first)) {
      chunks.push(chunk.index);
      expect(chunk.total).toBe(1);
      expect(relErr(await chunk.frames.toFloat32(), unmixed![0])).toBeLessThan(1e-6);
    }
    expect(chunks).toEqual([0]);
  });

  it('decodes a batch of two items independently (batch axis of the latents and frames)', async () => {
    expect(unmixed).toBeDefined();
    using latents = input('latents');
    using first = ops.slice(latents, 1, 0, 3);
    using second = ops.slice(latents, 1, 3, 6);
    using batch = ops.concat([first, second], 0);
    using decoded = (await vae.decode(batch))!;
    expect(decoded.shape).toEqual([2, 17, 3, 64, 64]);
    const values = await decoded.toFloat32();
    const item = 17 * 3 * 64 * 64;
    expect(relErr(values.subarray(0, item), unmixed![0])).toBeLessThan(1e-6);
    expect(relErr(values.subarray(item), unmixed![1])).toBeLessThan(1e-6);
  });

  it('decodes chunks on replicas (helpers) at once and mixes them in order: the same frames bit for bit; an abort frees everything', async () => {
    const helpers = [await VideoVAE.load(vaeDir, { device: 'cpu', parts: ['decoder'] }), await VideoVAE.load(vaeDir, { device: 'cpu', parts: ['decoder'] })];
    try {
      using latents = input('latents');
      using firstChunk = ops.slice(latents, 1, 0, 3);
      using three = ops.concat([latents, firstChunk], 1);  // 3 chunks: one per decoder
      using alone = (await vae.decode(three))!;
      await Device.cpu.synchronize();
      const baseline = Device.cpu.memory().bytesInUse;
      {
        using shared = (await vae.decode(three, { helpers }))!;
        expect(shared.shape).toEqual([1, 51, 3, 64, 64]);
        expect(Buffer.from((await shared.toFloat32()).buffer).equals(Buffer.from((await alone.toFloat32()).buffer))).toBe(true);
      }
      const controller = new AbortController();
      const stopped = vae.decode(three, { helpers, signal: controller.signal, onChunk: () => controller.abort(new Error('stop')) }).catch((e: unknown) => e);
      expect(isStepVideoError(await stopped, 'ERR_ABORTED')).toBe(true);
      await Device.cpu.synchronize();
      expect(Device.cpu.memory().bytesInUse).toBe(baseline);
      using encoderOnly = await VideoVAE.load(vaeDir, { device: 'cpu', parts: ['encoder'] });
      await expect(vae.decode(three, { helpers: [encoderOnly] })).rejects.toThrow(/without its decoder/);
    } finally {
      for (const h of helpers) h.dispose();
    }
  });

  it('encode: mode is the mean; a seeded sample is reproducible and spreads by exp(logvar / 2)', async () => {
    using frames = input('frames');
    using mode = await vae.encode(frames);
    expect(mode.shape).toEqual([1, 3, 4, 4, 4]);
    const moments = expected('encoded_moments');
    const mean = new Float32Array(3 * 4 * 16), logvar = new Float32Array(3 * 4 * 16);
    for (let t = 0; t < 3; t++) {
      mean.set(moments.subarray(t * 128, t * 128 + 64), t * 64);
      logvar.set(moments.subarray(t * 128 + 64, t * 128 + 128), t * 64);
    }
    expectRelErr(await mode.toFloat32(), mean, F32_GOLDEN.vaeEncode, 'mode');
    using s1 = await vae.encode(frames, { sample: { seed: 7 } });
    using s2 = await vae.encode(frames, { sample: { seed: 7 } });
    using s3 = await vae.encode(frames, { sample: { seed: 8 } });
    const [v1, v2, v3] = [await s1.toFloat32(), await s2.toFloat32(), await s3.toFloat32()];
    expect(relErr(v1, v2)).toBe(0);
    expect(relErr(v1, v3)).toBeGreaterThan(0);
    // (sample - mean) / std is the seeded noise: standard normal on average.
    let sq = 0;
    for (let i = 0; i < v1.length; i++) {
      const std = Math.exp(0.5 * Math.min(20, Math.max(-30, logvar[i]!)));
      sq += ((v1[i]! - mean[i]!) / std) ** 2;
    }
    expect(Math.sqrt(sq / v1.length)).toBeGreaterThan(0.7);
    expect(Math.sqrt(sq / v1.length)).toBeLessThan(1.3);
  });

  it('aborts between blocks with ERR_ABORTED and frees what it made', async () => {
    const baseline = Device.cpu.memory().bytesInUse;
    using latents = input('latents');
    const controller = new AbortController();
    let chunks = 0;
    const opsBefore = opCount('cpu');
    let settled = false;
    const outcome = vae
      .decode(latents, {
        signal: controller.signal,
        onChunk: () => {
          chunks++;
        },
      })
      .then(() => undefined, (e: unknown) => e)
      .finally(() => (settled = true));
    // Abort once the decoder is at work (its first ops are on the queue), whatever the runner's load:
    // no timer that a busy machine could delay past the whole decode.
    while (opCount('cpu') === opsBefore && !settled) await new Promise((resolve) => setImmediate(resolve));
    expect(settled, 'the decode ended before it enqueued any op').toBe(false);
    controller.abort(new Error('stop'));
    const error = await outcome;
    expect(isStepVideoError(error, 'ERR_ABORTED'), String(error)).toBe(true);
    expect(chunks).toBe(0);
    await Device.cpu.synchronize();
    expect(Device.cpu.memory().bytesInUse).toBe(baseline + latents.byteLength);
  });

  it('`stepvideo run vae-decode` and `vae-encode` reproduce the golden case (released layout root as --model)', async () => {
    const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-vae-'));
    const decodedFile = path.join(work, 'decoded.safetensors');
    const decode = await runCli(['run', 'vae-decode', '--model', tinyModelDir, '--inputs', casePath('vae_case.safetensors'), '--output', decodedFile, '--device', 'cpu']);
    expect(decode.code, decode.stderr).toBe(0);
    const decoded = (await readSafetensors(decodedFile)).get('decoded')!;
    expect(decoded.shape).toEqual([1, 34, 3, 64, 64]);
    expectRelErr(decoded.data as Float32Array, expected('decoded'), F32_GOLDEN.vaeDecode, 'vae-decode component');
    const encodedFile = path.join(work, 'encoded.safetensors');
    const encode = await runCli(['run', 'vae-encode', '--model', path.join(tinyModelDir, 'vae'), '--inputs', casePath('vae_case.safetensors'), '--output', encodedFile, '--device', 'cpu']);
    expect(encode.code, encode.stderr).toBe(0);
    const moments = (await readSafetensors(encodedFile)).get('encoded_moments')!;
    expect(moments.shape).toEqual([1, 3, 8, 4, 4]);
    expectRelErr(moments.data as Float32Array, expected('encoded_moments'), F32_GOLDEN.vaeEncode, 'vae-encode component');
    // A latent frame count that is not a multiple of 3 is a shape error naming the tensor.
    const bad = path.join(work, 'bad.safetensors');
    await writeSafetensors(bad, { latents: { dtype: 'f32', shape: [1, 4, 4, 4, 4], data: new Float32Array(256) } });
    const failed = await runCli(['run', 'vae-decode', '--model', tinyModelDir, '--inputs', bad, '--output', path.join(work, 'never.safetensors'), '--device', 'cpu']);
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toContain('ERR_SHAPE');
    expect(failed.stderr).toContain('latents');
  });

  it('rejects bad inputs with typed errors naming the tensor', async () => {
    using wrongChannels = Tensor.zeros([1, 3, 5, 4, 4]);
    await expect(vae.decode(wrongChannels)).rejects.toMatchObject({ code: 'ERR_SHAPE', tensor: 'latents' });
    using wrongFrames = Tensor.zeros([1, 4, 4, 4, 4]);
    await expect(vae.decode(wrongFrames)).rejects.toMatchObject({ code: 'ERR_SHAPE', tensor: 'latents' });
    using fewFrames = Tensor.zeros([1, 16, 3, 64, 64]);
    await expect(vae.encodeMoments(fewFrames)).rejects.toMatchObject({ code: 'ERR_SHAPE', tensor: 'frames' });
    using decoderOnly = await VideoVAE.load(vaeDir, { device: 'cpu', parts: ['decoder'] });
    using frames = input('frames');
    await expect(decoderOnly.encode(frames)).rejects.toMatchObject({ code: 'ERR_ARGUMENT' });
    await expect(VideoVAE.load(tinyModelDir, { device: 'cpu' })).rejects.toMatchObject({ code: 'ERR_IO' });
    await expect(VideoVAE.load(vaeDir, { device: 'cpu', dtype: 'bf16' })).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' });
  });
});
