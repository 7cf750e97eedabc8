// Video writers: MP4 (H.264 yuv420p through ffmpeg), PNG frames and YUV4MPEG2 (no ffmpeg needed).
// Frames are written as they are decoded. Nothing partial is left behind: every writer builds its
// output under a temporary name and renames it into place only when finish() succeeds; abort()
// or a failure removes it.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, type WriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

import { StepVideoError, asStepVideoError } from '../errors.js';
import { temporaryPathFor } from '../util/files.js';
import type { RgbFrames } from './frames.js';
import { encodePng } from './png.js';

export type VideoFormat = 'mp4' | 'png' | 'y4m';

export interface VideoWriterOptions {
  format: VideoFormat;
  width: number;
  height: number;
  /** Frames per second (default 25, as the official pipeline writes). */
  fps?: number;
  /** MP4 only: the official temporal denoise filter (atadenoise 0.1), default true. */
  denoise?: boolean;
  /** MP4 only: x264 constant rate factor (default 25, what imageio's quality 5 maps to). */
  crf?: number;
}

export interface VideoWriter {
  readonly path: string;
  readonly framesWritten: number;
  /** Appends frames (same size as declared). Resolves once they are handed off (back-pressure). */
  write(frames: RgbFrames): Promise<void>;
  /** Completes the file and moves it into place; returns its path. */
  finish(): Promise<string>;
  /** Stops and removes everything written so far. Safe to call at any time, also after a failure. */
  abort(): Promise<void>;
}

/** The ffmpeg executable: FFMPEG_PATH, else `ffmpeg` on PATH; undefined when there is none. */
export function findFfmpeg(): string | undefined {
  const candidate = process.env.FFMPEG_PATH || 'ffmpeg';
  const probe = spawnSync(candidate, ['-hide_banner', '-version'], { stdio: 'ignore' });
  return probe.error || probe.status !== 0 ? undefined : candidate;
}

function checkFrames(frames: RgbFrames, options: VideoWriterOptions): void {
  if (frames.width !== options.width || frames.height !== options.height || frames.data.length !== frames.count * frames.width * frames.height * 3) {
    throw new StepVideoError('ERR_SHAPE', 'frames do not match the video size', {
      expected: `${options.width}x${options.height}`,
      got: `${frames.width}x${frames.height} (${frames.data.length} bytes for ${frames.count} frames)`,
    });
  }
}

class Mp4Writer implements VideoWriter {
  readonly path: string;
  framesWritten = 0;
  readonly #temporary: string;
  readonly #process: ChildProcess;
  readonly #done: Promise<void>;
  #stderr = '';
  #failed: StepVideoError | undefined;

  constructor(target: string, ffmpeg: string, readonly options: VideoWriterOptions) {
    this.path = path.resolve(target);
    this.#temporary = `${temporaryPathFor(this.path)}.mp4`;
    if (options.width % 2 !== 0 || options.height % 2 !== 0) {
      throw new StepVideoError('ERR_ARGUMENT', 'H.264 yuv420p needs an even frame size', { got: `${options.width}x${options.height}` });
    }
    const args = ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${options.width}x${options.height}`, '-r', String(options.fps ?? 25), '-i', 'pipe:0'];
    if (options.denoise ?? true) args.push('-vf', 'atadenoise=0a=0.1:0b=0.1:1a=0.1:1b=0.1');
    args.push('-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-crf', String(options.crf ?? 25), '-movflags', '+faststart', '-f', 'mp4', this.#temporary);
    this.#process = spawn(ffmpeg, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    this.#process.stderr!.on('data', (d: Buffer) => {
      this.#stderr = (this.#stderr + d.toString()).slice(-4000);
    });
    // An EPIPE on stdin surfaces through the exit status below.
    this.#process.stdin!.on('error', () => {});
    this.#done = new Promise((resolve) => {
      this.#process.on('error', (error) => {
        this.#failed ??= asStepVideoError(error, 'ERR_FFMPEG', 'ffmpeg could not be started', { file: ffmpeg });
        resolve();
      });
      this.#process.on('close', (code, signal) => {
        if (code !== 0) {
          const last = this.#stderr.trim().split('\n').pop() ?? '';
          this.#failed ??= new StepVideoError('ERR_FFMPEG', `ffmpeg failed (${signal ?? `exit ${code}`})${last ? `: ${last}` : ''}`, { file: this.path });
        }
        resolve();
      });
    });
  }

  async write(frames: RgbFrames): Promise<void> {
    checkFrames(frames, this.options);
    if (this.#failed) throw this.#failed;
    const stdin = this.#process.stdin!;
    const flushed = stdin.write(frames.data);
    this.framesWritten += frames.count;
    if (!flushed) {
      await new Promise<void>((resolve) => {
        const onDrain = () => {
          stdin.off('close', onDrain);
          resolve();
        };
        stdin.once('drain', onDrain);
        stdin.once('close', onDrain);
      });
    }
    if (this.#failed) throw this.#failed;
  }

  async finish(): Promise<string> {
    this.#process.stdin!.end();
    await this.#done;
    if (this.#failed) {
      await rm(this.#temporary, { force: true });
      throw this.#failed;
    }
    if (this.framesWritten === 0) {
      await rm(this.#temporary, { force: true });
      throw new StepVideoError('ERR_ARGUMENT', 'no frames were written', { file: this.path });
    }
    await rename(this.#temporary, this.path);
    return this.path;
  }

  async abort(): Promise<void> {
    this.#failed ??= new StepVideoError('ERR_ABORTED', 'video writing aborted', { file: this.path });
    this.#process.kill('SIGKILL');
    await this.#done;
    await rm(this.#temporary, { force: true });
  }
}

class PngWriter implements VideoWriter {
  readonly path: string;
  framesWritten = 0;
  readonly #temporary: string;
  #ready: Promise<void> | undefined;

  constructor(target: string, readonly options: VideoWriterOptions) {
    this.path = path.resolve(target);
    this.#temporary = temporaryPathFor(this.path);
  }

  async write(frames: RgbFrames): Promise<void> {
    checkFrames(frames, this.options);
    this.#ready ??= mkdir(this.#temporary, { recursive: true }).then(() => undefined);
    await this.#ready;
    const size = frames.width * frames.height * 3;
    for (let i = 0; i < frames.count; i++) {
      const png = encodePng(frames.data.subarray(i * size, (i + 1) * size), frames.width, frames.height);
      await writeFile(path.join(this.#temporary, `frame_${String(this.framesWritten).padStart(5, '0')}.png`), png);
      this.framesWritten++;
    }
  }

  async finish(): Promise<string> {
    if (this.framesWritten === 0) throw new StepVideoError('ERR_ARGUMENT', 'no frames were written', { file: this.path });
    if (existsSync(this.path)) await rm(this.path, { recursive: true, force: true });
    await rename(this.#temporary, this.path);
    return this.path;
  }

  async abort(): Promise<void> {
    await rm(this.#temporary, { recursive: true, force: true });
  }
}

/** YUV4MPEG2, 4:2:0 (C420jpeg, BT.601 full range): plays in ffplay/mpv, needs no encoder. */
class Y4mWriter implements VideoWriter {
  readonly path: string;
  framesWritten = 0;
  readonly #temporary: string;
  #stream: WriteStream | undefined;
  #error: Error | undefined;

  constructor(target: string, readonly options: VideoWriterOptions) {
    this.path = path.resolve(target);
    this.#temporary = temporaryPathFor(this.path);
    if (options.width % 2 !== 0 || options.height % 2 !== 0) {
      throw new StepVideoError('ERR_ARGUMENT', '4:2:0 video needs an even frame size', { got: `${options.width}x${options.height}` });
    }
  }

  #open(): WriteStream {
    if (this.#stream === undefined) {
      this.#stream = createWriteStream(this.#temporary);
      this.#stream.on('error', (error) => (this.#error = error));
      this.#stream.write(`YUV4MPEG2 W${this.options.width} H${this.options.height} F${this.options.fps ?? 25}:1 Ip A1:1 C420jpeg\n`);
    }
    return this.#stream;
  }

  async write(frames: RgbFrames): Promise<void> {
    checkFrames(frames, this.options);
    const stream = this.#open();
    const { width, height } = frames;
    const size = width * height;
    for (let i = 0; i < frames.count; i++) {
      const rgb = frames.data.subarray(i * size * 3, (i + 1) * size * 3);
      const yuv = Buffer.alloc(size + size / 2);
      for (let p = 0; p < size; p++) {
        const r = rgb[p * 3]!, g = rgb[p * 3 + 1]!, b = rgb[p * 3 + 2]!;
        yuv[p] = Math.round(0.299 * r + 0.587 * g + 0.114 * b);
      }
      const cw = width / 2;
      for (let y = 0; y < height / 2; y++) {
        for (let x = 0; x < cw; x++) {
          let r = 0, g = 0, b = 0;
          for (const [dy, dx] of [[0, 0], [0, 1], [1, 0], [1, 1]] as const) {
            const p = ((2 * y + dy) * width + 2 * x + dx) * 3;
            r += rgb[p]!;
            g += rgb[p + 1]!;
            b += rgb[p + 2]!;
          }
          r /= 4;
          g /= 4;
          b /= 4;
          yuv[size + y * cw + x] = Math.min(255, Math.max(0, Math.round(128 - 0.168736 * r - 0.331264 * g + 0.5 * b)));
          yuv[size + size / 4 + y * cw + x] = Math.min(255, Math.max(0, Math.round(128 + 0.5 * r - 0.418688 * g - 0.081312 * b)));
        }
      }
      stream.write('FRAME\n');
      if (!stream.write(yuv)) await new Promise<void>((resolve) => stream.once('drain', resolve));
      this.framesWritten++;
    }
    if (this.#error) throw asStepVideoError(this.#error, 'ERR_IO', 'cannot write video', { file: this.path });
  }

  async finish(): Promise<string> {
    if (this.framesWritten === 0) throw new StepVideoError('ERR_ARGUMENT', 'no frames were written', { file: this.path });
    const stream = this.#open();
    await new Promise<void>((resolve) => stream.end(resolve));
    if (this.#error) {
      await rm(this.#temporary, { force: true });
      throw asStepVideoError(this.#error, 'ERR_IO', 'cannot write video', { file: this.path });
    }
    await rename(this.#temporary, this.path);
    return this.path;
  }

  async abort(): Promise<void> {
    const stream = this.#stream;
    if (stream !== undefined && !stream.closed) {
      // The file is opened asynchronously: wait until the stream has closed, or an open still in
      // flight could recreate the file after it was removed.
      await new Promise<void>((resolve) => {
        stream.once('close', () => resolve());
        stream.destroy();
      });
    }
    await rm(this.#temporary, { force: true });
  }
}

/** Opens a writer for `target`. MP4 needs ffmpeg (FFMPEG_PATH or PATH); a missing one is ERR_FFMPEG naming the alternatives. */
export function openVideoWriter(target: string, options: VideoWriterOptions): VideoWriter {
  if (!Number.isInteger(options.width) || !Number.isInteger(options.height) || options.width <= 0 || options.height <= 0) {
    throw new StepVideoError('ERR_ARGUMENT', 'invalid video size', { got: `${options.width}x${options.height}` });
  }
  switch (options.format) {
    case 'mp4': {
      const ffmpeg = findFfmpeg();
      if (ffmpeg === undefined) {
        throw new StepVideoError('ERR_FFMPEG', 'ffmpeg was not found (install it, or set FFMPEG_PATH); --format png (PNG frames) or --format y4m work without it');
      }
      return new Mp4Writer(target, ffmpeg, options);
    }
    case 'png':
      return new PngWriter(target, options);
    case 'y4m':
      return new Y4mWriter(target, options);
    default:
      throw new StepVideoError('ERR_ARGUMENT', 'unknown video format', { expected: 'mp4, png or y4m', got: options.format });
  }
}
