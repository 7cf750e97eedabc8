// The preference pairs of `stepvideo dpo`: pairs.jsonl, one {"prompt", "chosen", "rejected"} per
// line, each video an MP4 (or another container ffmpeg reads), a Y4M file, a folder of PNG frames,
// or latents already encoded (a .safetensors file holding one tensor [F, C, h, w] or [1, F, C, h, w]).
// Videos are VAE-encoded once (the posterior's mode) and kept in a cache folder keyed by the file's
// path, size and modification time and the VAE's identity, so later runs and resumes skip the encoder.
import { createHash } from 'node:crypto';
import { mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';

import { StepVideoError, throwIfAborted } from '../errors.js';
import { type HostTensor, readSafetensors, writeSafetensors } from '../io/safetensors.js';
import { hostTensorToF32 } from '../io/safetensors.js';
import type { VideoVAE } from '../models/vae/index.js';
import { Tensor } from '../tensor.js';
import { readVideo, toUnitFrames } from '../video/readers.js';

export interface PreferencePair {
  prompt: string;
  /** Absolute paths. */
  chosen: string;
  rejected: string;
}

/** Host latents [1, F, C, h, w] in f32. */
export interface HostLatents {
  shape: [number, number, number, number, number];
  data: Float32Array;
}

/** Parses pairs.jsonl (relative video paths are relative to the file's folder). */
export async function readPairs(file: string): Promise<PreferencePair[]> {
  const where = { file: path.resolve(file) };
  const text = await readFile(file, 'utf8').catch((error: Error) => {
    throw new StepVideoError('ERR_IO', `cannot read the pairs file: ${error.message}`, where);
  });
  const base = path.dirname(path.resolve(file));
  const pairs: PreferencePair[] = [];
  text.split(/\r?\n/).forEach((line, index) => {
    if (line.trim() === '') return;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (error) {
      throw new StepVideoError('ERR_ARGUMENT', `pairs line ${index + 1} is not JSON: ${(error as Error).message}`, where);
    }
    const r = record as Record<string, unknown>;
    for (const key of ['prompt', 'chosen', 'rejected']) {
      if (typeof r?.[key] !== 'string' || (r[key] as string) === '') {
        throw new StepVideoError('ERR_ARGUMENT', `pairs line ${index + 1} needs a non-empty string '${key}'`, { ...where, expected: '{"prompt", "chosen", "rejected"}', got: line.slice(0, 200) });
      }
    }
    pairs.push({ prompt: r.prompt as string, chosen: path.resolve(base, r.chosen as string), rejected: path.resolve(base, r.rejected as string) });
  });
  if (pairs.length === 0) throw new StepVideoError('ERR_ARGUMENT', 'the pairs file holds no pair', where);
  return pairs;
}

export interface VideoEncoding {
  vae: VideoVAE;
  cacheDir: string;
  /** A string that changes when the VAE's weights do (its folder and files' sizes/times). */
  vaeIdentity: string;
  signal?: AbortSignal;
  /** Called when a video is encoded (not when it comes from the cache). */
  onEncode?: (file: string) => void;
}

/**
 * A video's latents ([1, F, channels, h, w]): read as latents, or from the cache, or VAE-encoded
 * and cached (`encoding` is asked for only then: the encoder loads only when a video needs it).
 */
export async function loadLatents(file: string, channels: number, encoding: () => Promise<VideoEncoding>): Promise<HostLatents> {
  const info = await stat(file).catch(() => {
    throw new StepVideoError('ERR_IO', 'a video of the pairs file does not exist', { file });
  });
  if (info.isFile() && file.endsWith('.safetensors')) return latentsFromFile(file, channels);
  const options = await encoding();
  const key = createHash('sha256').update(JSON.stringify([file, info.size, info.mtimeMs, options.vaeIdentity])).digest('hex').slice(0, 32);
  const cached = path.join(options.cacheDir, `${key}.safetensors`);
  const hit = await stat(cached).then(() => true, () => false);
  if (hit) return latentsFromFile(cached, channels);

  throwIfAborted(options.signal, 'encoding the pairs');
  const video = await readVideo(file, options.signal ? { signal: options.signal } : {});
  // The VAE encodes chunks of 17 frames at sizes that are multiples of 16: whole chunks are kept.
  const frames = Math.floor(video.count / 17) * 17;
  if (frames === 0 || video.height % 16 !== 0 || video.width % 16 !== 0) {
    throw new StepVideoError('ERR_SHAPE', 'a training video needs at least 17 frames and a size that is a multiple of 16', { file, got: `${video.count} frames of ${video.width}x${video.height}` });
  }
  const values = toUnitFrames(video).subarray(0, frames * 3 * video.height * video.width);
  using input = Tensor.from(values, [1, frames, 3, video.height, video.width], { dtype: 'f32', device: options.vae.device });
  using latents = await options.vae.encode(input, options.signal ? { signal: options.signal } : {});
  const data = await latents.toFloat32();
  const shape = latents.shape as [number, number, number, number, number];
  await mkdir(options.cacheDir, { recursive: true });
  await writeSafetensors(cached, { latents: { dtype: 'f32', shape: [...shape], data } }, { source: file });
  options.onEncode?.(file);
  return { shape, data };
}

async function latentsFromFile(file: string, channels: number): Promise<HostLatents> {
  const tensors = await readSafetensors(file).catch((error: Error) => {
    throw new StepVideoError('ERR_IO', `cannot read latents: ${error.message}`, { file });
  });
  const entry: HostTensor | undefined = tensors.get('latents') ?? (tensors.size === 1 ? [...tensors.values()][0] : undefined);
  if (entry === undefined) throw new StepVideoError('ERR_WEIGHTS_FORMAT', "a latents file holds one tensor (or one named 'latents')", { file, got: [...tensors.keys()].join(', ') });
  const shape = entry.shape.length === 4 ? [1, ...entry.shape] : entry.shape;
  if (shape.length !== 5 || shape[0] !== 1 || shape[2] !== channels) {
    throw new StepVideoError('ERR_SHAPE', 'latents must be [F, C, h, w] or [1, F, C, h, w]', { file, expected: `C = ${channels}`, got: `[${entry.shape.join(', ')}]` });
  }
  const data = hostTensorToF32(entry) ?? Float32Array.from(entry.data as ArrayLike<number>, Number);
  return { shape: shape as [number, number, number, number, number], data };
}
