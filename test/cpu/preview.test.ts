// Latent previews (lib/pipeline/preview.ts) with the built-in model's VAE on the CPU: the fit, its
// accuracy against the real decoder on held-out latents, rendering (quantisation, sizes, frames,
// PNG), the JSON cache form, typed errors, aborts, and no tensor left behind.
//
// Accuracy, written down before the measurement and why. The built-in VAE has random weights: its
// decoder is a deep nonlinear function (GroupNorms over the whole chunk, SiLU, attention) with no
// reason to be near-linear, unlike a trained VAE. So no linear map can explain "most of the variance"
// here, and the meaningful bound is against the best linear map there is: the least-squares map
// fitted in hindsight on the held-out latents themselves (the "oracle", LatentPreviewer.fromDecoded).
// Expected, for latents sampled with the pipeline (NOT the fitting latents, which are white noise):
//   - the within-frame structure (R² after removing each frame's mean colour, i.e. where things
//     are): ours close to the oracle, ≥ 0.75 of it, and ≥ 0.15 absolute (exploration measured the
//     oracle at about 0.38 and a noise-fitted map at about 0.34 over nine sampled videos);
//   - the raw R², frame mean colour included, may be near 0 or negative: the built-in DiT leaves
//     per-channel offsets of 2-3 σ in its latents, which the decoder's GroupNorms remove and a linear
//     map cannot; the oracle itself reaches only about 0.3. Reported, not bounded.
// On held-out white noise like the fitting latents (other seed), the raw R² ≥ 0.2 (about 0.3-0.45
// measured).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { inflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Device } from '../../lib/device.js';
import { StepVideoError } from '../../lib/errors.js';
import { PREVIEW_FILE, StepVideo } from '../../lib/pipeline/pipeline.js';
import { createStepVideoServer } from '../../lib/server/index.js';
import { LatentPreviewer, type PreviewGrid, poolFrames, rSquared } from '../../lib/pipeline/preview.js';
import { Tensor } from '../../lib/tensor.js';
import { toRgbFrames } from '../../lib/video/frames.js';
import { testCacheDir } from '../helpers/pipeline.js';

let sv: StepVideo;
let previewer: LatentPreviewer;
/** Bytes held by the loaded models: the fit and every render must come back to this. */
let baseline: number;
let fitMs: number;

beforeAll(async () => {
  sv = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir });
  await Device.cpu.synchronize();
  baseline = Device.cpu.memory().bytesInUse;
  const started = performance.now();
  previewer = await LatentPreviewer.fit(sv.vae);
  fitMs = performance.now() - started;
});

afterAll(() => {
  sv?.dispose();
});

async function expectBaseline(): Promise<void> {
  await Device.cpu.synchronize();
  expect(Device.cpu.memory().bytesInUse).toBe(baseline);
}

async function expectCode(promise: Promise<unknown>, code: string, tensor?: string): Promise<StepVideoError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(StepVideoError);
  expect((error as StepVideoError).code).toBe(code);
  if (tensor !== undefined) expect((error as StepVideoError).tensor).toBe(tensor);
  return error as StepVideoError;
}

/** The map's float output for every latent frame of batch 0, in poolFrames' order ([F, h, w, 3]). */
async function predictAll(p: LatentPreviewer, latents: Float32Array, shape: readonly number[]): Promise<Float32Array> {
  const [, F, , h, w] = shape as [number, number, number, number, number];
  const out = new Float32Array(F * h * w * 3);
  for (let t = 0; t < F; t++) out.set((await p.renderFloat(latents, shape, t)).rgb, t * h * w * 3);
  return out;
}

/** R² after removing each frame's mean colour from targets and predictions ([F, pixels, 3]). */
function spatialR2(targets: Float64Array, predicted: Float32Array, frames: number): number {
  const pixels = targets.length / 3 / frames;
  const centre = (values: ArrayLike<number>) => {
    const out = new Float64Array(values.length);
    for (let f = 0; f < frames; f++)
      for (let c = 0; c < 3; c++) {
        let mean = 0;
        for (let p = 0; p < pixels; p++) mean += values[(f * pixels + p) * 3 + c]! / pixels;
        for (let p = 0; p < pixels; p++) out[(f * pixels + p) * 3 + c] = values[(f * pixels + p) * 3 + c]! - mean;
      }
    return out;
  };
  const y = centre(targets);
  const p = centre(predicted);
  let sse = 0;
  let sst = 0;
  for (let i = 0; i < y.length; i++) {
    sse += (y[i]! - p[i]!) ** 2;
    sst += y[i]! ** 2;
  }
  return 1 - sse / sst;
}

/** Decodes latents with the real VAE, host copies of both and the decoded frames pooled onto the latent grid. */
async function decodePooled(latents: Tensor): Promise<{ host: Float32Array; frames: Float32Array; targets: Float64Array }> {
  const [B, , , h, w] = latents.shape as [number, number, number, number, number];
  using decoded = (await sv.vae.decode(latents))!;
  const frames = await decoded.toFloat32();
  return { host: await latents.toFloat32(), frames, targets: poolFrames(frames, B, h, w) };
}

/** Seeded N(0, scale²) host latents (a stream other than the fit's). */
function noise(shape: readonly number[], seed: number, scale = 1): Float32Array {
  let state = seed >>> 0;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state + 0.5) / 2 ** 32;
  };
  const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < out.length; i++) out[i] = scale * Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
  return out;
}

/** The RGB8 rows of an 8-bit truecolour PNG from encodePng (one IDAT; filters None and Up). */
function decodePng(png: Buffer): { width: number; height: number; rgb: Uint8Array } {
  expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const width = png.readUInt32BE(16);
  const height = png.readUInt32BE(20);
  const idatLength = png.readUInt32BE(33);
  expect(png.toString('ascii', 37, 41)).toBe('IDAT');
  const raw = inflateSync(png.subarray(41, 41 + idatLength));
  const stride = width * 3;
  const rgb = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    for (let x = 0; x < stride; x++) {
      const v = raw[y * (stride + 1) + 1 + x]!;
      rgb[y * stride + x] = filter === 2 && y > 0 ? (v + rgb[(y - 1) * stride + x]!) & 0xff : v;
    }
  }
  return { width, height, rgb };
}

describe('LatentPreviewer with the built-in VAE (CPU)', () => {
  it('fits a [3, z] map and bias, leaving no tensor behind', async () => {
    console.log(`preview fit: ${fitMs.toFixed(0)} ms, ${JSON.stringify(previewer.fitQuality)}`);
    expect(previewer.zChannels).toBe(sv.vae.config.zChannels);
    const json = previewer.toJSON();
    expect(json.weight).toHaveLength(3);
    for (const row of json.weight) expect(row).toHaveLength(sv.vae.config.zChannels);
    expect(json.bias).toHaveLength(3);
    expect(json.fit.seed).toBe(0);
    // Well over z + 1 samples per unknown: a well-posed fit.
    expect(json.fit.samples).toBeGreaterThanOrEqual(12 * (sv.vae.config.zChannels + 1));
    await expectBaseline();
  });

  it('is deterministic for a VAE and seed, and round-trips through JSON', async () => {
    const again = await LatentPreviewer.fit(sv.vae, { seed: 0 });
    expect(again.toJSON()).toEqual(previewer.toJSON());
    const restored = LatentPreviewer.fromJSON(JSON.parse(JSON.stringify(previewer)));
    const shape = [1, 3, sv.vae.config.zChannels, 5, 7];
    const latents = noise(shape, 3);
    expect((await restored.renderFloat(latents, shape, 1)).rgb).toEqual((await previewer.renderFloat(latents, shape, 1)).rgb);
    expect(() => LatentPreviewer.fromJSON({ ...previewer.toJSON(), weight: [[1], [2], [3]] })).toThrow(expect.objectContaining({ code: 'ERR_ARGUMENT' }));
    expect(() => LatentPreviewer.fromJSON('nope')).toThrow(expect.objectContaining({ code: 'ERR_ARGUMENT' }));
    await expectBaseline();
  });

  it('approximates the real decoder on held-out latents sampled by the pipeline, about as well as any linear map', async () => {
    // Three sampled videos of one size (two chunks each, odd 5 x 5 latent grid), pooled as batch rows
    // so the oracle is fitted on 450 latent pixels (50 per unknown: little in-sample optimism).
    const parts: Array<{ host: Float32Array; frames: Float32Array; targets: Float64Array }> = [];
    let shape: readonly number[] = [];
    for (const [steps, seed, prompt] of [[2, 21, 'a red car on a wet city street at night'], [4, 22, 'a fox in fresh snow'], [8, 23, 'waves breaking on a rocky shore']] as const) {
      const video = await sv.generate({ prompt, frames: 34, height: 80, width: 80, steps, seed });
      shape = video.latents.shape;
      parts.push(await decodePooled(video.latents));
      video.dispose();
    }
    const [, F, z, h, w] = shape as [number, number, number, number, number];
    const joined = (arrays: Float32Array[]) => {
      const out = new Float32Array(arrays.reduce((n, a) => n + a.length, 0));
      arrays.reduce((offset, a) => (out.set(a, offset), offset + a.length), 0);
      return out;
    };
    const host = joined(parts.map((p) => p.host));
    const targets = Float64Array.from(parts.flatMap((p) => [...p.targets]));
    const batchShape = [parts.length, F, z, h, w];
    const oracle = LatentPreviewer.fromDecoded(host, batchShape, joined(parts.map((p) => p.frames)));
    // Each row rendered on its own (render reads batch row 0), in poolFrames' order.
    const rows = async (p: LatentPreviewer) => joined(await Promise.all(parts.map((part) => predictAll(p, part.host, shape))));
    const ours = await rows(previewer);
    const best = await rows(oracle);
    const frames = parts.length * F;
    const measured = { spatial: spatialR2(targets, ours, frames), oracleSpatial: spatialR2(targets, best, frames), raw: rSquared(targets, ours).pooled, oracleRaw: rSquared(targets, best).pooled };
    console.log(`preview accuracy on sampled latents (3 videos 34x80x80): ${JSON.stringify(measured)}`);
    expect(measured.spatial).toBeGreaterThanOrEqual(0.15);
    expect(measured.spatial).toBeGreaterThanOrEqual(0.75 * measured.oracleSpatial);

    // White noise like the fitting latents but another stream (scales 1 and 3, as the fit's rows).
    const noiseShape = [1, 3, z, 8, 8];
    const scores: number[] = [];
    for (const [seed, scale] of [[5, 1], [6, 3]] as const) {
      using latents = Tensor.from(noise(noiseShape, seed, scale), noiseShape);
      const decoded = await decodePooled(latents);
      scores.push(rSquared(decoded.targets, await predictAll(previewer, decoded.host, noiseShape)).pooled);
    }
    console.log(`preview accuracy on held-out white noise (σ 1, 3): R² ${scores.map((s) => s.toFixed(3)).join(', ')}`);
    for (const score of scores) expect(score).toBeGreaterThanOrEqual(0.2);
    await expectBaseline();
  });

  it('quantises as the pipeline does and encodes a matching PNG', async () => {
    const shape = [1, 3, sv.vae.config.zChannels, 6, 9];
    const latents = noise(shape, 7, 20);
    const grid: PreviewGrid = await previewer.renderFloat(latents, shape, 2);
    const image = await previewer.render(latents, shape, { frame: 2, maxSide: 9 });
    expect([image.width, image.height]).toEqual([9, 6]);
    const planar = new Float32Array(3 * 54);
    for (let p = 0; p < 54; p++) for (let c = 0; c < 3; c++) planar[c * 54 + p] = grid.rgb[p * 3 + c]!;
    expect(image.rgb).toEqual(toRgbFrames(planar, 1, 6, 9).data);
    // Large latents: values beyond ±1 occur, so the clamp is exercised too.
    expect(grid.rgb.some((v) => v > 1) && grid.rgb.some((v) => v < -1)).toBe(true);
    expect(decodePng(image.png)).toEqual({ width: 9, height: 6, rgb: image.rgb });
  });

  it('renders a constant latent as a constant image', async () => {
    const z = sv.vae.config.zChannels;
    const values = Array.from({ length: z }, (_, k) => 0.3 * (k - z / 2));
    const shape = [1, 3, z, 5, 4];
    const latents = new Float32Array(3 * z * 20);
    for (let t = 0; t < 3; t++) for (let k = 0; k < z; k++) latents.fill(values[k]!, (t * z + k) * 20, (t * z + k + 1) * 20);
    const image = await previewer.render(latents, shape);
    const first = [...image.rgb.subarray(0, 3)];
    for (let p = 0; p < image.width * image.height; p++) expect([...image.rgb.subarray(p * 3, p * 3 + 3)]).toEqual(first);
  });

  it('sizes: nearest-neighbour upscale within maxSide, never below the latent size; odd sizes; which frame', async () => {
    const z = sv.vae.config.zChannels;
    const shape = [2, 5, z, 5, 7];
    const latents = noise(shape, 9);
    const one = await previewer.render(latents, shape, { maxSide: 1 });
    expect([one.width, one.height]).toEqual([7, 5]);
    const byDefault = await previewer.render(latents, shape);
    expect([byDefault.width, byDefault.height]).toEqual([7 * 36, 5 * 36]);  // floor(256 / 7) = 36
    const three = await previewer.render(latents, shape, { maxSide: 23 });
    expect([three.width, three.height]).toEqual([21, 15]);
    for (let y = 0; y < 15; y++)
      for (let x = 0; x < 21; x++) {
        const src = (Math.floor(y / 3) * 7 + Math.floor(x / 3)) * 3;
        expect([...three.rgb.subarray((y * 21 + x) * 3, (y * 21 + x) * 3 + 3)]).toEqual([...one.rgb.subarray(src, src + 3)]);
      }
    // Default frame: the middle one (floor(5 / 2) = 2) of batch row 0; -1 is the last.
    const frameValues = z * 35;
    const frameOf = (t: number) => latents.slice(t * frameValues, (t + 1) * frameValues);
    const single = [1, 1, z, 5, 7];
    expect(one.rgb).toEqual((await previewer.render(frameOf(2), single, { maxSide: 1 })).rgb);
    expect((await previewer.render(latents, shape, { frame: -1, maxSide: 1 })).rgb).toEqual((await previewer.render(frameOf(4), single, { maxSide: 1 })).rgb);
    expect((await previewer.render(latents, shape, { frame: 0, maxSide: 1 })).rgb).not.toEqual(one.rgb);
    // A Tensor renders as its host copy does, reading back one frame of it.
    using tensor = Tensor.from(latents, shape);
    expect((await previewer.render(tensor, { frame: 3 })).png).toEqual((await previewer.render(latents, shape, { frame: 3 })).png);
    // Each PNG holds exactly its RGB, also when two renders share a size but not the block factor.
    const halfSize = await previewer.render(noise([1, 1, z, 10, 14], 10), [1, 1, z, 10, 14], { maxSide: 14 });
    const doubled = await previewer.render(latents, shape, { maxSide: 14 });
    expect([halfSize.width, halfSize.height, doubled.width, doubled.height]).toEqual([14, 10, 14, 10]);
    for (const image of [one, byDefault, three, halfSize, doubled]) expect(decodePng(image.png)).toEqual({ width: image.width, height: image.height, rgb: image.rgb });
    await expectCode(previewer.render(latents, shape, { frame: 5 }), 'ERR_ARGUMENT', 'latents');
    await expectCode(previewer.render(latents, shape, { maxSide: 0 }), 'ERR_ARGUMENT');
    tensor.dispose();
    await expectBaseline();
  });

  it('rejects a bad shape, channel count or dtype with a typed error naming the tensor', async () => {
    const z = sv.vae.config.zChannels;
    using rank4 = Tensor.zeros([3, z, 4, 4]);
    using channels = Tensor.zeros([1, 3, z + 1, 4, 4]);
    using ints = Tensor.zeros([1, 3, z, 4, 4], 'i32');
    const e = await expectCode(previewer.render(rank4), 'ERR_SHAPE', 'latents');
    expect(e.message).toContain(`[B, F, ${z}, h, w]`);
    await expectCode(previewer.render(channels), 'ERR_SHAPE', 'latents');
    await expectCode(previewer.render(ints), 'ERR_DTYPE', 'latents');
    await expectCode(previewer.render(new Float32Array(10), [1, 3, z, 4, 4]), 'ERR_SHAPE', 'latents');
    expect(() => LatentPreviewer.fromDecoded(new Float32Array(10), [1, 3, z, 4, 4], new Float32Array(10))).toThrow(expect.objectContaining({ code: 'ERR_SHAPE', tensor: 'latents' }));
  });

  it('respects an aborted signal, before and during the fit, freeing everything', async () => {
    await expectCode(LatentPreviewer.fit(sv.vae, { signal: AbortSignal.abort() }), 'ERR_ABORTED');
    const controller = new AbortController();
    const fitting = LatentPreviewer.fit(sv.vae, { signal: controller.signal });
    setTimeout(() => controller.abort(), 300);
    await expectCode(fitting, 'ERR_ABORTED');
    await expectBaseline();
  });
});

describe('live previews while a video samples', () => {
  it('calls onPreview every K steps and after the last, with the map the pipeline keeps; the last preview is the final latents’', async () => {
    const previews: { step: number; total: number; width: number; height: number; png: Buffer }[] = [];
    const video = await sv.generate({ prompt: 'a kite', frames: 17, height: 48, width: 32, steps: 7, seed: 2, previewEvery: 3, previewSize: 64, onPreview: (p) => void previews.push(p) });
    expect(previews.map((p) => [p.step, p.total])).toEqual([[3, 7], [6, 7], [7, 7]]);
    for (const p of previews) {
      expect(p.png.subarray(1, 4).toString('latin1')).toBe('PNG');
      expect(Math.max(p.width, p.height)).toBeLessThanOrEqual(64);
    }
    const kept = await sv.previewer();
    expect((await kept.render(video.latents, { maxSide: 64 })).png.equals(previews.at(-1)!.png)).toBe(true);
    video.dispose();
    await expect(sv.generate({ prompt: 'x', frames: 17, height: 32, width: 32, steps: 2, previewEvery: 0, onPreview: () => undefined })).rejects.toMatchObject({ code: 'ERR_ARGUMENT' });
    await expectBaseline();
  });

  it('keeps the fitted map in the model folder, tied to the VAE, and reuses it in a new pipeline', async () => {
    const first = (await sv.previewer()).toJSON();
    const saved = JSON.parse(readFileSync(path.join(sv.modelDir, PREVIEW_FILE), 'utf8')) as { source: string; map: unknown };
    expect(saved.source).toMatch(/decoder|safetensors/);
    expect(saved.map).toEqual(first);
    const other = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir });
    try {
      expect((await other.previewer()).toJSON()).toEqual(first);
    } finally {
      other.dispose();
    }
  });

  it('sends preview events with a small PNG on the single-process server’s event stream', async () => {
    const server = createStepVideoServer(sv, { port: 0, previewEvery: 2, limits: { maxSize: 64 } });
    const url = await server.listen();
    try {
      const created = await fetch(`${url}/v1/videos`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'a kite', frames: 17, height: 32, width: 32, steps: 4, seed: 1 }) });
      const { id } = (await created.json()) as { id: string };
      const text = await (await fetch(`${url}/v1/videos/${id}/events`)).text();
      const previews = text.split('\n\n').filter((block) => block.includes('event: preview')).map((block) => JSON.parse(block.split('\n').find((l) => l.startsWith('data: '))!.slice(6)) as { step: number; image: string; width: number });
      expect(previews.map((p) => p.step)).toEqual([2, 4]);
      for (const p of previews) {
        expect(p.image).toMatch(/^data:image\/png;base64,/);
        expect(Buffer.from(p.image.slice(22), 'base64').subarray(1, 4).toString('latin1')).toBe('PNG');
        expect(p.width).toBeLessThanOrEqual(128);
      }
    } finally {
      await server.close();
    }
  });
});

