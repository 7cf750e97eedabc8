// The video VAE on CUDA: the golden case in bf16 (within 1.25x the official bf16 run's error) and in
// f32 (1e-4), memory returned after use, and the released size with random weights: two chunks at
// 544x992 streamed within the official decode's measured peak memory (23.1 GiB).
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';

import { getDevice } from '../../lib/device.js';
import { type HostTensor, readSafetensors } from '../../lib/io/safetensors.js';
import { RELEASED_VAE_CONFIG, VideoVAE, randomVaeWeights } from '../../lib/models/vae/index.js';
import { Tensor } from '../../lib/tensor.js';
import { allFinite, expectRelErr, relErr } from '../helpers/compare.js';
import { casePath, goldenRequired, requireGolden, tinyModelDir } from '../helpers/golden.js';
import { describeGpu } from '../helpers/gpu.js';
import { Rng, randn } from '../helpers/random.js';

const OFFICIAL_DECODE_PEAK_BYTES = 23.1 * 2 ** 30;

/**
 * The VAE golden files travel in their own offline pack (docs/GPU-RUN.md), so a GPU run without it
 * skips the golden tests here (and fails when goldens are required) while the rest still runs.
 */
function vaeGoldenPresent(): boolean {
  if (!requireGolden()) return false;
  const present = existsSync(casePath('vae_case.safetensors')) && existsSync(path.join(tinyModelDir, 'vae', 'vae_v2.safetensors'));
  if (!present && goldenRequired) throw new Error(`VAE golden files missing under ${tinyModelDir}; STEPVIDEO_REQUIRE_GOLDEN=1 makes this a failure`);
  if (!present) console.warn('skipping the VAE golden tests on CUDA: vae_case.safetensors / vae_v2.safetensors not present');
  return present;
}

describeGpu('VAE v2 on CUDA', () => {
  const run = vaeGoldenPresent();
  let golden: Map<string, HostTensor>;
  let manifest: { cases: { vae: { official_bf16_rel_err_decode: number; official_bf16_rel_err_encode: number } } };
  const vaeDir = path.join(tinyModelDir, 'vae');

  beforeAll(async () => {
    if (!run) return;
    golden = await readSafetensors(casePath('vae_case.safetensors'));
    manifest = JSON.parse(readFileSync(path.join(tinyModelDir, 'manifest.json'), 'utf8'));
  });

  const onGpu = (name: string): Tensor => {
    const t = golden.get(name)!;
    return Tensor.from(t.data as Float32Array, t.shape, { device: 'cuda' });
  };
  const expected = (name: string): Float32Array => golden.get(name)!.data as Float32Array;

  for (const dtype of ['bf16', 'f32'] as const) {
    it.skipIf(!run)(`golden decode and encode in ${dtype}`, async () => {
      const device = getDevice('cuda');
      const baseline = device.memory().bytesInUse;
      {
        using vae = await VideoVAE.load(vaeDir, { device, dtype });
        using latents = onGpu('latents');
        using decoded = (await vae.decode(latents))!;
        expect(decoded.dtype).toBe(dtype);
        const decodeTolerance = dtype === 'bf16' ? 1.25 * manifest.cases.vae.official_bf16_rel_err_decode : 1e-4;
        const decodeErr = expectRelErr(await decoded.toFloat32(), expected('decoded'), decodeTolerance, `decoded ${dtype}`);
        using frames = onGpu('frames');
        using moments = await vae.encodeMoments(frames);
        const encodeTolerance = dtype === 'bf16' ? 1.25 * manifest.cases.vae.official_bf16_rel_err_encode : 1e-4;
        const encodeErr = expectRelErr(await moments.toFloat32(), expected('encoded_moments'), encodeTolerance, `encoded_moments ${dtype}`);
        console.log(`vae CUDA ${dtype}: decode rel ${decodeErr.toExponential(3)} (limit ${decodeTolerance.toExponential(3)}), encode rel ${encodeErr.toExponential(3)} (limit ${encodeTolerance.toExponential(3)})`);
      }
      await device.synchronize();
      expect(device.memory().bytesInUse).toBe(baseline);
    });
  }

  it.skipIf(!run)('bf16 streaming equals the whole decode; time slicing changes nothing', async () => {
    using vae = await VideoVAE.load(vaeDir, { device: 'cuda', dtype: 'bf16', parts: ['decoder'] });
    using sliced = await VideoVAE.load(vaeDir, { device: 'cuda', dtype: 'bf16', parts: ['decoder'], timeSliceElements: 1 });
    using latents = onGpu('latents');
    using whole = (await vae.decode(latents))!;
    const wholeValues = await whole.toFloat32();
    const frameValues = 17 * 3 * 64 * 64;
    let chunks = 0;
    await sliced.decode(latents, {
      onChunk: async (frames, index) => {
        chunks++;
        expect(relErr(await frames.toFloat32(), wholeValues.subarray(index * frameValues, (index + 1) * frameValues))).toBe(0);
      },
    });
    expect(chunks).toBe(2);
  });

  describe('released configuration, random weights', describeReleasedSize);
});

/** The released configuration with random weights: real activation sizes, memory and finiteness. */
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
}
