// The video VAE (spec §3, version 2): chunked decoding with the boundary mix, streamed chunk by
// chunk, and chunked encoding to moments or latents.
//
// Decoding: latents [B, 3k, z, h, w] split into k chunks of 3 latent frames; each chunk decodes
// independently to 17 frames; then, at each of the k − 1 boundaries, sequentially,
//   first(next) ← 0.6·first(next) + 0.4·last(prev)      (each product and the sum rounded to the dtype,
//   last(prev)  ← 0.6·last(prev)  + 0.4·first(next)      as the official bf16 arithmetic; in effect 0.76/0.24)
// So a chunk is final only once its successor's first frame is known: chunk i is delivered right after
// chunk i + 1 has been decoded (the last chunk right after itself). At most two decoded chunks are
// alive at any time, whatever the video's length.
import path from 'node:path';

import { type Device, type DeviceSpec, getDevice } from '../../device.js';
import { StepVideoError, throwIfAborted } from '../../errors.js';
import { openWeights } from '../../io/index.js';
import { type LoadProgress, checkAgainstSpec, loadRecords } from '../../io/load.js';
import { repackConvWeight } from '../../kernels/conv.js';
import { randomNormal } from '../../kernels/random.js';
import * as ops from '../../ops.js';
import { formatShape } from '../../shape.js';
import { Tensor } from '../../tensor.js';
import { type ComputeDType, resolveComputeDType } from '../compute-dtype.js';
import { TensorWeights, type WeightSource, checkWeightSource } from '../weight-source.js';
import type { BlockContext } from './blocks.js';
import { FRAMES_PER_CHUNK, LATENTS_PER_CHUNK, SPATIAL_FACTOR, type VaeConfig, readVaeConfig, requireMultiple } from './config.js';
import { decodeChunk } from './decoder.js';
import { encodeChunk } from './encoder.js';
import { type VaePart, isConvWeight, moduleView, vaeWeightSpec } from './weights.js';

/** The released weights file in vae/ (vae.safetensors is the unused version 1). */
export const VAE_WEIGHTS_FILE = 'vae_v2.safetensors';

/** The official time-slicing threshold for large convolutions: 2^30 elements. */
const TIME_SLICE_ELEMENTS = 2 ** 30;

export interface VaeLoadOptions {
  device?: DeviceSpec;
  /** f32 (CPU reference numerics) or bf16 (the official precision; default on CUDA). */
  dtype?: ComputeDType;
  signal?: AbortSignal;
  onProgress?: (progress: LoadProgress) => void;
  /** Which towers to load (default both); the text-to-video pipeline needs only the decoder. */
  parts?: readonly VaePart[];
  /** Elements from which a GroupNorm + conv runs in four time slices (default 2^30, the official rule). */
  timeSliceElements?: number;
}

export interface DecodedChunk {
  /** [B, 17, 3, H, W], final (boundary mix applied). Lent: valid until the consumer resumes the decoder. */
  frames: Tensor;
  /** Chunk index; its frames are [17·index, 17·index + 17) of the video. */
  index: number;
  total: number;
}

export interface DecodeOptions {
  signal?: AbortSignal;
  /**
   * Replicas of this VAE (same config and dtype) on other devices: chunk i is decoded by model
   * i mod n of [this, ...helpers], up to n chunks at once, and the decoded chunks come back to this
   * VAE's device, where the sequential boundary mix runs in order. The frames equal one device's
   * (each chunk's arithmetic is the same wherever it runs; the mix, which couples neighbours, stays
   * sequential).
   */
  helpers?: readonly VideoVAE[];
  /**
   * Streaming: called with each final chunk [B, 17, 3, H, W] in order, awaited before decoding goes
   * on (back-pressure). The tensor is lent: it is freed when the returned promise settles (clone it to
   * keep it). With onChunk, decode() resolves to undefined.
   */
  onChunk?: (frames: Tensor, index: number, total: number) => Promise<void> | void;
}

export interface EncodeOptions {
  signal?: AbortSignal;
  /**
   * 'mode' (default) returns the mean; { seed } draws mean + exp(logvar / 2)·ε with logvar clamped to
   * [−30, 20] and ε seeded standard-normal noise (f32, cast to the dtype, as the official sampler).
   */
  sample?: 'mode' | { seed: number | bigint };
}

export class VideoVAE implements Disposable {
  readonly config: VaeConfig;
  readonly device: Device;
  readonly dtype: ComputeDType;
  readonly parts: readonly VaePart[];
  readonly #weights: WeightSource;
  readonly #timeSliceElements: number;
  #disposed = false;

  private constructor(config: VaeConfig, device: Device, dtype: ComputeDType, parts: readonly VaePart[], weights: WeightSource, timeSliceElements: number) {
    this.config = config;
    this.device = device;
    this.dtype = dtype;
    this.parts = parts;
    this.#weights = weights;
    this.#timeSliceElements = timeSliceElements;
  }

  /**
   * Loads the vae/ folder of the released layout: vae_v2.safetensors (unchanged, with its conv_out
   * naming) and an optional config.json with overrides. Convolution weights are repacked on the device.
   */
  static async load(dir: string, options: VaeLoadOptions = {}): Promise<VideoVAE> {
    const device = getDevice(options.device);
    const dtype = resolveComputeDType(device, options.dtype, 'bf16', 'VAE');
    const parts = resolveParts(options.parts);
    throwIfAborted(options.signal, 'VAE loading');
    const config = await readVaeConfig(dir);
    const index = moduleView(await openWeights(path.join(dir, VAE_WEIGHTS_FILE)), parts);
    const spec = vaeWeightSpec(config, parts);
    checkAgainstSpec(index, spec);
    const loaded = await loadRecords(
      [...spec.keys()].map((name) => index.get(name)),
      { device, dtype, ...(options.signal ? { signal: options.signal } : {}), ...(options.onProgress ? { onProgress: options.onProgress } : {}) },
    );
    const weights = repackAll(loaded);
    try {
      await device.synchronize();  // the repacks have run and the PyTorch-layout copies are freed
    } catch (error) {
      weights.dispose();
      throw error;
    }
    return new VideoVAE(config, device, dtype, parts, weights, options.timeSliceElements ?? TIME_SLICE_ELEMENTS);
  }

  /**
   * A VAE over given tensors in PyTorch layout and module paths (e.g. random weights for tests and
   * benchmarks at the released size). Takes ownership of `source`: its convolutions are repacked and
   * it is disposed.
   */
  static fromWeights(config: VaeConfig, source: WeightSource, options: { device?: DeviceSpec; dtype?: ComputeDType; parts?: readonly VaePart[]; timeSliceElements?: number } = {}): VideoVAE {
    const device = getDevice(options.device);
    const parts = resolveParts(options.parts);
    try {
      const dtype = resolveComputeDType(device, options.dtype, 'bf16', 'VAE');
      const spec = vaeWeightSpec(config, parts);
      checkWeightSource('VAE', source, spec, dtype, device);
      const tensors = new Map<string, Tensor>();
      try {
        for (const [name, shape] of spec) {
          const tensor = source.get(name);
          tensors.set(name, isConvWeight(name, shape) ? repackConvWeight(tensor) : tensor.clone());
        }
      } catch (error) {
        for (const tensor of tensors.values()) tensor.dispose();
        throw error;
      }
      return new VideoVAE(config, device, dtype, parts, new TensorWeights(tensors), options.timeSliceElements ?? TIME_SLICE_ELEMENTS);
    } finally {
      source.dispose();
    }
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /**
   * Decodes latents [B, 3k, z, h, w] to frames [B, 17k, 3, 16h, 16w] (nominally in [−1, 1], not
   * clamped). Without onChunk the whole video is returned; with it the chunks are streamed (see
   * DecodeOptions) and the result is undefined.
   */
  async decode(latents: Tensor, options: DecodeOptions = {}): Promise<Tensor | undefined> {
    if (options.onChunk) {
      for await (const chunk of this.#decodeOwned(latents, options.signal, options.helpers)) {
        try {
          await options.onChunk(chunk.frames, chunk.index, chunk.total);
        } finally {
          chunk.frames.dispose();
        }
      }
      return undefined;
    }
    const chunks: Tensor[] = [];
    try {
      for await (const chunk of this.#decodeOwned(latents, options.signal, options.helpers)) chunks.push(chunk.frames);
      return chunks.length === 1 ? chunks.pop()! : ops.concat(chunks, 1);
    } finally {
      for (const chunk of chunks) chunk.dispose();
    }
  }

  /**
   * The streaming form as an async iterator: each final chunk in order (see DecodedChunk). The chunk's
   * tensor is freed when the iteration resumes or stops; clone it to keep it.
   */
  async *decodeChunks(latents: Tensor, options: Pick<DecodeOptions, 'signal' | 'helpers'> = {}): AsyncGenerator<DecodedChunk, void, undefined> {
    for await (const chunk of this.#decodeOwned(latents, options.signal, options.helpers)) {
      try {
        yield chunk;
      } finally {
        chunk.frames.dispose();
      }
    }
  }

  /** Raw moments [B, 3k, 2z, h, w] of frames [B, 17k, 3, H, W]: mean then logvar channels, unclamped. */
  async encodeMoments(frames: Tensor, options: { signal?: AbortSignal } = {}): Promise<Tensor> {
    this.#require('encoder');
    const [B, T, C, H, W] = checkRank(frames, 'frames', '[B, T, 3, H, W]');
    if (C !== 3) throw new StepVideoError('ERR_SHAPE', 'VAE encode: frames must have 3 channels', { expected: '[B, T, 3, H, W]', got: formatShape(frames.shape), tensor: 'frames' });
    requireMultiple('VAE encode: the frame count', T, FRAMES_PER_CHUNK, 'frames');
    requireMultiple('VAE encode: the height', H, SPATIAL_FACTOR, 'frames');
    requireMultiple('VAE encode: the width', W, SPATIAL_FACTOR, 'frames');
    this.#requireDevice(frames, 'frames');
    using converted = frames.dtype === this.dtype ? undefined : ops.cast(frames, this.dtype);
    using flat = (converted ?? frames).reshape(B * T, C, H, W);
    const pieces: Tensor[] = [];
    try {
      for (let b = 0; b < B; b++)
        for (let chunk = 0; chunk < T / FRAMES_PER_CHUNK; chunk++) {
          throwIfAborted(options.signal, 'VAE encoding');
          using part = flat.narrow(b * T + chunk * FRAMES_PER_CHUNK, FRAMES_PER_CHUNK);
          const channelsLast = ops.permute(part, [0, 2, 3, 1]);
          using moments = await encodeChunk(this.#context(options.signal), this.config, channelsLast);
          pieces.push(ops.permute(moments, [0, 3, 1, 2]));  // [3, 2z, h, w]
        }
      using all = ops.concat(pieces, 0);
      return all.reshape(B, (T / FRAMES_PER_CHUNK) * LATENTS_PER_CHUNK, 2 * this.config.zChannels, H / SPATIAL_FACTOR, W / SPATIAL_FACTOR);
    } finally {
      for (const piece of pieces) piece.dispose();
    }
  }

  /** Latents [B, 3k, z, h, w] of frames [B, 17k, 3, H, W]: the posterior's mode, or a seeded sample. */
  async encode(frames: Tensor, options: EncodeOptions = {}): Promise<Tensor> {
    using moments = await this.encodeMoments(frames, options.signal ? { signal: options.signal } : {});
    const z = this.config.zChannels;
    const mean = ops.slice(moments, 2, 0, z);
    const sample = options.sample ?? 'mode';
    if (sample === 'mode') return mean;
    using m = mean;
    using rawLogvar = ops.slice(moments, 2, z, 2 * z);
    using low = Tensor.full([1], -30, this.dtype, this.device);
    using high = Tensor.full([1], 20, this.dtype, this.device);
    using floored = ops.maximum(rawLogvar, low);
    using logvar = ops.minimum(floored, high);
    using halfLogvar = ops.scale(logvar, 0.5);
    using std = ops.exp(halfLogvar);
    using noise32 = randomNormal(m.shape, { seed: sample.seed, device: this.device });
    using noise = this.dtype === 'f32' ? noise32.clone() : ops.cast(noise32, this.dtype);
    using spread = ops.mul(std, noise);
    return ops.add(m, spread);
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#weights.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  // ---- internals ----

  /** Final chunks, owned by the receiver, in order (each after its successor is decoded). */
  async *#decodeOwned(latents: Tensor, signal: AbortSignal | undefined, helpers: readonly VideoVAE[] = []): AsyncGenerator<DecodedChunk, void, undefined> {
    this.#require('decoder');
    for (const helper of helpers) {
      helper.#require('decoder');
      if (JSON.stringify(helper.config) !== JSON.stringify(this.config) || helper.dtype !== this.dtype) {
        throw new StepVideoError('ERR_ARGUMENT', 'a VAE helper must be a replica of the VAE (same config and dtype)', { got: `${helper.dtype} on ${helper.device.name}` });
      }
    }
    const [B, F, Z, h, w] = checkRank(latents, 'latents', '[B, F, z, h, w]');
    if (Z !== this.config.zChannels) {
      throw new StepVideoError('ERR_SHAPE', 'VAE decode: latent channels differ from the model', { expected: `[B, F, ${this.config.zChannels}, h, w]`, got: formatShape(latents.shape), tensor: 'latents' });
    }
    requireMultiple('VAE decode: the latent frame count', F, LATENTS_PER_CHUNK, 'latents');
    this.#requireDevice(latents, 'latents');
    const total = F / LATENTS_PER_CHUNK;
    // The official decoder casts the latents to its dtype first (z.to(bf16)).
    using converted = latents.dtype === this.dtype ? undefined : ops.cast(latents, this.dtype);
    using flat = (converted ?? latents).reshape(B * F, Z, h, w);
    let pending: Tensor | undefined;
    let current: Tensor | undefined;
    // Chunk i on decoders[i mod n]; the next n - 1 chunks are started before chunk i is awaited.
    const decoders: VideoVAE[] = [this, ...helpers];
    const inFlight = new Map<number, Promise<Tensor>>();
    const start = (index: number) => {
      if (index >= total || inFlight.has(index)) return;
      const decoder = decoders[index % decoders.length]!;
      const decoded = decoder === this ? this.#decodeBatchChunk(flat, B, F, index, signal) : decoder.#decodeOn(flat, B, F, index, signal, this.device);
      decoded.catch(() => undefined);  // observed when awaited; a failure after an earlier one must not go unhandled
      inFlight.set(index, decoded);
    };
    try {
      for (let index = 0; index < total; index++) {
        throwIfAborted(signal, 'VAE decoding');
        for (let ahead = index; ahead < index + decoders.length; ahead++) start(ahead);
        current = await inFlight.get(index)!;
        inFlight.delete(index);
        if (pending !== undefined) {
          [pending, current] = mixBoundary(pending, current);
          const done = pending;
          pending = undefined;
          yield { frames: done, index: index - 1, total };
        }
        pending = current;
        current = undefined;
      }
      const last = pending!;
      pending = undefined;
      yield { frames: last, index: total - 1, total };
    } finally {
      pending?.dispose();
      current?.dispose();
      // Chunks started but not consumed (an abort, an error, a consumer that stopped): freed once done.
      for (const decoded of inFlight.values()) {
        try {
          (await decoded).dispose();
        } catch {
          // the first failure was thrown already
        }
      }
    }
  }

  /** Chunk `index` decoded here, from latents on `home`'s device, and the frames taken back there. */
  async #decodeOn(flat: Tensor, B: number, F: number, index: number, signal: AbortSignal | undefined, home: Device): Promise<Tensor> {
    const items: Tensor[] = [];
    try {
      for (let b = 0; b < B; b++) {
        using latentHome = flat.narrow(b * F + index * LATENTS_PER_CHUNK, LATENTS_PER_CHUNK);
        using latent = await latentHome.to(this.device);
        const z = ops.permute(latent, [0, 2, 3, 1]);
        using rgb = await decodeChunk(this.#context(signal), this.config, z);
        const [T, H, W] = rgb.shape as [number, number, number, number];
        using frames = ops.permute(rgb, [0, 3, 1, 2]);
        using item = frames.reshape(1, T, 3, H, W);
        items.push(await item.to(home));
      }
      return items.length === 1 ? items.pop()! : ops.concat(items, 0);
    } finally {
      for (const item of items) item.dispose();
    }
  }

  /** Chunk `index` of every batch item: [B, 17, 3, H, W]. */
  async #decodeBatchChunk(flat: Tensor, B: number, F: number, index: number, signal: AbortSignal | undefined): Promise<Tensor> {
    const items: Tensor[] = [];
    try {
      for (let b = 0; b < B; b++) {
        using latent = flat.narrow(b * F + index * LATENTS_PER_CHUNK, LATENTS_PER_CHUNK);
        const z = ops.permute(latent, [0, 2, 3, 1]);  // [3, h, w, z], consumed by the decoder
        using rgb = await decodeChunk(this.#context(signal), this.config, z);
        const [T, H, W] = rgb.shape as [number, number, number, number];
        using frames = ops.permute(rgb, [0, 3, 1, 2]);
        items.push(frames.reshape(1, T, 3, H, W));
      }
      return items.length === 1 ? items.pop()! : ops.concat(items, 0);
    } finally {
      for (const item of items) item.dispose();
    }
  }

  #context(signal: AbortSignal | undefined): BlockContext {
    if (this.#disposed) throw new StepVideoError('ERR_DISPOSED', 'the VAE was used after dispose()');
    return { weight: (name) => this.#weights.get(name), device: this.device, signal, timeSliceElements: this.#timeSliceElements };
  }

  #require(part: VaePart): void {
    if (this.#disposed) throw new StepVideoError('ERR_DISPOSED', 'the VAE was used after dispose()');
    if (!this.parts.includes(part)) {
      throw new StepVideoError('ERR_ARGUMENT', `this VAE was loaded without its ${part}`, { expected: `parts including '${part}'`, got: [...this.parts] });
    }
  }

  #requireDevice(t: Tensor, name: string): void {
    if (t.device !== this.device) throw new StepVideoError('ERR_DEVICE', 'VAE input is on another device than the model', { expected: this.device.name, got: t.device.name, tensor: name });
    if (t.dtype !== 'f32' && t.dtype !== 'bf16' && t.dtype !== 'f16') throw new StepVideoError('ERR_DTYPE', 'VAE input must be floating point', { got: t.dtype, tensor: name });
  }
}

/**
 * The sequential boundary mix between two consecutive chunks [B, 17, 3, H, W]; consumes both and
 * returns them mixed. Each product and sum is rounded to the dtype, as the official in-place bf16 ops.
 */
export function mixBoundary(prev: Tensor, next: Tensor): [Tensor, Tensor] {
  const frames = prev.shape[1]!;
  try {
    using prevLast = ops.slice(prev, 1, frames - 1, frames);
    using nextFirst = ops.slice(next, 1, 0, 1);
    using keptFirst = ops.scale(nextFirst, 0.6);
    using mixedIn = ops.scale(prevLast, 0.4);
    using newFirst = ops.add(keptFirst, mixedIn);
    using keptLast = ops.scale(prevLast, 0.6);
    using mixedBack = ops.scale(newFirst, 0.4);
    using newLast = ops.add(keptLast, mixedBack);
    using prevHead = ops.slice(prev, 1, 0, frames - 1);
    using nextTail = ops.slice(next, 1, 1, frames);
    return [ops.concat([prevHead, newLast], 1), ops.concat([newFirst, nextTail], 1)];
  } finally {
    prev.dispose();
    next.dispose();
  }
}

function resolveParts(parts: readonly VaePart[] | undefined): readonly VaePart[] {
  const resolved = parts ?? ['encoder', 'decoder'];
  if (resolved.length === 0 || resolved.some((p) => p !== 'encoder' && p !== 'decoder')) {
    throw new StepVideoError('ERR_ARGUMENT', 'VAE parts must be encoder and/or decoder', { got: [...resolved] });
  }
  return [...new Set(resolved)];
}

function checkRank(t: Tensor, name: string, layout: string): [number, number, number, number, number] {
  if (t.ndim !== 5) throw new StepVideoError('ERR_SHAPE', `VAE: ${name} must be ${layout}`, { got: formatShape(t.shape), tensor: name });
  return t.shape as [number, number, number, number, number];
}

/** Convolution weights repacked to [Cout, kt, kh, kw, Cin] (each original freed at once); the rest kept. */
function repackAll(loaded: Map<string, Tensor>): TensorWeights {
  const tensors = new Map<string, Tensor>();
  try {
    for (const [name, tensor] of loaded) {
      if (isConvWeight(name, tensor.shape)) {
        tensors.set(name, repackConvWeight(tensor));
        tensor.dispose();
      } else {
        tensors.set(name, tensor);
      }
    }
  } catch (error) {
    for (const tensor of tensors.values()) tensor.dispose();
    for (const tensor of loaded.values()) tensor.dispose();
    throw error;
  }
  return new TensorWeights(tensors);
}

