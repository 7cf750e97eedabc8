// A generated video: the sampled latents, decoded on demand into chunks of 17 RGB frames (the
// official post-processing: clamp, uint8 by truncation, optional centre crop to 540p), so that a
// file can be written while the VAE is still decoding. Single use: iterating (or saving) consumes
// it, and the latents are freed when the iteration ends, whichever way it ends.
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';

import { StepVideoError, isStepVideoError, throwIfAborted } from '../errors.js';
import { FRAMES_PER_CHUNK } from '../models/vae/config.js';
import type { DecodedChunk } from '../models/vae/index.js';
import type { SamplerPresetName, SamplerSettings } from '../sampler/scheduler.js';
import type { Tensor } from '../tensor.js';
import { type CropWindow, type RgbFrames, toRgbFrames } from '../video/frames.js';
import { type VideoFormat, type VideoWriter, openVideoWriter } from '../video/writers.js';
import { EtaTracker, type PipelineProgress } from './progress.js';

/** Frames per second of the official output. */
export const VIDEO_FPS = 25;

export interface VideoInfo {
  prompt: string;
  seed: bigint;
  preset: SamplerPresetName;
  settings: SamplerSettings;
  /** Frames of the video. */
  frames: number;
  /** Size of the written frames (after the crop, if any). */
  width: number;
  height: number;
  /** Size the VAE decodes to. */
  decodedWidth: number;
  decodedHeight: number;
  fps: number;
  /** Model evaluations the denoising made (a CFG branch of a step is one), of steps × branches. */
  evaluations: number;
  maxEvaluations: number;
}

export interface VideoChunk {
  /** Chunk index; its frames are [firstFrame, firstFrame + frames.count) of the video. */
  index: number;
  total: number;
  firstFrame: number;
  frames: RgbFrames;
  /** The decoder's output for these frames, [count, 3, decodedHeight, decodedWidth] in [-1, 1] nominally (only with { decoded: true }). */
  decoded?: Float32Array;
}

export interface ChunkOptions {
  /** Also hand out the decoder's float output (before the post-processing). */
  decoded?: boolean;
  signal?: AbortSignal;
}

export interface SaveOptions {
  /** Default: from the extension (.mp4, .y4m; none = a folder of PNG frames). */
  format?: VideoFormat;
  /** MP4: the official atadenoise filter (default true). */
  denoise?: boolean;
  /** MP4: x264 CRF (default 25, the official quality). */
  crf?: number;
  signal?: AbortSignal;
  /** Sees every chunk as it is written (e.g. to keep thumbnails). */
  onChunk?: (chunk: VideoChunk) => void | Promise<void>;
}

/** What a video needs from its pipeline. */
export interface VideoSource {
  /** The VAE's chunks for these latents, each under the pipeline's device lock. */
  decode(latents: Tensor, signal: AbortSignal | undefined): AsyncGenerator<DecodedChunk, void, undefined>;
  crop: CropWindow | undefined;
  signal: AbortSignal | undefined;
  onProgress: ((progress: PipelineProgress) => void) | undefined;
}

/** The format a path asks for: .mp4, .y4m, or (no extension) a folder of PNG frames. */
export function formatFromPath(target: string): VideoFormat {
  const extension = path.extname(target).toLowerCase();
  if (extension === '.mp4') return 'mp4';
  if (extension === '.y4m') return 'y4m';
  if (extension === '') return 'png';
  throw new StepVideoError('ERR_ARGUMENT', 'cannot tell the video format from the file name', { expected: '.mp4, .y4m, or a folder name for PNG frames (or pass the format)', got: target });
}

/** Decoded frames [count, 3, H, W] → RGB8, one frame at a time with a turn of the event loop in between. */
async function toRgbChunk(decoded: Float32Array, count: number, height: number, width: number, crop: CropWindow | undefined): Promise<RgbFrames> {
  const frameValues = 3 * height * width;
  let out: Uint8Array | undefined;
  let outHeight = height;
  let outWidth = width;
  for (let t = 0; t < count; t++) {
    const frame = toRgbFrames(decoded.subarray(t * frameValues, (t + 1) * frameValues), 1, height, width, crop);
    out ??= new Uint8Array(count * frame.data.length);
    out.set(frame.data, t * frame.data.length);
    outHeight = frame.height;
    outWidth = frame.width;
    if (t + 1 < count) await nextTurn();
  }
  return { width: outWidth, height: outHeight, count, data: out ?? new Uint8Array(0) };
}

export class GeneratedVideo implements AsyncIterable<VideoChunk>, Disposable, AsyncDisposable {
  readonly info: VideoInfo;
  #latents: Tensor | undefined;
  readonly #source: VideoSource;
  #consumed = false;

  /** @internal Made by StepVideo.generate; takes ownership of the latents. */
  constructor(latents: Tensor, info: VideoInfo, source: VideoSource) {
    this.#latents = latents;
    this.info = Object.freeze({ ...info });
    this.#source = source;
  }

  /** Whether the latents are gone (consumed or disposed). */
  get disposed(): boolean {
    return this.#latents === undefined;
  }

  /** The sampled latents [1, F, z, h, w] (f32, on the pipeline's device), until the video is consumed. */
  get latents(): Tensor {
    if (this.#latents === undefined) throw new StepVideoError('ERR_DISPOSED', 'the video was already consumed or disposed');
    return this.#latents;
  }

  [Symbol.asyncIterator](): AsyncIterator<VideoChunk> {
    return this.chunks();
  }

  /** Decodes and post-processes chunk by chunk. Consumes the video. */
  async *chunks(options: ChunkOptions = {}): AsyncGenerator<VideoChunk, void, undefined> {
    if (this.#consumed || this.#latents === undefined) throw new StepVideoError('ERR_DISPOSED', 'the video was already consumed or disposed (a video decodes once)');
    this.#consumed = true;
    const signal = combineSignals(this.#source.signal, options.signal);
    const { decodedHeight: H, decodedWidth: W } = this.info;
    const latents = this.#latents;
    const tracker = new EtaTracker(this.info.frames / FRAMES_PER_CHUNK);
    try {
      for await (const chunk of this.#source.decode(latents, signal)) {
        const [, count] = chunk.frames.shape as [number, number];
        const decoded = await chunk.frames.toFloat32();
        throwIfAborted(signal, 'video decoding');
        const frames = await toRgbChunk(decoded, count, H, W, this.#source.crop);
        // Chunk i is final once chunk i + 1 is decoded (the boundary mix): count decoded chunks for the ETA.
        const progress = tracker.at(Math.min(chunk.index + 2, chunk.total));
        this.#source.onProgress?.({ stage: 'decode', chunk: chunk.index + 1, total: chunk.total, ...progress });
        yield { index: chunk.index, total: chunk.total, firstFrame: chunk.index * count, frames, ...(options.decoded ? { decoded } : {}) };
      }
    } catch (error) {
      if (signal?.aborted && !isStepVideoError(error, 'ERR_ABORTED')) throw new StepVideoError('ERR_ABORTED', 'video decoding aborted', { cause: error });
      throw error;
    } finally {
      this.dispose();
    }
  }

  /**
   * Writes the video to `target` as it is decoded (MP4 through ffmpeg, Y4M, or PNG frames) and
   * returns the final path. Nothing is left at `target` if decoding or writing fails or is aborted.
   */
  async save(target: string, options: SaveOptions = {}): Promise<string> {
    let writer: VideoWriter;
    try {
      writer = openVideoWriter(target, {
        format: options.format ?? formatFromPath(target),
        width: this.info.width,
        height: this.info.height,
        fps: this.info.fps,
        ...(options.denoise !== undefined ? { denoise: options.denoise } : {}),
        ...(options.crf !== undefined ? { crf: options.crf } : {}),
      });
    } catch (error) {
      this.dispose(); // the video is spent either way: a failed save frees it like a finished one
      throw error;
    }
    const report = (done: boolean) =>
      this.#source.onProgress?.({ stage: 'write', frames: writer.framesWritten, totalFrames: this.info.frames, path: writer.path, done, fraction: writer.framesWritten / this.info.frames });
    try {
      for await (const chunk of this.chunks(options.signal ? { signal: options.signal } : {})) {
        await writer.write(chunk.frames);
        await options.onChunk?.(chunk);
        report(false);
      }
      throwIfAborted(combineSignals(this.#source.signal, options.signal), 'video writing');
      const written = await writer.finish();
      report(true);
      return written;
    } catch (error) {
      await writer.abort();
      throw error;
    } finally {
      this.dispose();
    }
  }

  dispose(): void {
    this.#latents?.dispose();
    this.#latents = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }
}

/** One signal that fires when any of the given ones does (undefined when none is given). */
export function combineSignals(...signals: Array<AbortSignal | undefined>): AbortSignal | undefined {
  const present = signals.filter((s): s is AbortSignal => s !== undefined);
  if (present.length <= 1) return present[0];
  return AbortSignal.any(present);
}
