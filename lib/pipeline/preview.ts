// Live previews of latents while a video samples: a linear map from the z latent channels to RGB,
// fitted once per VAE by least squares against the VAE's own decoding, then applied per latent
// pixel on the host.
//
// Cost of a render: only the rendered latent frame of batch row 0 crosses to the host (a view of the
// tensor: z·h·w values, 540 KB for a released 64 × 34 × 62 frame; on CUDA the read waits for the
// queue, idle anyway after a sampler step), then z·h·w·3 multiply-adds (0.4 M released), a nearest
// upscale and a PNG: under a millisecond on the host.
//
// Alignment of the fit (the decoder's nominal receptive geometry, spec §3.4): latent pixel (y, x)
// decodes to the 16 × 16 pixel block [16y, 16y + 16) × [16x, 16x + 16); latent frame t of a chunk
// decodes to frames {0}, [1, 9), [9, 17) for t = 0, 1, 2 (the causal first frame alone, then 8 frames
// each: 3 latents → ×2 time with the first frame dropped → 5, ×2, ×2 → 20, first 3 dropped → 17).
// Each target is the mean of the decoded RGB over that frame group and block.
//
// Accuracy: the decoder is not linear (GroupNorms over each chunk, SiLU, attention), so the map is
// an approximation whose quality depends on the VAE. With the built-in model's random-weight VAE no
// linear map does well (test/cpu/preview.test.ts measures ours against the best one in hindsight).
import { constants as zlibConstants } from 'node:zlib';

import { StepVideoError, throwIfAborted } from '../errors.js';
import { FRAMES_PER_CHUNK, LATENTS_PER_CHUNK, SPATIAL_FACTOR } from '../models/vae/config.js';
import type { VideoVAE } from '../models/vae/model.js';
import { formatShape } from '../shape.js';
import { Tensor } from '../tensor.js';
import { pngFromScanlines } from '../video/png.js';
import { toRgbFrames } from '../video/frames.js';

/** What a pipeline reports after a denoising step when previews are on. */
export interface PreviewEvent {
  step: number;
  total: number;
  width: number;
  height: number;
  png: Buffer;
}

export interface PreviewImage {
  width: number;
  height: number;
  /** Row-major [height, width, 3], 8 bits per channel. */
  rgb: Uint8Array;
  png: Buffer;
}

/** @internal The map's output before quantisation, on the latent grid. */
export interface PreviewGrid {
  /** Latent width and height. */
  width: number;
  height: number;
  /** Row-major [height, width, 3], nominally [-1, 1] (not clamped). */
  rgb: Float32Array;
}

export interface PreviewFitOptions {
  signal?: AbortSignal;
  /** Seed of the fitting latents (default 0). */
  seed?: number;
}

export interface PreviewRenderOptions {
  /** Latent frame (default the middle one, floor(F / 2)); negative counts from the end. */
  frame?: number;
  /** Nearest-neighbour upscale by the largest integer factor keeping the longer side ≤ maxSide (default 256); never below the latent size. */
  maxSide?: number;
}

/** The cacheable form of a fitted map (toJSON / fromJSON). */
export interface LatentPreviewerJSON {
  format: 'stepvideo-latent-preview';
  version: 1;
  zChannels: number;
  /** [3][z]: RGB = weight · latent + bias. */
  weight: number[][];
  bias: number[];
  /** How it was fitted: the seed (fit() only), the number of latent pixels, and R² per channel on them. */
  fit: { seed?: number; samples: number; r2: number[] };
}

const JSON_FORMAT = 'stepvideo-latent-preview';
const DEFAULT_MAX_SIDE = 256;
/** Frame groups of a chunk's latent frames (see the header). */
const FRAME_GROUPS: ReadonlyArray<readonly [number, number]> = [[0, 1], [1, 9], [9, 17]];
/** Latent pixels per unknown the fit aims for at least (the map has z + 1 unknowns per colour). */
const SAMPLES_PER_UNKNOWN = 12;
const MIN_FIT_SIDE = 8;
/** Standard deviations of the fitting rows: unit noise (the sampler's start) and the wider spread of sampled latents. */
const FIT_SCALES: readonly number[] = [1, 3];

export class LatentPreviewer {
  readonly zChannels: number;
  /** [3 · z] row-major. */
  readonly #weight: Float64Array;
  readonly #bias: Float64Array;
  readonly #fit: LatentPreviewerJSON['fit'];
  /** The PNG scanline buffer of the last render, and the image geometry it was laid out for. */
  #scanlines: { key: string; data: Uint8Array } | undefined;

  private constructor(zChannels: number, weight: Float64Array, bias: Float64Array, fit: LatentPreviewerJSON['fit']) {
    this.zChannels = zChannels;
    this.#weight = weight;
    this.#bias = bias;
    this.#fit = fit;
  }

  /**
   * Fits the map against `vae`'s decoder: seeded white-noise latents of one chunk per batch row,
   * [B, 3, z, s, s] (rows of standard deviation 1 and 3; s = 8, or 16 from z > 16; B ≥ 2 and
   * B · 3 · s² ≥ 12 (z + 1) latent pixels), decoded, averaged onto the latent grid, and solved by
   * least squares in float64. The cost at load is that one small decode (B chunks of 16s × 16s
   * pixels); cache the result with toJSON.
   */
  static async fit(vae: VideoVAE, options: PreviewFitOptions = {}): Promise<LatentPreviewer> {
    const { signal } = options;
    const seed = options.seed ?? 0;
    if (!Number.isSafeInteger(seed) || seed < 0) throw new StepVideoError('ERR_ARGUMENT', 'preview fit seed must be a non-negative safe integer', { got: seed });
    throwIfAborted(signal, 'preview fitting');
    const z = vae.config.zChannels;
    const { side, batch } = fitGeometry(z);
    const latents = fittingLatents(batch, z, side, seed);
    let frames: Float32Array;
    {
      using input = Tensor.from(latents, [batch, LATENTS_PER_CHUNK, z, side, side], { dtype: 'f32', device: vae.device });
      using decoded = (await vae.decode(input, signal ? { signal } : {}))!;
      frames = await decoded.toFloat32();
    }
    throwIfAborted(signal, 'preview fitting');
    return LatentPreviewer.#fitDecoded(latents, [batch, LATENTS_PER_CHUNK, z, side, side], frames, seed);
  }

  /**
   * A map fitted to given latents [B, F, z, h, w] and their decoding [B, 17F/3, 3, 16h, 16w] (host
   * f32, as VideoVAE.decode returns them): e.g. a video decoded already. Same least squares as fit().
   */
  static fromDecoded(latents: Float32Array, shape: readonly number[], frames: Float32Array): LatentPreviewer {
    if (shape.length !== 5 || shape.some((d) => !Number.isSafeInteger(d) || d <= 0) || shape[1]! % LATENTS_PER_CHUNK !== 0) {
      throw new StepVideoError('ERR_SHAPE', 'latents must be [B, 3k, z, h, w]', { got: formatShape(shape), tensor: 'latents' });
    }
    const [B, F, z, h, w] = shape as [number, number, number, number, number];
    if (latents.length !== B * F * z * h * w) throw new StepVideoError('ERR_SHAPE', 'latents do not match their stated shape', { expected: B * F * z * h * w, got: latents.length, tensor: 'latents' });
    const expected = B * (F / LATENTS_PER_CHUNK) * FRAMES_PER_CHUNK * 3 * h * w * SPATIAL_FACTOR * SPATIAL_FACTOR;
    if (frames.length !== expected) {
      throw new StepVideoError('ERR_SHAPE', 'decoded frames do not match the latents', { expected: `${expected} values ([${B}, ${(F / LATENTS_PER_CHUNK) * FRAMES_PER_CHUNK}, 3, ${h * SPATIAL_FACTOR}, ${w * SPATIAL_FACTOR}])`, got: frames.length, tensor: 'frames' });
    }
    if (B * F * h * w <= z + 1) throw new StepVideoError('ERR_ARGUMENT', 'too few latent pixels to fit a preview map', { expected: `more than ${z + 1}`, got: B * F * h * w, tensor: 'latents' });
    return LatentPreviewer.#fitDecoded(latents, shape, frames, undefined);
  }

  static #fitDecoded(latents: Float32Array, shape: readonly number[], frames: Float32Array, seed: number | undefined): LatentPreviewer {
    const [B, F, z, h, w] = shape as [number, number, number, number, number];
    const targets = poolFrames(frames, B, h, w);
    const samples = B * F * h * w;
    const planes = latentPlanes(latents, B * F, z, h * w);
    const { weight, bias } = solveLeastSquares(planes, targets, samples, z);
    const predicted = new Float32Array(samples * 3);
    applyMap(weight, bias, planes, samples, predicted);
    return new LatentPreviewer(z, weight, bias, { ...(seed !== undefined ? { seed } : {}), samples, r2: rSquared(targets, predicted).perChannel });
  }

  /** A map saved by toJSON (ERR_ARGUMENT when it is not one). */
  static fromJSON(json: unknown): LatentPreviewer {
    const bad = (what: string, got?: unknown) => new StepVideoError('ERR_ARGUMENT', `not a latent preview map: ${what}`, got === undefined ? {} : { got });
    if (typeof json !== 'object' || json === null) throw bad('expected an object', typeof json);
    const o = json as Partial<LatentPreviewerJSON>;
    if (o.format !== JSON_FORMAT || o.version !== 1) throw bad(`expected format '${JSON_FORMAT}' version 1`, `${String(o.format)} ${String(o.version)}`);
    const z = o.zChannels;
    if (!Number.isSafeInteger(z) || z! <= 0) throw bad('zChannels must be a positive integer', z);
    const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
    if (!Array.isArray(o.weight) || o.weight.length !== 3 || !o.weight.every((row) => Array.isArray(row) && row.length === z && row.every(finite))) {
      throw bad(`weight must be 3 rows of ${z} finite numbers`);
    }
    if (!Array.isArray(o.bias) || o.bias.length !== 3 || !o.bias.every(finite)) throw bad('bias must be 3 finite numbers');
    const fit = o.fit;
    const meta = { ...(finite(fit?.seed) ? { seed: fit.seed } : {}), samples: finite(fit?.samples) ? fit.samples : 0, r2: Array.isArray(fit?.r2) ? fit.r2.filter(finite) : [] };
    return new LatentPreviewer(z!, Float64Array.from(o.weight.flat()), Float64Array.from(o.bias), meta);
  }

  toJSON(): LatentPreviewerJSON {
    const z = this.zChannels;
    const weight = [0, 1, 2].map((c) => Array.from(this.#weight.subarray(c * z, (c + 1) * z)));
    return { format: JSON_FORMAT, version: 1, zChannels: z, weight, bias: Array.from(this.#bias), fit: { ...this.#fit, r2: [...this.#fit.r2] } };
  }

  /** R² per colour channel on the fitting latents. */
  get fitQuality(): { samples: number; r2: readonly number[] } {
    return { samples: this.#fit.samples, r2: [...this.#fit.r2] };
  }

  /**
   * One latent frame of batch row 0 of latents [B, F, z, h, w] as an RGB image, quantised as the
   * pipeline's frames are (clamp to [-1, 1], (x + 1) · 127.5, truncated), upscaled by nearest
   * neighbour, and as a PNG. Reads back only that frame from a Tensor (z · h · w values).
   */
  async render(latents: Tensor, options?: PreviewRenderOptions): Promise<PreviewImage>;
  async render(latents: Float32Array, shape: readonly number[], options?: PreviewRenderOptions): Promise<PreviewImage>;
  async render(latents: Tensor | Float32Array, shapeOrOptions?: readonly number[] | PreviewRenderOptions, maybeOptions?: PreviewRenderOptions): Promise<PreviewImage> {
    const options = (latents instanceof Float32Array ? maybeOptions : (shapeOrOptions as PreviewRenderOptions | undefined)) ?? {};
    const maxSide = options.maxSide ?? DEFAULT_MAX_SIDE;
    if (!Number.isSafeInteger(maxSide) || maxSide < 1) throw new StepVideoError('ERR_ARGUMENT', 'preview maxSide must be a positive integer', { got: maxSide });
    const grid = latents instanceof Float32Array
      ? await this.renderFloat(latents, shapeOrOptions as readonly number[], options.frame)
      : await this.renderFloat(latents, options.frame);
    const { width: w, height: h } = grid;
    // Planar [3, h, w] for the pipeline's own frame conversion: identical clamp and rounding.
    const planar = new Float32Array(3 * h * w);
    for (let p = 0; p < h * w; p++) for (let c = 0; c < 3; c++) planar[c * h * w + p] = grid.rgb[p * 3 + c]!;
    const small = toRgbFrames(planar, 1, h, w).data;
    const factor = Math.max(1, Math.floor(maxSide / Math.max(h, w)));
    const rgb = factor === 1 ? small : upscaleNearest(small, h, w, factor);
    const width = w * factor;
    const height = h * factor;
    return { width, height, rgb, png: this.#png(rgb, width, height, factor) };
  }

  /**
   * PNG of an image made of factor × factor blocks, without filtering every row: the first scanline
   * of each block row is filtered (None for the first, "Up" after, as encodePng), the others repeat
   * the row above, so their "Up" scanlines are zeros, left from the kept buffer. Deflated with Z_RLE:
   * about 0.1 ms instead of about 1.5 ms for encodePng at 256 × 256.
   */
  #png(rgb: Uint8Array, width: number, height: number, factor: number): Buffer {
    const stride = width * 3;
    const line = stride + 1;
    // Kept between renders (the same size each step): a fresh 200 KB buffer costs more than the deflate.
    const key = `${width}x${height}/${factor}`;
    if (this.#scanlines?.key !== key) {
      const data = new Uint8Array(line * height);
      for (let y = 1; y < height; y++) data[y * line] = 2;
      this.#scanlines = { key, data };
    }
    const scanlines = this.#scanlines.data;
    scanlines.set(rgb.subarray(0, stride), 1);
    for (let y = factor; y < height; y += factor) {
      const row = y * line + 1;
      const current = y * stride;
      const above = current - stride;
      for (let x = 0; x < stride; x++) scanlines[row + x] = rgb[current + x]! - rgb[above + x]!;  // wraps mod 256
    }
    return pngFromScanlines(scanlines, width, height, { level: 6, strategy: zlibConstants.Z_RLE });
  }

  /** @internal The map applied to one latent frame, before quantisation (see render). */
  async renderFloat(latents: Tensor, frame?: number): Promise<PreviewGrid>;
  async renderFloat(latents: Float32Array, shape: readonly number[], frame?: number): Promise<PreviewGrid>;
  async renderFloat(latents: Tensor | Float32Array, shapeOrFrame?: readonly number[] | number, maybeFrame?: number): Promise<PreviewGrid> {
    let values: Float32Array;
    let h: number;
    let w: number;
    if (latents instanceof Float32Array) {
      const shape = shapeOrFrame as readonly number[] | undefined;
      if (!Array.isArray(shape)) throw new StepVideoError('ERR_ARGUMENT', 'a Float32Array of latents needs its shape', { expected: '[B, F, z, h, w]', tensor: 'latents' });
      const [, F, , hh, ww] = this.#checkShape(shape);
      const t = resolveFrame(maybeFrame, F);
      const count = shape.reduce((a, b) => a * b, 1);
      if (latents.length !== count) throw new StepVideoError('ERR_SHAPE', 'latents do not match their stated shape', { expected: `${count} values for ${formatShape(shape)}`, got: latents.length, tensor: 'latents' });
      const frameValues = this.zChannels * hh * ww;
      values = latents.subarray(t * frameValues, (t + 1) * frameValues);
      [h, w] = [hh, ww];
    } else {
      const [B, F, , hh, ww] = this.#checkShape(latents.shape);
      if (latents.dtype !== 'f32' && latents.dtype !== 'bf16' && latents.dtype !== 'f16') {
        throw new StepVideoError('ERR_DTYPE', 'preview latents must be floating point', { got: latents.dtype, tensor: 'latents' });
      }
      const t = resolveFrame(shapeOrFrame as number | undefined, F);
      // Batch 0, frame t is one contiguous [z, h, w] block: a view, so only it crosses to the host.
      using rows = latents.reshape(B * F, this.zChannels, hh, ww);
      using one = rows.narrow(t, 1);
      values = await one.toFloat32();
      [h, w] = [hh, ww];
    }
    const rgb = new Float32Array(h * w * 3);
    applyMap(this.#weight, this.#bias, values, h * w, rgb);
    return { width: w, height: h, rgb };
  }

  #checkShape(shape: readonly number[]): [number, number, number, number, number] {
    if (shape.length !== 5 || shape[2] !== this.zChannels || shape.some((d) => !Number.isSafeInteger(d) || d <= 0)) {
      throw new StepVideoError('ERR_SHAPE', 'preview latents must be [B, F, z, h, w] with the VAE\'s latent channels', { expected: `[B, F, ${this.zChannels}, h, w]`, got: formatShape(shape), tensor: 'latents' });
    }
    return shape as [number, number, number, number, number];
  }
}

/** R² of predictions against targets (both [n, 3]): per channel and pooled (1 − ΣSSE / ΣSST). */
export function rSquared(targets: Float32Array | Float64Array, predicted: Float32Array | Float64Array): { perChannel: number[]; pooled: number } {
  const n = targets.length / 3;
  const perChannel: number[] = [];
  let sse = 0;
  let sst = 0;
  for (let c = 0; c < 3; c++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += targets[i * 3 + c]!;
    mean /= n;
    let e = 0;
    let t = 0;
    for (let i = 0; i < n; i++) {
      const y = targets[i * 3 + c]!;
      e += (y - predicted[i * 3 + c]!) ** 2;
      t += (y - mean) ** 2;
    }
    perChannel.push(t > 0 ? 1 - e / t : e === 0 ? 1 : Number.NEGATIVE_INFINITY);
    sse += e;
    sst += t;
  }
  return { perChannel, pooled: sst > 0 ? 1 - sse / sst : sse === 0 ? 1 : Number.NEGATIVE_INFINITY };
}

/**
 * Decoded frames [B, 17k, 3, 16h, 16w] averaged onto their latent grid: [B · 3k · h · w, 3] in the
 * latents' order (batch, latent frame, y, x), each the mean over the frame group and the 16 × 16 block.
 */
export function poolFrames(frames: Float32Array, batch: number, h: number, w: number): Float64Array {
  const H = h * SPATIAL_FACTOR;
  const W = w * SPATIAL_FACTOR;
  const plane = H * W;
  const totalFrames = frames.length / (batch * 3 * plane);
  if (!Number.isInteger(totalFrames) || totalFrames % FRAMES_PER_CHUNK !== 0) {
    throw new StepVideoError('ERR_SHAPE', 'decoded frames do not match the latent grid', { expected: `[${batch}, 17k, 3, ${H}, ${W}]`, got: frames.length, tensor: 'frames' });
  }
  const chunks = totalFrames / FRAMES_PER_CHUNK;
  const latentFrames = chunks * LATENTS_PER_CHUNK;
  const out = new Float64Array(batch * latentFrames * h * w * 3);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < latentFrames; t++) {
      const [first, end] = FRAME_GROUPS[t % LATENTS_PER_CHUNK]!;
      const offset = Math.floor(t / LATENTS_PER_CHUNK) * FRAMES_PER_CHUNK;
      const row = (b * latentFrames + t) * h * w;
      const scale = 1 / ((end - first) * SPATIAL_FACTOR * SPATIAL_FACTOR);
      for (let f = offset + first; f < offset + end; f++) {
        for (let c = 0; c < 3; c++) {
          const base = ((b * totalFrames + f) * 3 + c) * plane;
          for (let Y = 0; Y < H; Y++) {
            const rowOut = (row + ((Y / SPATIAL_FACTOR) | 0) * w) * 3 + c;
            const rowIn = base + Y * W;
            for (let X = 0; X < W; X++) {
              const o = rowOut + ((X / SPATIAL_FACTOR) | 0) * 3;
              out[o] = out[o]! + frames[rowIn + X]!;
            }
          }
        }
      }
      for (let i = row * 3; i < (row + h * w) * 3; i++) out[i] = out[i]! * scale;
    }
  }
  return out;
}

// ---- internals ----

/**
 * Fitting grid: rows of one chunk, s × s latent pixels (8 for the tiny test VAEs, 16 from z > 16: a
 * released-size decode of 256 × 256 pixels, mostly away from the borders), at least two rows (one
 * per latent scale) and at least SAMPLES_PER_UNKNOWN · (z + 1) latent pixels.
 */
function fitGeometry(z: number): { side: number; batch: number } {
  const side = z > 16 ? 16 : MIN_FIT_SIDE;
  const batch = Math.max(FIT_SCALES.length, Math.ceil((SAMPLES_PER_UNKNOWN * (z + 1)) / (LATENTS_PER_CHUNK * side * side)));
  return { side, batch };
}

/**
 * Seeded white-noise latents [B, 3, z, s, s], row b with standard deviation FIT_SCALES[b mod n]
 * (host PRNG: the same on every device). Several scales because the decoder is not linear (its
 * GroupNorms normalise each chunk): the map is the best linear fit across the magnitudes sampling
 * goes through, not at unit variance only.
 */
function fittingLatents(batch: number, z: number, side: number, seed: number): Float32Array {
  const random = normalStream(seed);
  const row = LATENTS_PER_CHUNK * z * side * side;
  const out = new Float32Array(batch * row);
  for (let b = 0; b < batch; b++) {
    const scale = FIT_SCALES[b % FIT_SCALES.length]!;
    for (let i = b * row; i < (b + 1) * row; i++) out[i] = scale * random();
  }
  return out;
}

/** Latents [frames, z, pixels] as [z, frames · pixels] planes: the layout applyMap reads (as a render's frame). */
function latentPlanes(latents: Float32Array, frames: number, z: number, pixels: number): Float32Array {
  const out = new Float32Array(latents.length);
  for (let t = 0; t < frames; t++)
    for (let k = 0; k < z; k++)
      for (let p = 0; p < pixels; p++) out[k * frames * pixels + t * pixels + p] = latents[(t * z + k) * pixels + p]!;
  return out;
}

/**
 * Least squares of targets [n, 3] on latents ([z, n] planes) with an intercept: centred normal
 * equations in float64, a small ridge (1e-9 of the mean variance, raised if needed) for safety,
 * solved by Cholesky.
 */
function solveLeastSquares(planes: Float32Array, targets: Float64Array, n: number, z: number): { weight: Float64Array; bias: Float64Array } {
  const meanX = new Float64Array(z);
  for (let k = 0; k < z; k++) {
    let s = 0;
    for (let p = 0; p < n; p++) s += planes[k * n + p]!;
    meanX[k] = s / n;
  }
  const meanY = new Float64Array(3);
  for (let p = 0; p < n; p++) for (let c = 0; c < 3; c++) meanY[c] = meanY[c]! + targets[p * 3 + c]! / n;
  const A = new Float64Array(z * z);
  const B = new Float64Array(z * 3);
  const centred = new Float64Array(n);
  const other = new Float64Array(n);
  for (let i = 0; i < z; i++) {
    for (let p = 0; p < n; p++) centred[p] = planes[i * n + p]! - meanX[i]!;
    for (let j = 0; j <= i; j++) {
      for (let p = 0; p < n; p++) other[p] = planes[j * n + p]! - meanX[j]!;
      let s = 0;
      for (let p = 0; p < n; p++) s += centred[p]! * other[p]!;
      A[i * z + j] = s;
      A[j * z + i] = s;
    }
    for (let c = 0; c < 3; c++) {
      let s = 0;
      for (let p = 0; p < n; p++) s += centred[p]! * (targets[p * 3 + c]! - meanY[c]!);
      B[i * 3 + c] = s;
    }
  }
  let trace = 0;
  for (let i = 0; i < z; i++) trace += A[i * z + i]!;
  let ridge = Math.max(1e-9 * (trace / z), Number.MIN_VALUE);
  for (let attempt = 0; attempt < 12; attempt++, ridge *= 100) {
    const L = cholesky(A, z, ridge);
    if (L === undefined) continue;
    const weight = new Float64Array(3 * z);
    const bias = new Float64Array(3);
    const column = new Float64Array(z);
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < z; i++) column[i] = B[i * 3 + c]!;
      choleskySolve(L, z, column);
      let b = meanY[c]!;
      for (let k = 0; k < z; k++) {
        weight[c * z + k] = column[k]!;
        b -= column[k]! * meanX[k]!;
      }
      bias[c] = b;
    }
    return { weight, bias };
  }
  throw new StepVideoError('ERR_INTERNAL', 'the preview fit could not be solved (its normal equations are not positive definite)', { got: `${n} samples for ${z} channels` });
}

/** rgb[p, c] = bias[c] + Σ_k weight[c, k] · plane[k, p] for the `pixels` pixels of [z, pixels] planes; out is [pixels, 3]. */
function applyMap(weight: Float64Array, bias: Float64Array, planes: Float32Array, pixels: number, out: Float32Array): void {
  const z = weight.length / 3;
  const acc = new Float64Array(pixels * 3);
  for (let p = 0; p < pixels; p++) acc.set(bias, p * 3);
  // Channel-outer: each pass runs over one contiguous plane.
  for (let k = 0; k < z; k++) {
    const w0 = weight[k]!;
    const w1 = weight[z + k]!;
    const w2 = weight[2 * z + k]!;
    const base = k * pixels;
    for (let p = 0; p < pixels; p++) {
      const v = planes[base + p]!;
      const o = p * 3;
      acc[o] = acc[o]! + w0 * v;
      acc[o + 1] = acc[o + 1]! + w1 * v;
      acc[o + 2] = acc[o + 2]! + w2 * v;
    }
  }
  out.set(acc);
}

/** Lower factor L of A + ridge·I (row-major n × n), or undefined when a pivot is not positive. */
function cholesky(A: Float64Array, n: number, ridge: number): Float64Array | undefined {
  const L = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i * n + j]! + (i === j ? ridge : 0);
      for (let k = 0; k < j; k++) s -= L[i * n + k]! * L[j * n + k]!;
      if (i === j) {
        if (!(s > 0)) return undefined;
        L[i * n + i] = Math.sqrt(s);
      } else {
        L[i * n + j] = s / L[j * n + j]!;
      }
    }
  }
  return L;
}

/** Solves L Lᵀ x = b in place. */
function choleskySolve(L: Float64Array, n: number, b: Float64Array): void {
  for (let i = 0; i < n; i++) {
    let s = b[i]!;
    for (let k = 0; k < i; k++) s -= L[i * n + k]! * b[k]!;
    b[i] = s / L[i * n + i]!;
  }
  for (let i = n - 1; i >= 0; i--) {
    let s = b[i]!;
    for (let k = i + 1; k < n; k++) s -= L[k * n + i]! * b[k]!;
    b[i] = s / L[i * n + i]!;
  }
}

/** Standard normals from a seeded mulberry32 stream (Box-Muller). */
function normalStream(seed: number): () => number {
  let state = (seed ^ Math.floor(seed / 2 ** 32) ^ 0x9e3779b9) >>> 0;
  const uniform = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const v = spare;
      spare = undefined;
      return v;
    }
    const u = 1 - uniform();  // (0, 1]: log is finite
    const r = Math.sqrt(-2 * Math.log(u));
    const angle = 2 * Math.PI * uniform();
    spare = r * Math.sin(angle);
    return r * Math.cos(angle);
  };
}

function resolveFrame(frame: number | undefined, frames: number): number {
  if (frame === undefined) return Math.floor(frames / 2);
  if (!Number.isSafeInteger(frame) || frame < -frames || frame >= frames) {
    throw new StepVideoError('ERR_ARGUMENT', 'preview frame out of range', { expected: `an integer in [${-frames}, ${frames})`, got: frame, tensor: 'latents' });
  }
  return frame < 0 ? frames + frame : frame;
}

/** RGB8 [h, w, 3] → [h·f, w·f, 3], each pixel an f × f block. */
function upscaleNearest(rgb: Uint8Array, h: number, w: number, factor: number): Uint8Array {
  const W = w * factor;
  const out = new Uint8Array(h * factor * W * 3);
  for (let y = 0; y < h; y++) {
    const row = out.subarray(y * factor * W * 3, (y * factor + 1) * W * 3);
    for (let x = 0; x < w; x++) {
      const r = rgb[(y * w + x) * 3]!;
      const g = rgb[(y * w + x) * 3 + 1]!;
      const b = rgb[(y * w + x) * 3 + 2]!;
      for (let d = 0; d < factor; d++) {
        const o = (x * factor + d) * 3;
        row[o] = r;
        row[o + 1] = g;
        row[o + 2] = b;
      }
    }
    for (let d = 1; d < factor; d++) out.copyWithin((y * factor + d) * W * 3, y * factor * W * 3, (y * factor + 1) * W * 3);
  }
  return out;
}
