// The video VAE on CUDA: the golden case in bf16 (within 1.25x the official bf16 run's error r of the
// reference, 2.25 r of the official bf16 output) and in f32 (1e-4), memory returned after use, and the
// released size with random weights: two chunks at 544x992 streamed within the official decode's
// measured peak memory (23.1 GiB), and one chunk in bf16 within 1.25 r of the same chunk in f32
// (docs/TOLERANCES.md, "Text encoders and VAE goldens, bf16" and "VAE at the released size").
// Without the golden files, STEPVIDEO_VAE_GOLDEN=twin runs the golden decode and encode with random
// weights against the CPU twin, within the same bounds; on the emulated device the golden decode and
// encode run against the CPU twin at 16x16 frames and the released size is skipped (see below).
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';

import { getDevice } from '../../lib/device.js';
import { type HostTensor, readSafetensors } from '../../lib/io/safetensors.js';
import { FRAMES_PER_CHUNK, RELEASED_VAE_CONFIG, type VaeConfig, type VaePart, VideoVAE, randomVaeWeights, readVaeConfig, vaeWeightSpec } from '../../lib/models/vae/index.js';
import { TensorWeights } from '../../lib/models/weight-source.js';
import * as ops from '../../lib/ops.js';
import { Tensor } from '../../lib/tensor.js';
import { allFinite, expectRelErr, relErr } from '../helpers/compare.js';
import { casePath, goldenRequired, requireGolden, tinyModelDir } from '../helpers/golden.js';
import { describeGpu, describeUnlessEmulated, emulatedDevice, emulatedNote, itUnlessEmulated } from '../helpers/gpu.js';
import { bf16Allowance, bf16VsOfficial } from '../helpers/tolerances.js';
import { Rng, randn, randu } from '../helpers/random.js';

const OFFICIAL_DECODE_PEAK_BYTES = 23.1 * 2 ** 30;

/**
 * Where the golden decode/encode tests get their reference (STEPVIDEO_VAE_GOLDEN):
 * - unset: the golden files (vae_case.safetensors, vae/vae_v2.safetensors). They travel in their own
 *   offline pack (docs/GPU-RUN.md), so a GPU run without them skips those tests (and fails when
 *   goldens are required) while the rest still runs.
 * - 'twin' (set by the device check, whose bundle leaves the VAE goldens out): the same decode and
 *   encode with seeded random weights of the tiny config (vae/config.json, carried), CUDA against
 *   the CPU twin in the same process, with the bounds of the golden comparisons (see `twinBounds`).
 */
const goldenSetting = process.env.STEPVIDEO_VAE_GOLDEN ?? '';
if (goldenSetting !== '' && goldenSetting !== 'twin') throw new Error(`STEPVIDEO_VAE_GOLDEN must be 'twin' or unset, got '${goldenSetting}'`);
const twinMode = goldenSetting === 'twin';

type VaeManifest = {
  cases: { vae: { official_bf16_rel_err_decode: number; official_bf16_rel_err_encode: number; latents_shape_bfchw: number[]; frames_shape: number[] } };
};

/** 'golden': the golden files; 'twin': random weights against the CPU twin; 'none': skip (or fail when goldens are required). */
function vaeGoldenMode(): 'golden' | 'twin' | 'none' {
  if (!requireGolden()) return 'none';  // the manifest (r, shapes) is needed either way
  if (twinMode) {
    if (existsSync(path.join(tinyModelDir, 'vae', 'config.json'))) return 'twin';
    const message = `vae/config.json missing under ${tinyModelDir}: STEPVIDEO_VAE_GOLDEN=twin needs the tiny config`;
    if (goldenRequired) throw new Error(`${message}; STEPVIDEO_REQUIRE_GOLDEN=1 makes this a failure`);
    console.warn(`skipping the VAE golden tests on CUDA: ${message}`);
    return 'none';
  }
  const present = existsSync(casePath('vae_case.safetensors')) && existsSync(path.join(tinyModelDir, 'vae', 'vae_v2.safetensors'));
  if (!present && goldenRequired) throw new Error(`VAE golden files missing under ${tinyModelDir}; STEPVIDEO_REQUIRE_GOLDEN=1 makes this a failure (STEPVIDEO_VAE_GOLDEN=twin compares with the CPU twin instead)`);
  if (!present) console.warn('skipping the VAE golden tests on CUDA: vae_case.safetensors / vae_v2.safetensors not present (STEPVIDEO_VAE_GOLDEN=twin compares with the CPU twin instead)');
  return present ? 'golden' : 'none';
}

describeGpu('VAE v2 on CUDA', () => {
  const mode = vaeGoldenMode();
  const vaeDir = path.join(tinyModelDir, 'vae');
  // The golden case decodes 34 frames of 64x64 and encodes 17: about ten minutes for these tests on
  // the emulated device (test/helpers/gpu.ts). There the same comparisons run against the CPU twin
  // (the float64 reference's f32 stand-in, 7e-7 from it) on seeded inputs of 16x16 frames.
  if (mode === 'golden' && !emulatedDevice) describeGoldenFiles(vaeDir);
  else if (mode !== 'none') {
    const note = emulatedNote('frames 64x64 -> 16x16 (latents 4x4 -> 1x1), against the CPU twin, to fit CI time');
    describeAgainstTwin(vaeDir, mode === 'twin' ? 'random' : 'golden', note);
  } else {
    for (const name of ['golden decode and encode in bf16', 'golden decode and encode in f32', 'bf16 streaming equals the whole decode; time slicing changes nothing']) {
      it.skip(`${name} [skipped: no VAE goldens; STEPVIDEO_VAE_GOLDEN=twin compares with the CPU twin]`, () => {});
    }
  }

  // The released size is a real GPU's (its peak memory is the official decode's 23.1 GiB; the
  // emulated device holds 8) and about 20 MFLOP per output pixel: even one 17-frame chunk at 16x16
  // takes minutes emulated. Its convolutions run at the real widths in the kernel cases there.
  describeUnlessEmulated('released configuration, random weights', 'a GPU-only size: 544x992 frames at the released widths take hours there and more than its 8 GiB', describeReleasedSize);
});

/** The golden case's decode and encode (bf16 and f32) and streaming, against the golden files. */
function describeGoldenFiles(vaeDir: string): void {
  let golden: Map<string, HostTensor>;
  let manifest: VaeManifest;

  beforeAll(async () => {
    golden = await readSafetensors(casePath('vae_case.safetensors'));
    manifest = JSON.parse(readFileSync(path.join(tinyModelDir, 'manifest.json'), 'utf8'));
  });

  const onGpu = (name: string): Tensor => {
    const t = golden.get(name)!;
    return Tensor.from(t.data as Float32Array, t.shape, { device: 'cuda' });
  };
  const expected = (name: string): Float32Array => golden.get(name)!.data as Float32Array;

  for (const dtype of ['bf16', 'f32'] as const) {
    it(`golden decode and encode in ${dtype}`, async () => {
      const device = getDevice('cuda');
      const baseline = device.memory().bytesInUse;
      {
        using vae = await VideoVAE.load(vaeDir, { device, dtype });
        // f32: the golden contract (1e-4). bf16: the VAE has no quantisation quirk, so its CPU twin is
        // the float64 reference (7e-7 apart) and r = official_bf16_rel_err: within rho = 1.25 r of the
        // reference (the golden contract) and rho + r of the official bf16 output (docs/TOLERANCES.md).
        const check = async (out: Tensor, name: 'decoded' | 'encoded_moments', r: number) => {
          const got = await out.toFloat32();
          const err = expectRelErr(got, expected(name), dtype === 'bf16' ? bf16Allowance(r) : 1e-4, `${name} ${dtype}`);
          const toOfficial = relErr(got, expected(`${name}_bf16_official`));
          if (dtype === 'bf16') expectRelErr(got, expected(`${name}_bf16_official`), bf16VsOfficial(r), `${name} bf16 vs the official bf16 output`);
          console.log(`vae CUDA ${dtype} ${name}: rel ${err.toExponential(3)} to float64, ${toOfficial.toExponential(3)} to the official bf16 output (r ${r.toExponential(3)})`);
        };
        using latents = onGpu('latents');
        using decoded = (await vae.decode(latents))!;
        expect(decoded.dtype).toBe(dtype);
        await check(decoded, 'decoded', manifest.cases.vae.official_bf16_rel_err_decode);
        using frames = onGpu('frames');
        using moments = await vae.encodeMoments(frames);
        await check(moments, 'encoded_moments', manifest.cases.vae.official_bf16_rel_err_encode);
      }
      await device.synchronize();
      expect(device.memory().bytesInUse).toBe(baseline);
    });
  }

  it('bf16 streaming equals the whole decode; time slicing changes nothing', async () => {
    using vae = await VideoVAE.load(vaeDir, { device: 'cuda', dtype: 'bf16', parts: ['decoder'] });
    using sliced = await VideoVAE.load(vaeDir, { device: 'cuda', dtype: 'bf16', parts: ['decoder'], timeSliceElements: 1 });
    using latents = onGpu('latents');
    await expectStreamingEqualsWhole(vae, sliced, latents);
  });
}

/** Decodes `latents` whole with `vae` and streamed with `sliced` (time slicing on): chunk for chunk the same values. */
async function expectStreamingEqualsWhole(vae: VideoVAE, sliced: VideoVAE, latents: Tensor): Promise<void> {
  using whole = (await vae.decode(latents))!;
  const wholeValues = await whole.toFloat32();
  const [, frames, channels, height, width] = whole.shape as [number, number, number, number, number];
  const frameValues = FRAMES_PER_CHUNK * channels * height * width;
  let chunks = 0;
  await sliced.decode(latents, {
    onChunk: async (chunk, index) => {
      chunks++;
      expect(relErr(await chunk.toFloat32(), wholeValues.subarray(index * frameValues, (index + 1) * frameValues))).toBe(0);
    },
  });
  expect(chunks).toBe(frames / FRAMES_PER_CHUNK);
  expect(chunks).toBe(2);
}

/**
 * The golden case's decode and encode against the CPU twin in the same process: with seeded random
 * weights of the tiny config ('random', STEPVIDEO_VAE_GOLDEN=twin) or with the golden weights on the
 * emulated device ('golden'), on seeded inputs of the golden case's shapes (16x16 frames on the
 * emulated device).
 *
 * Bounds (docs/TOLERANCES.md, "Text encoders and VAE goldens, bf16"): the golden comparisons'
 * against the reference. The CPU twin T is the f32 forward, 7e-7 from the float64 reference E on
 * the golden case (test/golden/vae.test.ts): the same graph and f32 sums here, so a bound held
 * against E holds against T to within 1e-6. f32: the golden contract 1e-4. bf16: rho = 1.25 r,
 * r = official_bf16_rel_err of the manifest (decode 1.494e-2, encode 1.351e-2), at the golden
 * case's size: the bf16 run rounds at the same points (weights on load, every activation between
 * kernels, f32 accumulation inside each) whatever the weights are, and random weights (uniform with
 * std 1/sqrt(fan-in), norms 1 +- 0.1, biases +- 0.05) keep every activation O(1) as the trained ones
 * do, with GroupNorm renormalising each block, so a rounding is amplified alike: measured on the
 * emulated device on the same random inputs, bf16 against the twin, random weights give 1.42e-2 and
 * the golden ones 1.33e-2 at 32x32 frames. This is the argument the released-size check makes for
 * random weights ("VAE at the released size"). The amplification does depend on the frame size:
 * at 16x16 the same decoder is 2.3e-2 from its twin with either weights (each convolution there
 * within one rounding of its twin), beyond rho, so the emulated device, which affords only 16x16,
 * leaves the bf16 comparison to a GPU. What has no counterpart without the golden files is the
 * comparison with the official bf16 output (rho + r), which the triangle through the twin implies.
 */
function describeAgainstTwin(vaeDir: string, weights: 'random' | 'golden', emulated: string): void {
  let config: VaeConfig;
  let manifest: VaeManifest;
  beforeAll(async () => {
    config = await readVaeConfig(vaeDir);
    manifest = JSON.parse(readFileSync(path.join(tinyModelDir, 'manifest.json'), 'utf8'));
  });
  const twinLabel = weights === 'random' ? ' [STEPVIDEO_VAE_GOLDEN=twin: seeded random weights of the tiny config, against the CPU twin]' : '';
  const label = twinLabel + emulated;

  /** The VAE on a device: the golden weights, or seeded random ones (bf16 values on CUDA: the twin's values rounded once, as on load). */
  const load = async (device: 'cpu' | 'cuda', dtype: 'f32' | 'bf16', options: { parts?: VaePart[]; timeSliceElements?: number } = {}): Promise<VideoVAE> => {
    const parts = options.parts ?? ['encoder', 'decoder'];
    if (weights === 'golden') return VideoVAE.load(vaeDir, { device, dtype, parts, ...options });
    const source = randomVaeWeights(config, parts, { device: getDevice(device), dtype, seed: 13 });
    return VideoVAE.fromWeights(config, source, { device, dtype, parts, ...options });
  };

  /** Seeded inputs of the golden case's shapes (16x16 frames on the emulated device). */
  const inputs = () => {
    const [B, F, Z, h, w] = manifest.cases.vae.latents_shape_bfchw as [number, number, number, number, number];
    const [, T, C, H, W] = manifest.cases.vae.frames_shape as [number, number, number, number, number];
    const shrink = emulatedDevice ? 4 : 1;
    const latentsShape = [B, F, Z, h / shrink, w / shrink];
    const framesShape = [B, T, C, H / shrink, W / shrink];
    const rng = new Rng(79);
    const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
    return { latentsShape, latents: randn(rng, count(latentsShape)), framesShape, frames: randu(rng, count(framesShape), -1, 1) };
  };

  /** The CPU twin's decode and encode of `inputs()`, computed once for both dtypes. */
  let twinRun: Promise<{ decoded: Float32Array; moments: Float32Array }> | undefined;
  const twinOutputs = () =>
    (twinRun ??= (async () => {
      const data = inputs();
      using vae = await load('cpu', 'f32');
      using latents = Tensor.from(data.latents, data.latentsShape, { device: 'cpu' });
      using decoded = (await vae.decode(latents))!;
      using frames = Tensor.from(data.frames, data.framesShape, { device: 'cpu' });
      using moments = await vae.encodeMoments(frames);
      return { decoded: (await decoded.toFloat32()).slice(), moments: (await moments.toFloat32()).slice() };
    })());

  for (const dtype of ['bf16', 'f32'] as const) {
    const name = `golden decode and encode in ${dtype}${dtype === 'bf16' ? twinLabel : label}`;
    const body = async () => {
      const data = inputs();
      const twin = await twinOutputs();
      const device = getDevice('cuda');
      await device.synchronize();
      const baseline = device.memory().bytesInUse;
      {
        using vae = await load('cuda', dtype);
        const check = async (out: Tensor, want: Float32Array, name: string, r: number) => {
          const bound = dtype === 'bf16' ? bf16Allowance(r) : 1e-4;
          const err = expectRelErr(await out.toFloat32(), want, bound, `${name} ${dtype} vs the CPU twin`);
          console.log(`vae CUDA ${dtype} ${name} (${weights} weights): rel ${err.toExponential(3)} to the CPU twin (bound ${bound.toExponential(3)}, r ${r.toExponential(3)})`);
        };
        using latents = Tensor.from(data.latents, data.latentsShape, { device: 'cuda' });
        using decoded = (await vae.decode(latents))!;
        expect(decoded.dtype).toBe(dtype);
        expect(decoded.shape).toEqual([data.latentsShape[0], data.latentsShape[1]! / 3 * FRAMES_PER_CHUNK, 3, data.latentsShape[3]! * 16, data.latentsShape[4]! * 16]);
        await check(decoded, twin.decoded, 'decoded', manifest.cases.vae.official_bf16_rel_err_decode);
        using frames = Tensor.from(data.frames, data.framesShape, { device: 'cuda' });
        using moments = await vae.encodeMoments(frames);
        await check(moments, twin.moments, 'encoded_moments', manifest.cases.vae.official_bf16_rel_err_encode);
      }
      await device.synchronize();
      expect(device.memory().bytesInUse).toBe(baseline);
    };
    if (dtype === 'bf16') itUnlessEmulated(name, 'rho = 1.25 r holds at the golden 64x64 frames (minutes a dtype there); at 16x16 the bf16 noise is 2.3e-2', body);
    else it(name, body);
  }

  it(`bf16 streaming equals the whole decode; time slicing changes nothing${label}`, async () => {
    const data = inputs();
    using vae = await load('cuda', 'bf16', { parts: ['decoder'] });
    using sliced = await load('cuda', 'bf16', { parts: ['decoder'], timeSliceElements: 1 });
    using latents = Tensor.from(data.latents, data.latentsShape, { device: 'cuda' });
    await expectStreamingEqualsWhole(vae, sliced, latents);
  });
}

/** The released configuration with random weights: real activation sizes, memory, finiteness, accuracy. */
function describeReleasedSize(): void {
  let vae: VideoVAE | undefined;
  const device = () => getDevice('cuda');
  beforeAll(() => {
    const source = randomVaeWeights(RELEASED_VAE_CONFIG, ['decoder'], { device: device(), dtype: 'bf16', seed: 5 });
    vae = VideoVAE.fromWeights(RELEASED_VAE_CONFIG, source, { device: device(), dtype: 'bf16', parts: ['decoder'] });
  });
  afterAll(() => vae?.dispose());

  it('released size: two chunks at 544x992 stream within the official peak memory, finite', async () => {
    const d = device();
    const rng = new Rng(77);
    using latents = Tensor.from(randn(rng, 6 * 64 * 34 * 62), [1, 6, 64, 34, 62], { device: d, dtype: 'bf16' });
    await d.synchronize();
    const before = d.memory().bytesInUse;
    d.resetPeakMemory();
    const started = performance.now();
    const delivered: number[] = [];
    await vae!.decode(latents, {
      onChunk: async (frames, index) => {
        expect(frames.shape).toEqual([1, 17, 3, 544, 992]);
        const values = await frames.toFloat32();
        expect(allFinite(values)).toBe(true);
        delivered.push(index);
      },
    });
    await d.synchronize();
    const peak = d.memory().peakBytes;
    console.log(`vae released size, 2 chunks: ${((performance.now() - started) / 1000).toFixed(2)} s, peak ${(peak / 2 ** 30).toFixed(2)} GiB (weights ${(before / 2 ** 30).toFixed(2)} GiB)`);
    expect(delivered).toEqual([0, 1]);
    expect(peak).toBeLessThanOrEqual(OFFICIAL_DECODE_PEAK_BYTES);
    expect(d.memory().bytesInUse).toBe(before);
  });

  it('released size: one chunk at 544x992 in bf16 within 1.25 r of the same chunk in f32 (same weights and latents)', async () => {
    // The released decoder has the golden decoder's depth and blocks (only its widths differ, which
    // changes f32 sums alone), so its bf16 noise is held to the golden's rule: 1.25 r, r the official
    // bf16 decode's error (from the golden manifest; 1.494e-2 when the goldens are not here).
    const manifestFile = path.join(tinyModelDir, 'manifest.json');
    const r = existsSync(manifestFile) ? (JSON.parse(readFileSync(manifestFile, 'utf8')) as { cases: { vae: { official_bf16_rel_err_decode: number } } }).cases.vae.official_bf16_rel_err_decode : 1.494e-2;
    const d = device();
    const source = randomVaeWeights(RELEASED_VAE_CONFIG, ['decoder'], { device: d, dtype: 'bf16', seed: 5 });
    const f32Weights = new Map([...vaeWeightSpec(RELEASED_VAE_CONFIG, ['decoder']).keys()].map((name) => [name, ops.cast(source.get(name), 'f32')]));
    source.dispose();
    using f32 = VideoVAE.fromWeights(RELEASED_VAE_CONFIG, new TensorWeights(f32Weights), { device: d, dtype: 'f32', parts: ['decoder'] });
    using latents = Tensor.from(randn(new Rng(78), 3 * 64 * 34 * 62), [1, 3, 64, 34, 62], { device: d, dtype: 'bf16' });
    using latents32 = ops.cast(latents, 'f32');
    using half = (await vae!.decode(latents))!;
    const got = await half.toFloat32();
    half.dispose();
    using full = (await f32.decode(latents32))!;
    expect(full.shape).toEqual([1, 17, 3, 544, 992]);
    const rel = expectRelErr(got, await full.toFloat32(), bf16Allowance(r), 'released-size chunk, bf16 vs f32');
    console.log(`vae released size, one chunk: bf16 vs f32 rel ${rel.toExponential(3)} (bound ${bf16Allowance(r).toExponential(3)})`);
  });
}
