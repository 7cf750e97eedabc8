// Video post-processing and writers: the official arithmetic, the 540p crop, PNG and Y4M bytes,
// MP4 through ffmpeg (FFMPEG_PATH, else PATH, else the bundled @ffmpeg-installer build), and that
// nothing partial stays behind on abort or failure.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inflateSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';

import { type StepVideoError, isStepVideoError } from '../../lib/errors.js';
import { encodePng, findFfmpeg, locateFfmpeg, lookupFfmpeg, openVideoWriter, requireFfmpeg, resetFfmpegLookup, standard540pCrop, toRgbFrames, type RgbFrames } from '../../lib/video/index.js';
import { probeVideo } from '../helpers/pipeline.js';
import { FFMPEG_TOOLS, pathWithout } from '../helpers/bare-path.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-video-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function gradientFrames(count: number, height: number, width: number): RgbFrames {
  const data = new Uint8Array(count * height * width * 3);
  for (let t = 0; t < count; t++)
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) {
        const p = ((t * height + y) * width + x) * 3;
        data[p] = (x * 4 + t * 8) & 0xff;
        data[p + 1] = (y * 4) & 0xff;
        data[p + 2] = (128 + t * 3) & 0xff;
      }
  return { width, height, count, data };
}

function decodePng(png: Buffer): { width: number; height: number; rgb: Uint8Array } {
  expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  let offset = 8;
  let width = 0;
  let height = 0;
  const idat: Buffer[] = [];
  while (offset < png.length) {
    const length = png.readUInt32BE(offset);
    const type = png.toString('ascii', offset + 4, offset + 8);
    const data = png.subarray(offset + 8, offset + 8 + length);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      expect([data[8], data[9]]).toEqual([8, 2]);
    }
    if (type === 'IDAT') idat.push(data);
    offset += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * 3;
  const rgb = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    for (let x = 0; x < stride; x++) {
      const value = raw[y * (stride + 1) + 1 + x]!;
      rgb[y * stride + x] = filter === 2 && y > 0 ? (value + rgb[(y - 1) * stride + x]!) & 0xff : value;
    }
  }
  return { width, height, rgb };
}

// ---- content checks: what a writer wrote, decoded, against the frames that went in ----

/** Saturated colours whose channels are 0 or 255: any channel swap moves some of them by 255. */
const SATURATED: ReadonlyArray<readonly [number, number, number]> = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]];
/** Mid-range colours: no channel at 0 or 255, so nothing clips and a range error shows in full. */
const MIDTONES: ReadonlyArray<readonly [number, number, number]> = [[200, 100, 50], [60, 180, 90], [40, 70, 210], [230, 220, 30]];
const BLOCK = 16;

/** Flat 16x16 blocks of four colours, the pattern moving by one colour per frame (frame order shows). */
function blockFrames(count: number, height: number, width: number, colors: ReadonlyArray<readonly [number, number, number]>): RgbFrames {
  const data = new Uint8Array(count * height * width * 3);
  for (let t = 0; t < count; t++)
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) data.set(colors[(Math.floor(x / BLOCK) + 3 * Math.floor(y / BLOCK) + t) % colors.length]!, ((t * height + y) * width + x) * 3);
  return { width, height, count, data };
}

/** Largest |a - b| over all channels of the pixels at least `margin` pixels inside their 16x16 block. */
function maxBlockInteriorError(a: Uint8Array, b: Uint8Array, frames: RgbFrames, margin: number): number {
  const { count, height, width } = frames;
  let worst = 0;
  for (let t = 0; t < count; t++)
    for (let y = 0; y < height; y++) {
      if (y % BLOCK < margin || y % BLOCK >= BLOCK - margin) continue;
      for (let x = 0; x < width; x++) {
        if (x % BLOCK < margin || x % BLOCK >= BLOCK - margin) continue;
        for (let c = 0; c < 3; c++) {
          const i = ((t * height + y) * width + x) * 3 + c;
          worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
        }
      }
    }
  return worst;
}

/** The frames as a writer that exchanged R and B would have stored them. */
function swapRedBlue(frames: RgbFrames): Uint8Array {
  const out = Uint8Array.from(frames.data);
  for (let i = 0; i < out.length; i += 3) [out[i], out[i + 2]] = [frames.data[i + 2]!, frames.data[i]!];
  return out;
}

/** The frames as H.264 yuv420p (BT.601, limited range) with Cb and Cr exchanged would show them. */
function swapChroma(frames: RgbFrames): Uint8Array {
  const out = new Uint8Array(frames.data.length);
  const clamp = (v: number) => Math.min(255, Math.max(0, Math.round(v)));
  for (let i = 0; i < out.length; i += 3) {
    const [r, g, b] = [frames.data[i]!, frames.data[i + 1]!, frames.data[i + 2]!];
    const y = 16 + (219 / 255) * (0.299 * r + 0.587 * g + 0.114 * b);
    const cb = 128 + (224 / 255) * (-0.168736 * r - 0.331264 * g + 0.5 * b);
    const cr = 128 + (224 / 255) * (0.5 * r - 0.418688 * g - 0.081312 * b);
    const [u, v] = [cr - 128, cb - 128]; // exchanged
    const l = (255 / 219) * (y - 16);
    out[i] = clamp(l + (255 / 224) * 1.402 * v);
    out[i + 1] = clamp(l - (255 / 224) * (0.344136 * u + 0.714136 * v));
    out[i + 2] = clamp(l + (255 / 224) * 1.772 * u);
  }
  return out;
}

/** A video file decoded by ffmpeg to rgb24, frame after frame. */
function decodeToRgb24(file: string, ffmpeg = requireFfmpeg().path): Buffer {
  const result = spawnSync(ffmpeg, ['-hide_banner', '-loglevel', 'error', '-i', file, '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'], { maxBuffer: 1 << 28 });
  if (result.error || result.status !== 0) throw new Error(`${ffmpeg} could not decode ${file}: ${result.error?.message ?? result.stderr.toString()}`);
  return result.stdout;
}

interface Y4m {
  header: string[];
  frames: Array<{ y: Uint8Array; u: Uint8Array; v: Uint8Array }>;
}

/** Parses a 4:2:0 YUV4MPEG2 file: the header's parameters, then FRAME markers each followed by the Y, U and V planes. */
function parseY4m(bytes: Buffer): Y4m {
  const headerEnd = bytes.indexOf(0x0a);
  const header = bytes.toString('ascii', 0, headerEnd).split(' ');
  expect(header[0]).toBe('YUV4MPEG2');
  const width = Number(header.find((p) => p.startsWith('W'))!.slice(1));
  const height = Number(header.find((p) => p.startsWith('H'))!.slice(1));
  const luma = width * height;
  const chroma = (width / 2) * (height / 2);
  const frames: Y4m['frames'] = [];
  let at = headerEnd + 1;
  while (at < bytes.length) {
    const markerEnd = bytes.indexOf(0x0a, at);
    expect(markerEnd, `FRAME marker at byte ${at}`).toBeGreaterThan(at);
    expect(bytes.toString('ascii', at, markerEnd).split(' ')[0], `marker at byte ${at}`).toBe('FRAME');
    at = markerEnd + 1;
    expect(at + luma + 2 * chroma, `frame ${frames.length} is complete`).toBeLessThanOrEqual(bytes.length);
    frames.push({ y: bytes.subarray(at, at + luma), u: bytes.subarray(at + luma, at + luma + chroma), v: bytes.subarray(at + luma + chroma, at + luma + 2 * chroma) });
    at += luma + 2 * chroma;
  }
  return { header, frames };
}

describe('post-processing', () => {
  it('maps [-1, 1] to uint8 by truncation, clamping outside, NaN to 0, CHW to HWC', () => {
    const values = [-2, -1, -0.5, 0, 0.001, 0.5, 0.999, 1, 3, NaN, -0.99, 0.2];
    const decoded = new Float32Array(3 * 2 * 2);
    decoded.set(values);
    const frames = toRgbFrames(decoded, 1, 2, 2);
    const expected = values.map((v) => (Number.isNaN(v) ? 0 : Math.trunc((Math.min(1, Math.max(-1, v)) + 1) * 127.5)));
    // channel c of pixel p is decoded[c*4 + p]
    const got: number[] = [];
    for (let c = 0; c < 3; c++) for (let p = 0; p < 4; p++) got.push(frames.data[p * 3 + c]!);
    expect(got).toEqual(expected.map((v, i) => (i === 9 ? 0 : v)));
    expect(frames.data[1 * 3 + 0]).toBe(0); // -1 -> 0
    expect(Math.max(...frames.data)).toBe(255);
  });

  it('crops to the standard 540p frame as the official code does', () => {
    expect(standard540pCrop(544, 992)).toEqual({ top: 2, left: 16, height: 540, width: 960 });
    expect(standard540pCrop(992, 544)).toEqual({ top: 16, left: 2, height: 960, width: 540 });
    expect(standard540pCrop(768, 768)).toBeUndefined();
    expect(standard540pCrop(64, 96)).toBeUndefined();
    const decoded = new Float32Array(3 * 4 * 6).map((_, i) => (i % 24) / 24);
    const cropped = toRgbFrames(decoded, 1, 4, 6, { top: 1, left: 2, height: 2, width: 3 });
    expect(cropped.width).toBe(3);
    expect(cropped.data[0]).toBe(Math.trunc((1 * 6 + 2) / 24 * 127.5 + 127.5));
  });
});

describe('writers', () => {
  it('encodes PNG frames that decode back to the same pixels', async () => {
    const frames = gradientFrames(3, 17, 23);
    const png = encodePng(frames.data.subarray(0, 17 * 23 * 3), 23, 17);
    const decoded = decodePng(png);
    expect([decoded.width, decoded.height]).toEqual([23, 17]);
    expect(Buffer.from(decoded.rgb).equals(Buffer.from(frames.data.subarray(0, 17 * 23 * 3)))).toBe(true);
    const target = path.join(work, 'frames');
    const writer = openVideoWriter(target, { format: 'png', width: 23, height: 17 });
    await writer.write(frames);
    expect(existsSync(target)).toBe(false); // nothing at the target until finish
    await writer.finish();
    expect(readdirSync(target)).toEqual(['frame_00000.png', 'frame_00001.png', 'frame_00002.png']);
    // Every written file holds its own frame, pixel for pixel, channels in PNG's R, G, B order (these
    // frames differ between R and B almost everywhere, so a swap cannot pass).
    const frameBytes = 17 * 23 * 3;
    expect(Buffer.from(swapRedBlue(frames)).equals(Buffer.from(frames.data))).toBe(false);
    for (let i = 0; i < 3; i++) {
      const written = decodePng(readFileSync(path.join(target, `frame_0000${i}.png`)));
      expect([written.width, written.height]).toEqual([23, 17]);
      expect(Buffer.from(written.rgb).equals(Buffer.from(frames.data.subarray(i * frameBytes, (i + 1) * frameBytes))), `frame ${i}`).toBe(true);
    }
  });

  it('writes YUV4MPEG2 with the right header and frame sizes', async () => {
    const target = path.join(work, 'clip.y4m');
    const writer = openVideoWriter(target, { format: 'y4m', width: 24, height: 16, fps: 25 });
    await writer.write(gradientFrames(2, 16, 24));
    await writer.write(gradientFrames(1, 16, 24));
    await writer.finish();
    const bytes = readFileSync(target);
    const header = 'YUV4MPEG2 W24 H16 F25:1 Ip A1:1 C420jpeg XCOLORRANGE=FULL\n';
    expect(bytes.toString('ascii', 0, header.length)).toBe(header);
    expect(bytes.length).toBe(header.length + 3 * ('FRAME\n'.length + 24 * 16 * 1.5));
  });

  it('stores each Y4M frame as Y, U, V planes of the BT.601 full-range conversion, chroma from each 2x2 mean', async () => {
    // The conversion the writer documents (C420jpeg, BT.601 full range): Y = 0.299 R + 0.587 G +
    // 0.114 B; Cb = 128 - 0.168736 R - 0.331264 G + 0.5 B and Cr = 128 + 0.5 R - 0.418688 G -
    // 0.081312 B of the mean of each 2x2 block, clamped to [0, 255]. Every stored sample must be
    // that value correctly rounded: within 0.5 (docs/TOLERANCES.md, "Video writers").
    const [height, width] = [32, 48];
    const parts = [gradientFrames(2, height, width), blockFrames(2, height, width, SATURATED)];
    const target = path.join(work, 'planes.y4m');
    const writer = openVideoWriter(target, { format: 'y4m', width, height });
    for (const part of parts) await writer.write(part);
    await writer.finish();
    const y4m = parseY4m(readFileSync(target));
    expect(y4m.header).toEqual(expect.arrayContaining([`W${width}`, `H${height}`, 'C420jpeg']));
    expect(y4m.frames).toHaveLength(4);
    const rgb = Buffer.concat(parts.map((p) => p.data));
    const luma = (r: number, g: number, b: number) => 0.299 * r + 0.587 * g + 0.114 * b;
    const cb = (r: number, g: number, b: number) => Math.min(255, Math.max(0, 128 - 0.168736 * r - 0.331264 * g + 0.5 * b));
    const cr = (r: number, g: number, b: number) => Math.min(255, Math.max(0, 128 + 0.5 * r - 0.418688 * g - 0.081312 * b));
    let worst = 0;
    let bgrApart = 0; // how far a writer that read B, G, R would land (luma)
    let uvApart = 0; // how far exchanged U and V planes would land
    for (const [t, frame] of y4m.frames.entries()) {
      const pixel = (x: number, y: number) => [...rgb.subarray(((t * height + y) * width + x) * 3, ((t * height + y) * width + x) * 3 + 3)] as [number, number, number];
      for (let y = 0; y < height; y++)
        for (let x = 0; x < width; x++) {
          const [r, g, b] = pixel(x, y);
          worst = Math.max(worst, Math.abs(frame.y[y * width + x]! - luma(r, g, b)));
          bgrApart = Math.max(bgrApart, Math.abs(luma(b, g, r) - luma(r, g, b)));
        }
      for (let y = 0; y < height / 2; y++)
        for (let x = 0; x < width / 2; x++) {
          const block = [pixel(2 * x, 2 * y), pixel(2 * x + 1, 2 * y), pixel(2 * x, 2 * y + 1), pixel(2 * x + 1, 2 * y + 1)];
          const [r, g, b] = [0, 1, 2].map((c) => block.reduce((sum, p) => sum + p[c]!, 0) / 4) as [number, number, number];
          const at = y * (width / 2) + x;
          worst = Math.max(worst, Math.abs(frame.u[at]! - cb(r, g, b)), Math.abs(frame.v[at]! - cr(r, g, b)));
          uvApart = Math.max(uvApart, Math.abs(cb(r, g, b) - cr(r, g, b)));
        }
    }
    expect(worst, 'largest distance of a stored sample from the exact conversion').toBeLessThanOrEqual(0.5 + 1e-9);
    // The frames make the swaps visible: each would move some sample by far more than 0.5.
    expect(bgrApart).toBeGreaterThan(20);
    expect(uvApart).toBeGreaterThan(100);
  });

  it('writes Y4M that ffmpeg plays back as the frames that went in (full range declared)', async () => {
    // Mid-range colours, so that neither range clips: a full-range file read as limited range moves
    // them by up to 16 levels. Full-range 8-bit YCbCr and back is within 2.4 levels, ffmpeg's
    // fixed-point conversion adds at most 1: 3 (docs/TOLERANCES.md, "Video writers").
    const frames = blockFrames(4, 64, 96, MIDTONES);
    const target = path.join(work, 'playback.y4m');
    const writer = openVideoWriter(target, { format: 'y4m', width: 96, height: 64 });
    await writer.write(frames);
    await writer.finish();
    const decoded = decodeToRgb24(target);
    expect(decoded.length).toBe(frames.data.length);
    expect(maxBlockInteriorError(decoded, frames.data, frames, 4)).toBeLessThanOrEqual(3);
  });

  it('leaves nothing behind when aborted', async () => {
    for (const format of ['png', 'y4m'] as const) {
      const target = path.join(work, `aborted.${format}`);
      const writer = openVideoWriter(target, { format, width: 8, height: 8 });
      await writer.write(gradientFrames(2, 8, 8));
      await writer.abort();
      expect(existsSync(target)).toBe(false);
    }
    expect(readdirSync(work).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('rejects frames of the wrong size and odd 4:2:0 sizes', async () => {
    const writer = openVideoWriter(path.join(work, 'x.y4m'), { format: 'y4m', width: 8, height: 8 });
    await expect(writer.write(gradientFrames(1, 8, 10))).rejects.toMatchObject({ code: 'ERR_SHAPE' });
    await writer.abort();
    expect(() => openVideoWriter(path.join(work, 'odd.y4m'), { format: 'y4m', width: 7, height: 8 })).toThrow(expect.objectContaining({ code: 'ERR_ARGUMENT' }));
  });

  it('reports an FFMPEG_PATH that does not run as ERR_FFMPEG naming it, without falling back', () => {
    const missing = path.join(work, 'no-such-ffmpeg');
    withFfmpegEnv({ FFMPEG_PATH: missing }, () => {
      try {
        openVideoWriter(path.join(work, 'x.mp4'), { format: 'mp4', width: 8, height: 8 });
        expect.unreachable();
      } catch (error) {
        expect(isStepVideoError(error, 'ERR_FFMPEG')).toBe(true);
        expect((error as StepVideoError).file).toBe(missing);
        expect((error as Error).message).toContain(missing);
        expect((error as Error).message).toMatch(/png.*y4m/);
      }
    });
  });
});

/** Runs `body` with these variables (undefined: unset) and a fresh ffmpeg lookup, then restores both. */
function withFfmpegEnv<T>(vars: Record<string, string | undefined>, body: () => T): T {
  const saved = Object.fromEntries(Object.keys(vars).map((name) => [name, process.env[name]]));
  const assign = (values: Record<string, string | undefined>) => {
    for (const [name, value] of Object.entries(values)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    resetFfmpegLookup();
  };
  assign(vars);
  try {
    return body();
  } finally {
    assign(saved);
  }
}

// The bundled ffmpeg is @ffmpeg-installer/ffmpeg, an optional dependency that `npm ci` installs;
// a checkout installed with --omit=optional fails here, by design.
describe('finding ffmpeg', () => {
  const noFfmpegPath = pathWithout(path.join(work, 'path-without-ffmpeg'), [FFMPEG_TOOLS]);
  const bundled = locateFfmpeg({ PATH: noFfmpegPath }).ffmpeg;
  const bundledPath = () => {
    expect(bundled, 'the optional dependency @ffmpeg-installer/ffmpeg is required for these tests (npm ci installs it)').toBeDefined();
    return bundled!.path;
  };
  // A "system" ffmpeg on PATH, whatever this machine has installed.
  const systemDir = path.join(work, 'system-bin');
  const systemFfmpeg = () => {
    mkdirSync(systemDir, { recursive: true });
    if (!existsSync(path.join(systemDir, 'ffmpeg'))) symlinkSync(bundledPath(), path.join(systemDir, 'ffmpeg'));
    return path.join(systemDir, 'ffmpeg');
  };

  it('falls back to the bundled ffmpeg when PATH has none, and reports its version', () => {
    expect(bundledPath()).toContain(`${path.sep}@ffmpeg-installer${path.sep}`);
    expect(bundled!.source).toBe('bundled');
    expect(bundled!.version).toMatch(/^ffmpeg version \S+/);
    expect(bundled!.version).not.toContain('Copyright');
  });

  it('prefers a system ffmpeg on PATH to the bundled one', () => {
    const system = systemFfmpeg();
    expect(locateFfmpeg({ PATH: [noFfmpegPath, systemDir].join(path.delimiter) }).ffmpeg).toMatchObject({ path: system, source: 'PATH' });
  });

  it('takes FFMPEG_PATH first, and never falls back from a broken one', () => {
    systemFfmpeg();
    const explicit = path.join(work, 'explicit-ffmpeg');
    if (!existsSync(explicit)) symlinkSync(bundledPath(), explicit);
    expect(locateFfmpeg({ PATH: systemDir, FFMPEG_PATH: explicit }).ffmpeg).toMatchObject({ path: explicit, source: 'FFMPEG_PATH' });
    const missing = path.join(work, 'missing', 'ffmpeg');
    const { ffmpeg, error } = locateFfmpeg({ PATH: systemDir, FFMPEG_PATH: missing });
    expect(ffmpeg).toBeUndefined();
    expect(error).toMatchObject({ code: 'ERR_FFMPEG', file: missing });
    expect(error!.message).toContain(`FFMPEG_PATH names an ffmpeg that cannot be run`);
  });

  it('says what to do when there is none at all (the bundled package throws strings)', () => {
    for (const [loadBundled, why] of [
      [() => { throw 'Unsupported platform/architecture: sunos-x64'; }, 'Unsupported platform/architecture: sunos-x64'],
      [() => { throw Object.assign(new Error("Cannot find module '@ffmpeg-installer/ffmpeg'"), { code: 'MODULE_NOT_FOUND' }); }, 'it is not installed'],
      [() => ({ path: path.join(work, 'vanished-ffmpeg') }), 'vanished-ffmpeg'],
    ] as const) {
      const { error } = locateFfmpeg({ PATH: noFfmpegPath }, loadBundled);
      expect(error?.code).toBe('ERR_FFMPEG');
      for (const advice of ['install it', 'FFMPEG_PATH', '--omit=optional', '@ffmpeg-installer/ffmpeg', why, '--format png', '--format y4m']) expect(error!.message).toContain(advice);
    }
  });

  it('looks once per process until reset', () => {
    withFfmpegEnv({ FFMPEG_PATH: undefined, PATH: noFfmpegPath }, () => {
      const first = lookupFfmpeg();
      expect(first.ffmpeg?.source).toBe('bundled');
      process.env.PATH = systemDir;
      systemFfmpeg();
      expect(lookupFfmpeg()).toBe(first);
      resetFfmpegLookup();
      expect(lookupFfmpeg().ffmpeg?.source).toBe('PATH');
    });
  });

  it('writes a valid MP4 with the bundled ffmpeg when PATH has no ffmpeg', async () => {
    const target = path.join(work, 'bundled.mp4');
    const writer = withFfmpegEnv({ FFMPEG_PATH: undefined, PATH: noFfmpegPath }, () => {
      expect(requireFfmpeg().source).toBe('bundled');
      return openVideoWriter(target, { format: 'mp4', width: 64, height: 48 });
    });
    for (let i = 0; i < 3; i++) await writer.write(gradientFrames(17, 48, 64));
    await writer.finish();
    expect(probeVideo(target, bundledPath())).toEqual({ codec: 'h264', pixFmt: 'yuv420p', width: 64, height: 48, frames: 51, fps: '25/1' });
  });
});

// The ffmpeg the library finds (FFMPEG_PATH, a system one, else the bundled @ffmpeg-installer build).
describe('MP4 through ffmpeg', () => {
  it('writes H.264 yuv420p at 25 fps, frame by frame', async () => {
    expect(findFfmpeg(), 'an ffmpeg: FFMPEG_PATH, on PATH, or @ffmpeg-installer/ffmpeg (an optional dependency)').toBeDefined();
    const target = path.join(work, 'clip.mp4');
    const writer = openVideoWriter(target, { format: 'mp4', width: 64, height: 48 });
    for (let i = 0; i < 3; i++) await writer.write(gradientFrames(17, 48, 64));
    expect(existsSync(target)).toBe(false);
    await writer.finish();
    expect(probeVideo(target)).toEqual({ codec: 'h264', pixFmt: 'yuv420p', width: 64, height: 48, frames: 51, fps: '25/1' });
  });

  it('decodes back to the frames that went in: flat colour blocks within 32 levels, where an R/B or U/V swap is 200+ off', async () => {
    // H.264 yuv420p is lossy: 8-bit limited-range YCbCr (1.6 levels), chroma at half resolution
    // (exact inside flat 2x2-aligned blocks; the decoder's chroma interpolation reaches 4 pixels, so
    // 4 pixels at each block edge are left out) and x264's quantisation at CRF 25 (measured: 6 to 7
    // levels in these blocks). 32 (docs/TOLERANCES.md, "Video writers") covers that 4x over; a channel
    // swap moves the saturated colours by 200 levels or more, which the test checks of its frames.
    const frames = blockFrames(6, 64, 96, SATURATED);
    const target = path.join(work, 'content.mp4');
    const writer = openVideoWriter(target, { format: 'mp4', width: 96, height: 64 });
    await writer.write(frames);
    await writer.finish();
    const decoded = decodeToRgb24(target);
    expect(decoded.length, 'decoded frames x 96 x 64 x 3').toBe(frames.data.length);
    const error = maxBlockInteriorError(decoded, frames.data, frames, 4);
    console.log(`MP4 round trip: largest block-interior error ${error} levels (bound 32)`);
    expect(error).toBeLessThanOrEqual(32);
    expect(maxBlockInteriorError(decoded, swapRedBlue(frames), frames, 4), 'R and B exchanged').toBeGreaterThanOrEqual(200);
    expect(maxBlockInteriorError(decoded, swapChroma(frames), frames, 4), 'U and V exchanged').toBeGreaterThanOrEqual(200);
  });

  it('removes the partial file when aborted mid-stream', async () => {
    const target = path.join(work, 'aborted.mp4');
    const writer = openVideoWriter(target, { format: 'mp4', width: 64, height: 48 });
    await writer.write(gradientFrames(17, 48, 64));
    await writer.abort();
    expect(existsSync(target)).toBe(false);
    expect(readdirSync(work).filter((f) => f.includes('aborted.mp4'))).toEqual([]);
  });
});
