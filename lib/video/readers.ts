// Video readers, the counterpart of writers.ts, for inputs the VAE encodes (DPO pairs): any file
// ffmpeg decodes (MP4, MOV, WebM, MKV, ...; decoded to rgb24 over a pipe), YUV4MPEG2 (parsed here:
// no ffmpeg needed for what the Y4M writer writes) and folders of PNG frames (decoded here).
import { spawn } from 'node:child_process';
import { constants as bufferConstants } from 'node:buffer';
import { constants as fsConstants } from 'node:fs';
import { type FileHandle, access, open, readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';

import { StepVideoError, asStepVideoError, throwIfAborted } from '../errors.js';
import { decodePng } from './png-decode.js';
import { requireFfmpeg } from './writers.js';

export interface DecodedVideo {
  width: number;
  height: number;
  count: number;
  /** RGB8 [count, height, width, 3] */
  data: Uint8Array;
  /** How it was decoded: 'mp4' through ffmpeg (whatever the container), 'y4m' or 'png' here. */
  format: 'mp4' | 'y4m' | 'png';
  /** Frames per second, where the file says (not for PNG frames). */
  fps?: number;
}

export interface ReadVideoOptions {
  /** Read only the first N frames (a positive integer). */
  maxFrames?: number;
  signal?: AbortSignal;
}

/**
 * Reads a video: a folder of PNG frames (in the order of the number in their names, as the PNG
 * writer names them), a .png file (one frame), a .y4m file (4:2:0 in every siting, 4:2:2, 4:4:4,
 * 4:4:4 with alpha, mono; BT.601, full range where the header says XCOLORRANGE=FULL, as the Y4M
 * writer does, else limited range) or any other file through ffmpeg (see lookupFfmpeg).
 *
 * Errors: ERR_IO for a missing, unreadable or malformed input (naming it), ERR_UNSUPPORTED for valid
 * inputs these decoders do not handle, ERR_SHAPE for PNG frames of different sizes, ERR_FFMPEG when
 * ffmpeg is needed and missing or fails, ERR_ABORTED when the signal fires (ffmpeg is killed),
 * ERR_ARGUMENT for bad options.
 */
export async function readVideo(source: string, options: ReadVideoOptions = {}): Promise<DecodedVideo> {
  const { maxFrames, signal } = options;
  if (maxFrames !== undefined && (!Number.isSafeInteger(maxFrames) || maxFrames < 1)) {
    throw new StepVideoError('ERR_ARGUMENT', 'maxFrames must be a positive integer', { got: maxFrames });
  }
  throwIfAborted(signal, 'reading the video');
  const file = path.resolve(source);
  let info;
  try {
    info = await stat(file);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new StepVideoError('ERR_IO', 'video not found', { file, cause: error });
    throw asStepVideoError(error, 'ERR_IO', 'cannot read the video', { file });
  }
  try {
    await access(file, fsConstants.R_OK);
  } catch (error) {
    throw asStepVideoError(error, 'ERR_IO', 'cannot read the video', { file });
  }
  const limit = maxFrames ?? Number.POSITIVE_INFINITY;
  if (info.isDirectory()) return readPngFolder(file, limit, signal);
  const extension = path.extname(file).toLowerCase();
  // Own parsers read regular files only: opening a FIFO would block a libuv thread.
  if ((extension === '.y4m' || extension === '.png') && !info.isFile()) throw new StepVideoError('ERR_IO', 'not a regular file', { file });
  if (extension === '.y4m') return readY4m(file, limit, signal);
  if (extension === '.png') return pngFrames([file], signal);
  if (!info.isFile() && !info.isFIFO()) throw new StepVideoError('ERR_IO', 'not a file or a folder', { file });
  return readWithFfmpeg(file, maxFrames, signal);
}

/** RGB8 frames -> float frames [count, 3, H, W] in [-1, 1] (x / 127.5 - 1), the VAE encoder's input; toRgbFrames undoes it up to its truncation. */
export function toUnitFrames(video: DecodedVideo): Float32Array {
  const { width, height, count, data } = video;
  const plane = width * height;
  if (data.length !== count * plane * 3) {
    throw new StepVideoError('ERR_SHAPE', 'video data does not match its stated size', { expected: count * plane * 3, got: data.length });
  }
  const level = new Float32Array(256);
  for (let v = 0; v < 256; v++) level[v] = v / 127.5 - 1;
  const out = new Float32Array(data.length);
  for (let t = 0; t < count; t++) {
    const src = t * plane * 3;
    const r = t * plane * 3;
    const g = r + plane;
    const b = g + plane;
    for (let p = 0; p < plane; p++) {
      out[r + p] = level[data[src + 3 * p]!]!;
      out[g + p] = level[data[src + 3 * p + 1]!]!;
      out[b + p] = level[data[src + 3 * p + 2]!]!;
    }
  }
  return out;
}

/** A zeroed byte array, or ERR_OOM (instead of a bare RangeError) when it cannot be had. */
function allocate(bytes: number, file: string): Uint8Array {
  try {
    return new Uint8Array(bytes);
  } catch (error) {
    throw new StepVideoError('ERR_OOM', 'the decoded video does not fit in memory: read fewer frames (maxFrames)', { file, got: `${bytes} bytes`, cause: error });
  }
}

// ---- PNG frames ----

async function readPngFolder(dir: string, limit: number, signal: AbortSignal | undefined): Promise<DecodedVideo> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    throw asStepVideoError(error, 'ERR_IO', 'cannot list the folder of PNG frames', { file: dir });
  }
  // Hidden files are left out: editors' and writers' temporaries, macOS's ._ files.
  const pngs = names.filter((name) => !name.startsWith('.') && /\.png$/i.test(name));
  if (pngs.length === 0) throw new StepVideoError('ERR_IO', 'no PNG frames in the folder', { file: dir, expected: 'files named like frame_00000.png' });
  const numbered = pngs.map((name) => ({ name, number: /(\d+)\D*$/.exec(name)?.[1] }));
  if (numbered.length > 1) {
    const unnumbered = numbered.find((f) => f.number === undefined);
    if (unnumbered) throw new StepVideoError('ERR_IO', 'a PNG frame without a frame number in its name (the order would be a guess)', { file: path.join(dir, unnumbered.name) });
  }
  // BigInt: frame numbers are compared as numbers (frame_10 after frame_9) of any length.
  numbered.sort((a, b) => {
    const [x, y] = [BigInt(a.number ?? 0), BigInt(b.number ?? 0)];
    return x < y ? -1 : x > y ? 1 : 0;
  });
  for (let i = 1; i < numbered.length; i++) {
    if (BigInt(numbered[i]!.number!) === BigInt(numbered[i - 1]!.number!)) {
      throw new StepVideoError('ERR_IO', 'two PNG frames carry the same frame number', { file: dir, got: [numbered[i - 1]!.name, numbered[i]!.name] });
    }
  }
  const chosen = numbered.slice(0, Math.min(numbered.length, limit)).map((f) => path.join(dir, f.name));
  return pngFrames(chosen, signal);
}

async function pngFrames(files: string[], signal: AbortSignal | undefined): Promise<DecodedVideo> {
  let width = 0;
  let height = 0;
  let data: Uint8Array | undefined;
  for (const [i, file] of files.entries()) {
    throwIfAborted(signal, 'reading the video');
    let bytes: Buffer;
    try {
      bytes = await readFile(file, signal ? { signal } : undefined);
    } catch (error) {
      throwIfAborted(signal, 'reading the video');
      throw asStepVideoError(error, 'ERR_IO', 'cannot read the PNG frame', { file });
    }
    const png = decodePng(bytes, file);
    if (data === undefined) {
      ({ width, height } = png);
      data = allocate(files.length * width * height * 3, file);
    } else if (png.width !== width || png.height !== height) {
      throw new StepVideoError('ERR_SHAPE', 'the PNG frames differ in size', { file, expected: `${width}x${height} (as ${files[0]})`, got: `${png.width}x${png.height}` });
    }
    data.set(png.rgb, i * width * height * 3);
  }
  return { width, height, count: files.length, data: data!, format: 'png' };
}

// ---- YUV4MPEG2 ----

interface Y4mLayout {
  /** Chroma subsampling factors (1: none); undefined chroma for mono. */
  chroma?: { sx: number; sy: number; centredX: boolean; centredY: boolean };
  /** An alpha plane follows (skipped). */
  alpha: boolean;
}

// C tags: 4:2:0 differ in where the chroma samples sit. jpeg: centred in each 2x2 block (what the
// writer's 2x2 mean is); mpeg2: horizontally on the left column; paldv: taken as centred (its
// alternating Cb/Cr siting is finer than this reader's bilinear upsampling cares about).
const Y4M_LAYOUTS: Record<string, Y4mLayout> = {
  '420jpeg': { chroma: { sx: 2, sy: 2, centredX: true, centredY: true }, alpha: false },
  '420': { chroma: { sx: 2, sy: 2, centredX: true, centredY: true }, alpha: false },
  '420paldv': { chroma: { sx: 2, sy: 2, centredX: true, centredY: true }, alpha: false },
  '420mpeg2': { chroma: { sx: 2, sy: 2, centredX: false, centredY: true }, alpha: false },
  '422': { chroma: { sx: 2, sy: 1, centredX: false, centredY: true }, alpha: false },
  '444': { chroma: { sx: 1, sy: 1, centredX: true, centredY: true }, alpha: false },
  '444alpha': { chroma: { sx: 1, sy: 1, centredX: true, centredY: true }, alpha: true },
  mono: { alpha: false },
};

// BT.601 (Kr 0.299, Kb 0.114): the exact inverse of the writer's forward matrix.
const KR = 0.299;
const KB = 0.114;
const KG = 1 - KR - KB;
const CR_TO_R = 2 * (1 - KR);
const CB_TO_B = 2 * (1 - KB);
const CB_TO_G = (2 * KB * (1 - KB)) / KG;
const CR_TO_G = (2 * KR * (1 - KR)) / KG;

interface Y4mHeader {
  width: number;
  height: number;
  fps: number | undefined;
  layout: Y4mLayout;
  fullRange: boolean;
}

function y4mError(what: string, file: string, details: { expected?: unknown; got?: unknown } = {}): StepVideoError {
  return new StepVideoError('ERR_IO', `not a valid YUV4MPEG2 file: ${what}`, { ...details, file });
}

function parseY4mHeader(line: string, file: string): Y4mHeader {
  const [magic, ...params] = line.split(' ').filter((p) => p !== '');
  if (magic !== 'YUV4MPEG2') throw y4mError('it does not start with YUV4MPEG2', file, { got: line.slice(0, 16) });
  let width = 0;
  let height = 0;
  let fps: number | undefined;
  let colour = '420jpeg'; // the format's default
  let fullRange = false; // what players assume when the header says nothing
  for (const param of params) {
    const value = param.slice(1);
    switch (param[0]) {
      case 'W':
        width = /^\d+$/.test(value) ? Number(value) : 0;
        break;
      case 'H':
        height = /^\d+$/.test(value) ? Number(value) : 0;
        break;
      case 'F': {
        const m = /^(\d+):(\d+)$/.exec(value);
        if (m && Number(m[1]) > 0 && Number(m[2]) > 0) fps = Number(m[1]) / Number(m[2]);
        break;
      }
      case 'C':
        colour = value;
        break;
      case 'X':
        if (value.toUpperCase() === 'COLORRANGE=FULL') fullRange = true;
        else if (value.toUpperCase() === 'COLORRANGE=LIMITED') fullRange = false;
        break;
      default: // I (interlacing: fields are kept interleaved), A (pixel aspect) and the rest do not change the pixels
    }
  }
  if (width <= 0 || height <= 0 || width * height > 1 << 28) throw y4mError('no valid frame size (W and H) in the header', file, { got: line });
  const layout = Y4M_LAYOUTS[colour];
  if (layout === undefined) {
    throw new StepVideoError('ERR_UNSUPPORTED', `Y4M colour space C${colour} is not supported`, { file, expected: `one of ${Object.keys(Y4M_LAYOUTS).map((c) => `C${c}`).join(', ')}`, got: `C${colour}` });
  }
  return { width, height, fps, layout, fullRange };
}

/** For each output column (or row): the two chroma samples it lies between and the weight of the second. */
function chromaTaps(size: number, factor: number, centred: boolean): { first: Int32Array; second: Int32Array; weight: Float32Array; samples: number } {
  const samples = Math.ceil(size / factor);
  const first = new Int32Array(size);
  const second = new Int32Array(size);
  const weight = new Float32Array(size);
  for (let x = 0; x < size; x++) {
    // Chroma sample j sits at luma position j·factor (+ (factor - 1) / 2 when centred).
    const at = centred ? (x + 0.5) / factor - 0.5 : x / factor;
    const clamped = Math.min(samples - 1, Math.max(0, at));
    const j = Math.floor(clamped);
    first[x] = j;
    second[x] = Math.min(samples - 1, j + 1);
    weight[x] = clamped - j;
  }
  return { first, second, weight, samples };
}

/** Converts one Y4M frame (planes back to back) to RGB8 in `out` (a clamped view: it rounds and clamps). */
function y4mFrameToRgb(frame: Uint8Array, header: Y4mHeader, out: Uint8ClampedArray, xTaps: ReturnType<typeof chromaTaps> | undefined, yTaps: ReturnType<typeof chromaTaps> | undefined, luma: Float32Array, chroma: Float32Array): void {
  const { width, height } = header;
  if (xTaps === undefined || yTaps === undefined) {
    for (let p = 0; p < width * height; p++) {
      const v = luma[frame[p]!]!;
      out[3 * p] = v;
      out[3 * p + 1] = v;
      out[3 * p + 2] = v;
    }
    return;
  }
  const cw = xTaps.samples;
  const cb = width * height;
  const cr = cb + cw * yTaps.samples;
  for (let y = 0; y < height; y++) {
    const row0 = yTaps.first[y]! * cw;
    const row1 = yTaps.second[y]! * cw;
    const wy = yTaps.weight[y]!;
    for (let x = 0; x < width; x++) {
      const c0 = xTaps.first[x]!;
      const c1 = xTaps.second[x]!;
      const wx = xTaps.weight[x]!;
      // Bilinear in the mapped values: the range mapping is affine, so mapping then interpolating is the same.
      const u0 = chroma[frame[cb + row0 + c0]!]! + wx * (chroma[frame[cb + row0 + c1]!]! - chroma[frame[cb + row0 + c0]!]!);
      const u1 = chroma[frame[cb + row1 + c0]!]! + wx * (chroma[frame[cb + row1 + c1]!]! - chroma[frame[cb + row1 + c0]!]!);
      const v0 = chroma[frame[cr + row0 + c0]!]! + wx * (chroma[frame[cr + row0 + c1]!]! - chroma[frame[cr + row0 + c0]!]!);
      const v1 = chroma[frame[cr + row1 + c0]!]! + wx * (chroma[frame[cr + row1 + c1]!]! - chroma[frame[cr + row1 + c0]!]!);
      const u = u0 + wy * (u1 - u0);
      const v = v0 + wy * (v1 - v0);
      const l = luma[frame[y * width + x]!]!;
      const o = 3 * (y * width + x);
      out[o] = l + CR_TO_R * v;
      out[o + 1] = l - CB_TO_G * u - CR_TO_G * v;
      out[o + 2] = l + CB_TO_B * u;
    }
  }
}

async function readY4m(file: string, limit: number, signal: AbortSignal | undefined): Promise<DecodedVideo> {
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch (error) {
    throw asStepVideoError(error, 'ERR_IO', 'cannot open the video', { file });
  }
  try {
    const read = async (buffer: Uint8Array, length: number, position: number): Promise<number> => {
      try {
        let done = 0;
        while (done < length) {
          const { bytesRead } = await handle.read(buffer, done, length - done, position + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
        return done;
      } catch (error) {
        throw asStepVideoError(error, 'ERR_IO', 'cannot read the video', { file });
      }
    };
    const size = (await handle.stat()).size;
    const start = new Uint8Array(Math.min(size, 4096));
    const got = await read(start, start.length, 0);
    const headerEnd = start.subarray(0, got).indexOf(0x0a);
    if (headerEnd < 0) {
      if (!Buffer.from(start.subarray(0, 10)).toString('latin1').startsWith('YUV4MPEG2')) throw y4mError('it does not start with YUV4MPEG2', file);
      throw y4mError('the header line does not end within 4096 bytes', file);
    }
    const header = parseY4mHeader(Buffer.from(start.subarray(0, headerEnd)).toString('latin1'), file);
    const { width, height, layout } = header;
    const xTaps = layout.chroma && chromaTaps(width, layout.chroma.sx, layout.chroma.centredX);
    const yTaps = layout.chroma && chromaTaps(height, layout.chroma.sy, layout.chroma.centredY);
    const lumaBytes = width * height;
    const frameBytes = lumaBytes * (layout.alpha ? 2 : 1) + (xTaps && yTaps ? 2 * xTaps.samples * yTaps.samples : 0);

    // Range mapping as lookup tables: limited range puts black at 16, white at 235 and chroma's ±0.5 at 128 ± 112.
    const luma = new Float32Array(256);
    const chroma = new Float32Array(256);
    for (let v = 0; v < 256; v++) {
      luma[v] = header.fullRange ? v : ((v - 16) * 255) / 219;
      chroma[v] = header.fullRange ? v - 128 : ((v - 128) * 255) / 224;
    }

    // Every frame takes at least "FRAME\n" and its planes: an upper bound on the count to allocate for.
    let position = headerEnd + 1;
    const capacity = Math.min(limit, Math.floor((size - position) / (frameBytes + 6)));
    const rgbBytes = width * height * 3;
    const data = allocate(capacity * rgbBytes, file);
    const clamped = new Uint8ClampedArray(data.buffer, data.byteOffset, data.byteLength);
    const frame = new Uint8Array(frameBytes);
    const marker = new Uint8Array(128);
    let count = 0;
    while (count < limit && position < size) {
      throwIfAborted(signal, 'reading the video');
      const markerBytes = await read(marker, Math.min(marker.length, size - position), position);
      const lineEnd = marker.subarray(0, markerBytes).indexOf(0x0a);
      const line = Buffer.from(marker.subarray(0, lineEnd < 0 ? Math.min(markerBytes, 16) : lineEnd)).toString('latin1');
      if (lineEnd < 0 || !(line === 'FRAME' || line.startsWith('FRAME '))) {
        throw y4mError(`no FRAME marker before frame ${count} (byte ${position})`, file, { expected: 'FRAME', got: line });
      }
      position += lineEnd + 1;
      const planeBytes = await read(frame, frameBytes, position);
      if (planeBytes < frameBytes) throw y4mError(`frame ${count} is cut short (truncated file)`, file, { expected: `${frameBytes} bytes`, got: planeBytes });
      position += frameBytes;
      if (count >= capacity) throw new StepVideoError('ERR_INTERNAL', 'Y4M frame count bound broken', { file });
      y4mFrameToRgb(frame, header, clamped.subarray(count * rgbBytes, (count + 1) * rgbBytes), xTaps, yTaps, luma, chroma);
      count++;
    }
    if (count === 0) throw y4mError('no frames', file);
    const video: DecodedVideo = { width, height, count, data: count === capacity ? data : data.slice(0, count * rgbBytes), format: 'y4m' };
    if (header.fps !== undefined) video.fps = header.fps;
    return video;
  } finally {
    await handle.close().catch(() => {});
  }
}

// ---- anything else: ffmpeg ----

/** The frame size and rate ffmpeg writes, from its stream listing: the output's (after autorotation), else the input's. */
function parseFfmpegStreams(log: string): { width: number; height: number; fps?: number } | undefined {
  const output = log.indexOf('\nOutput #0');
  for (const section of output >= 0 ? [log.slice(output), log] : [log]) {
    // ", WxH" after "Video:": the ", " keeps codec tags such as "0x18424752" out.
    const stream = /Stream #\d+:\d+[^\n]*?: Video: [^\n]*?, (\d+)x(\d+)(?=[ ,\n]|$)[^\n]*/.exec(section);
    if (stream === null) continue;
    const rate = /, (\d+(?:\.\d+)?)(k?) fps/.exec(stream[0]);
    const found: { width: number; height: number; fps?: number } = { width: Number(stream[1]), height: Number(stream[2]) };
    if (rate) found.fps = Number(rate[1]) * (rate[2] === 'k' ? 1000 : 1);
    return found;
  }
  return undefined;
}

function readWithFfmpeg(file: string, maxFrames: number | undefined, signal: AbortSignal | undefined): Promise<DecodedVideo> {
  const ffmpeg = requireFfmpeg().path;
  // Checked again here: from now until the listener is added nothing awaits, so no abort slips through.
  throwIfAborted(signal, 'reading the video');
  // "file:" so that a name with a colon is never taken for a protocol; the first video stream only.
  const args = ['-hide_banner', '-nostdin', '-nostats', '-loglevel', 'info', '-i', `file:${file}`, '-map', '0:v:0'];
  if (maxFrames !== undefined) args.push('-frames:v', String(maxFrames));
  // swscale's default YUV -> RGB takes each chroma sample for its whole block and rounds loosely;
  // interpolated chroma and exact rounding take a third of the error off the writer's MP4s.
  args.push('-sws_flags', 'bicubic+accurate_rnd+full_chroma_int', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1');
  return new Promise<DecodedVideo>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let head = ''; // the stream listing comes first
    let tail = ''; // the reason for a failure comes last
    let failure: StepVideoError | undefined;
    let settled = false;
    const child = spawn(ffmpeg, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const stop = (error: StepVideoError) => {
      failure ??= error;
      child.kill('SIGKILL');
    };
    const onAbort = () => stop(new StepVideoError('ERR_ABORTED', 'reading the video aborted', { file, cause: signal?.reason }));
    signal?.addEventListener('abort', onAbort, { once: true });
    const finish = (outcome: DecodedVideo | StepVideoError) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      if (outcome instanceof StepVideoError) reject(outcome);
      else resolve(outcome);
    };
    child.stdout!.on('data', (chunk: Buffer) => {
      total += chunk.length;
      if (total > bufferConstants.MAX_LENGTH) {
        stop(new StepVideoError('ERR_OOM', 'the decoded video is larger than one buffer can hold: read fewer frames (maxFrames)', { file, got: `more than ${bufferConstants.MAX_LENGTH} bytes` }));
        return;
      }
      chunks.push(chunk);
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      if (head.length < 1 << 16) head += text;
      tail = (tail + text).slice(-4096);
    });
    // Stream errors surface through the exit status; handled here so that none is ever uncaught.
    child.stdout!.on('error', () => {});
    child.stderr!.on('error', () => {});
    child.on('error', (error) => {
      failure ??= asStepVideoError(error, 'ERR_FFMPEG', 'ffmpeg could not be started', { file: ffmpeg });
      // A process that never started emits no 'close' on every Node version: settle here.
      if (child.pid === undefined) finish(failure);
    });
    child.on('close', (code, killedBy) => {
      try {
        settle(code, killedBy);
      } catch (error) {
        // Nothing may escape an event handler: it would take the process down.
        finish(asStepVideoError(error, 'ERR_INTERNAL', 'reading the video failed', { file }));
      }
    });
    const settle = (code: number | null, killedBy: NodeJS.Signals | null): void => {
      if (failure) return finish(failure);
      if (code !== 0) {
        const last = tail.trim().split('\n').pop()?.trim() ?? '';
        if (killedBy !== null) return finish(new StepVideoError('ERR_FFMPEG', `ffmpeg was killed (${killedBy}) while decoding the video`, { file }));
        return finish(new StepVideoError('ERR_IO', `ffmpeg cannot decode the video (exit ${code})${last ? `: ${last}` : ''}`, { file }));
      }
      const streams = parseFfmpegStreams(head);
      if (streams === undefined) {
        return finish(new StepVideoError(total === 0 ? 'ERR_IO' : 'ERR_FFMPEG', total === 0 ? 'no video stream in the file' : "no frame size in ffmpeg's stream listing", { file }));
      }
      const frameBytes = streams.width * streams.height * 3;
      if (total === 0) return finish(new StepVideoError('ERR_IO', 'the video has no frames', { file }));
      if (total % frameBytes !== 0) {
        return finish(new StepVideoError('ERR_FFMPEG', 'ffmpeg wrote a partial frame', { file, expected: `a multiple of ${frameBytes} bytes (${streams.width}x${streams.height} rgb24)`, got: total }));
      }
      // A buffer of its own (Buffer.concat may hand out a slice of Node's shared pool).
      const data = allocate(total, file);
      let at = 0;
      for (const chunk of chunks) {
        data.set(chunk, at);
        at += chunk.length;
      }
      chunks.length = 0;
      const video: DecodedVideo = { width: streams.width, height: streams.height, count: total / frameBytes, data, format: 'mp4' };
      if (streams.fps !== undefined) video.fps = streams.fps;
      finish(video);
    };
  });
}
