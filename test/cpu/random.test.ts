// The noise generator (native/random.h through lib/kernels/random.ts and lib/sampler/noise.ts) on
// the CPU: the Philox reference against Random123's published answers, the native stream against
// that reference, its Gaussian statistics, chunking, seeds, and errors.
import { describe, expect, it } from 'vitest';

import { isStepVideoError } from '../../lib/errors.js';
import { randomNormal, seedWords } from '../../lib/kernels/random.js';
import { generateNoise, latentShape } from '../../lib/sampler/noise.js';
import { maxAbsErr, relErr } from '../helpers/compare.js';
import { normalStream, philox4x32x10 } from '../helpers/philox.js';

async function values(shape: number[], seed: number | bigint, offset = 0): Promise<Float32Array> {
  using t = randomNormal(shape, { seed, offset, device: 'cpu' });
  return (await t.toFloat32()).slice();
}

const bits = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

function expectError(fn: () => unknown, code: string, pattern: RegExp): void {
  try {
    fn();
  } catch (error) {
    expect(isStepVideoError(error), String(error)).toBe(true);
    expect((error as { code: string }).code).toBe(code);
    expect((error as Error).message).toMatch(pattern);
    return;
  }
  throw new Error('expected an error');
}

/** Φ(x) via erfc (Numerical Recipes' Chebyshev fit, |error| < 1.2e-7). */
function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.5 * z);
  const erfc =
    t *
    Math.exp(
      -z * z - 1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - erfc / 2 : erfc / 2;
}

describe('Philox4x32-10 reference (BigInt)', () => {
  it("reproduces Random123's known-answer vectors", () => {
    const hex = (w: bigint[]): string[] => w.map((v) => v.toString(16).padStart(8, '0'));
    expect(hex(philox4x32x10([0n, 0n, 0n, 0n], [0n, 0n]))).toEqual(['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']);
    const ones = 0xffffffffn;
    expect(hex(philox4x32x10([ones, ones, ones, ones], [ones, ones]))).toEqual(['408f276d', '41c83b0e', 'a20bc7c6', '6d5451fd']);
    expect(hex(philox4x32x10([0x243f6a88n, 0x85a308d3n, 0x13198a2en, 0x03707344n], [0xa4093822n, 0x299f31d0n]))).toEqual([
      'd16cfe09',
      '94fdcceb',
      '5001e420',
      '24126ea1',
    ]);
  });
});

describe('randomNormal on the CPU', () => {
  it('is the Philox + Box-Muller stream, to float32 accuracy, over 2^18 values for each of three seeds', async () => {
    const n = 1 << 18;
    for (const [seed, offset] of [[0n, 0], [123_456_789n, 7], [(1n << 64n) - 1n, 2 ** 45 + 2]] as const) {
      const got = await values([n], seed, offset);
      const ref = normalStream(seed, offset, n);
      const rel = relErr(got, ref);
      const maxAbs = maxAbsErr(got, ref);
      console.log(`noise seed ${seed} offset ${offset}: rel ${rel.toExponential(2)}, max abs ${maxAbs.toExponential(2)} vs float64`);
      expect(rel).toBeLessThan(2e-7);
      expect(maxAbs).toBeLessThan(2e-6);
    }
  });

  it('is standard normal: moments, tail mass and a Kolmogorov-Smirnov test on 2^20 values', async () => {
    const n = 1 << 20;
    const z = await values([n], 42n);
    let mean = 0;
    for (const v of z) mean += v;
    mean /= n;
    let variance = 0;
    let skew = 0;
    let kurtosis = 0;
    for (const v of z) {
      const d = v - mean;
      variance += d * d;
      skew += d * d * d;
      kurtosis += d * d * d * d;
    }
    variance /= n;
    skew /= n * variance ** 1.5;
    kurtosis /= n * variance * variance;
    // Standard errors at n = 2^20: mean 0.001, variance 0.0014, skewness 0.0024, kurtosis 0.0048.
    expect(Math.abs(mean)).toBeLessThan(0.005);
    expect(Math.abs(variance - 1)).toBeLessThan(0.007);
    expect(Math.abs(skew)).toBeLessThan(0.012);
    expect(Math.abs(kurtosis - 3)).toBeLessThan(0.025);
    const sorted = Float64Array.from(z).sort();
    let ks = 0;
    for (let i = 0; i < n; i++) {
      const cdf = normalCdf(sorted[i]!);
      ks = Math.max(ks, Math.abs(cdf - i / n), Math.abs((i + 1) / n - cdf));
    }
    console.log(`noise moments: mean ${mean.toFixed(5)}, var ${variance.toFixed(5)}, skew ${skew.toFixed(4)}, kurt ${kurtosis.toFixed(4)}; KS D = ${ks.toExponential(2)}`);
    expect(ks).toBeLessThan(1.95 / Math.sqrt(n)); // the 0.1% critical value
    const tail = z.filter((v) => Math.abs(v) > 4).length;
    // P(|z| > 4) = 6.3e-5: about 66 of 2^20.
    expect(tail).toBeGreaterThan(30);
    expect(tail).toBeLessThan(110);
  });

  it('lines up across chunks: any offset continues the same stream, bit for bit', async () => {
    const whole = await values([1000], 9n);
    const parts = [...(await values([3], 9n, 0)), ...(await values([258], 9n, 3)), ...(await values([739], 9n, 261))];
    expect(Array.from(bits(Float32Array.from(parts)))).toEqual(Array.from(bits(whole)));
    const shaped = await values([2, 5, 100], 9n);
    expect(Array.from(bits(shaped))).toEqual(Array.from(bits(whole)));
  });

  it('depends on every bit of the seed and on nothing else', async () => {
    const a = await values([257], 5);
    expect(Array.from(bits(await values([257], 5n)))).toEqual(Array.from(bits(a)));
    for (const other of [4n, 5n + (1n << 32n), 5n + (1n << 63n)]) {
      const b = await values([257], other);
      expect(b.filter((v, i) => v === a[i]).length).toBeLessThan(3);
    }
  });

  it('generateNoise is this stream, f32, on the requested device', async () => {
    using noise = generateNoise([1, 3, 64, 4, 6], 1234, 'cpu');
    expect(noise.dtype).toBe('f32');
    expect(noise.device.name).toBe('cpu');
    expect(Array.from(bits(await noise.toFloat32()))).toEqual(Array.from(bits(await values([1, 3, 64, 4, 6], 1234))));
  });

  it('rejects bad seeds, offsets and dtypes', () => {
    expectError(() => randomNormal([4], { seed: -1, device: 'cpu' }), 'ERR_ARGUMENT', /seed out of range/);
    expectError(() => randomNormal([4], { seed: 1.5, device: 'cpu' }), 'ERR_ARGUMENT', /seed must be a safe integer or a bigint/);
    expectError(() => randomNormal([4], { seed: 1n << 64n, device: 'cpu' }), 'ERR_ARGUMENT', /expected an integer in \[0, 2\^64\)/);
    expectError(() => randomNormal([4], { seed: 1, offset: -4, device: 'cpu' }), 'ERR_ARGUMENT', /offset must be a non-negative safe integer/);
    expectError(() => randomNormal([4], { seed: 1, dtype: 'bf16', device: 'cpu' }), 'ERR_DTYPE', /randomNormal on cpu produces f32: got bf16/);
    expectError(() => randomNormal([4], { seed: 1, offset: 2 ** 53 - 2, device: 'cpu' }), 'ERR_ARGUMENT', /leaves the stream range/);
    expect(seedWords(0x1_0000_0002)).toEqual([2, 1]);
  });
});

describe('latentShape', () => {
  it('maps video sizes to latent shapes as the VAE compresses them', () => {
    expect(latentShape({ frames: 204, height: 544, width: 992 })).toEqual([1, 36, 64, 34, 62]);
    expect(latentShape({ frames: 136, height: 768, width: 768, batch: 2 })).toEqual([2, 24, 64, 48, 48]);
    expectError(() => latentShape({ frames: 200, height: 544, width: 992 }), 'ERR_ARGUMENT', /frames must be a positive multiple of 17: got 200/);
    expectError(() => latentShape({ frames: 17, height: 540, width: 992 }), 'ERR_ARGUMENT', /height must be a positive multiple of 16/);
  });
});
