// Video writers: MP4 (H.264 yuv420p through ffmpeg), PNG frames and YUV4MPEG2 (no ffmpeg needed).
// Frames are written as they are decoded. Nothing partial is left behind: every writer builds its
// output under a temporary name and renames it into place only when finish() succeeds; abort()
// or a failure removes it.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, createWriteStream, existsSync, statSync, type WriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
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

/** Where the ffmpeg in use came from: the FFMPEG_PATH variable, a system ffmpeg on PATH, or @ffmpeg-installer/ffmpeg. */
export type FfmpegSource = 'FFMPEG_PATH' | 'PATH' | 'bundled';

export interface FfmpegInfo {
  path: string;
  source: FfmpegSource;
  /** The first line of `ffmpeg -version`, without the copyright. */
  version: string;
}

/** The ffmpeg MP4 output uses, or the ERR_FFMPEG that says why there is none. */
export type FfmpegLookup = { ffmpeg: FfmpegInfo; error?: undefined } | { ffmpeg?: undefined; error: StepVideoError };

const NO_FFMPEG_ALTERNATIVES = '--format png (PNG frames) or --format y4m write video without it';

const requireHere = createRequire(import.meta.url);

/** The optional dependency's export ({ path, version, url }); it throws (a string) where it has no binary. */
function loadBundledFfmpeg(): unknown {
  return requireHere('@ffmpeg-installer/ffmpeg');
}

/** The version line of a runnable ffmpeg, or why it does not run. */
function probeFfmpeg(file: string, env: NodeJS.ProcessEnv): { version: string } | { problem: string } {
  const probe = spawnSync(file, ['-hide_banner', '-version'], { encoding: 'utf8', env, timeout: 15_000 });
  if (probe.error) return { problem: probe.error.message };
  if (probe.status !== 0) return { problem: `\`${file} -version\` exited with ${probe.signal ?? probe.status}` };
  const first = probe.stdout.split('\n')[0] ?? '';
  return { version: first.replace(/\s+Copyright.*$/, '').trim() };
}

/** `ffmpeg` in the folders of PATH, as the shell would find it. */
function ffmpegOnPath(env: NodeJS.ProcessEnv): string[] {
  const name = process.platform === 'win32' ? 'ffmpeg.exe' : 'ffmpeg';
  const found: string[] = [];
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const file = path.join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      if (statSync(file).isFile()) found.push(file);
    } catch {
      // not here
    }
  }
  return found;
}

/**
 * Finds ffmpeg: FFMPEG_PATH when set (one that does not run is an error naming it, never skipped),
 * else a system `ffmpeg` on PATH, else the static build of the optional dependency
 * @ffmpeg-installer/ffmpeg. Pure in `env` and `loadBundled`; lookupFfmpeg() caches its answer.
 */
export function locateFfmpeg(env: NodeJS.ProcessEnv, loadBundled: () => unknown = loadBundledFfmpeg): FfmpegLookup {
  const explicit = env.FFMPEG_PATH;
  if (explicit) {
    const probe = probeFfmpeg(explicit, env);
    if ('version' in probe) return { ffmpeg: { path: explicit, source: 'FFMPEG_PATH', version: probe.version } };
    return {
      error: new StepVideoError('ERR_FFMPEG', `FFMPEG_PATH names an ffmpeg that cannot be run (${probe.problem}): fix or unset it (then ffmpeg on PATH or the bundled one is used); ${NO_FFMPEG_ALTERNATIVES}`, { file: explicit }),
    };
  }
  for (const file of ffmpegOnPath(env)) {
    const probe = probeFfmpeg(file, env);
    if ('version' in probe) return { ffmpeg: { path: file, source: 'PATH', version: probe.version } };
  }
  let bundled: { path?: unknown } | undefined;
  let bundledProblem = 'it names no ffmpeg';
  try {
    bundled = loadBundled() as { path?: unknown } | undefined;
  } catch (error) {
    // The package throws strings ("Unsupported platform/architecture", a missing binary); absent, it is MODULE_NOT_FOUND.
    bundledProblem = (error as { code?: unknown } | undefined)?.code === 'MODULE_NOT_FOUND' ? 'it is not installed' : error instanceof Error ? error.message : String(error);
  }
  if (typeof bundled?.path === 'string') {
    const probe = probeFfmpeg(bundled.path, env);
    if ('version' in probe) return { ffmpeg: { path: bundled.path, source: 'bundled', version: probe.version } };
    bundledProblem = `${bundled.path}: ${probe.problem}`;
  }
  return {
    error: new StepVideoError(
      'ERR_FFMPEG',
      `ffmpeg was not found: install it (e.g. apt-get install ffmpeg), set FFMPEG_PATH, or reinstall stepvideo without --omit=optional so that @ffmpeg-installer/ffmpeg is present (@ffmpeg-installer/ffmpeg: ${bundledProblem}); ${NO_FFMPEG_ALTERNATIVES}`,
    ),
  };
}

let cachedLookup: FfmpegLookup | undefined;

/** locateFfmpeg() with the process's environment, once per process (resetFfmpegLookup() forgets it). */
export function lookupFfmpeg(): FfmpegLookup {
  cachedLookup ??= locateFfmpeg(process.env);
  return cachedLookup;
}

/** Forgets the cached lookup, so the next one sees a changed environment (tests). */
export function resetFfmpegLookup(): void {
  cachedLookup = undefined;
}

/** The ffmpeg to use; ERR_FFMPEG saying what to do when there is none. */
export function requireFfmpeg(): FfmpegInfo {
  const { ffmpeg, error } = lookupFfmpeg();
  if (error) throw error;
  return ffmpeg;
}

/** The ffmpeg executable's path (see lookupFfmpeg); undefined when there is none. */
export function findFfmpeg(): string | undefined {
  return lookupFfmpeg().ffmpeg?.path;
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

/** YUV4MPEG2, 4:2:0 (C420jpeg, BT.601 full range, said in the header: XCOLORRANGE=FULL, else players assume limited range): plays in ffplay/mpv, needs no encoder. */
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
      this.#stream.write(`YUV4MPEG2 W${this.options.width} H${this.options.height} F${this.options.fps ?? 25}:1 Ip A1:1 C420jpeg XCOLORRANGE=FULL\n`);
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

/** Opens a writer for `target`. MP4 needs ffmpeg (see lookupFfmpeg); a missing one is ERR_FFMPEG naming the alternatives. */
export function openVideoWriter(target: string, options: VideoWriterOptions): VideoWriter {
  if (!Number.isInteger(options.width) || !Number.isInteger(options.height) || options.width <= 0 || options.height <= 0) {
    throw new StepVideoError('ERR_ARGUMENT', 'invalid video size', { got: `${options.width}x${options.height}` });
  }
  switch (options.format) {
    case 'mp4':
      return new Mp4Writer(target, requireFfmpeg().path, options);
    case 'png':
      return new PngWriter(target, options);
    case 'y4m':
      return new Y4mWriter(target, options);
    default:
      throw new StepVideoError('ERR_ARGUMENT', 'unknown video format', { expected: 'mp4, png or y4m', got: options.format });
  }
}
