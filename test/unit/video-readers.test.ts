// Video readers without ffmpeg (lib/video/readers.ts, lib/video/png-decode.ts): PNG frames (the
// writer's, and PNGs made here with chosen row filters, colour types and depths), YUV4MPEG2 (the
// writer's, and hand-made headers: mono, 4:4:4, 4:2:2, limited range), the errors for malformed
// files, and toUnitFrames.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';

import { crc32 } from '../../lib/io/zip.js';
import { type DecodedVideo, type RgbFrames, decodePng, encodePng, openVideoWriter, readVideo, toRgbFrames, toUnitFrames } from '../../lib/video/index.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-readers-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A deterministic byte sequence (xorshift), so rows differ and every filter has work to do. */
function noise(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = s & 0xff;
  }
  return out;
}

// ---- PNGs made here ----

function pngChunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Filters one row (the encoder's side of the five filter types) against the previous raw row. */
function filterRow(row: Uint8Array, prior: Uint8Array | undefined, filter: number, bpp: number): Uint8Array {
  const out = new Uint8Array(row.length + 1);
  out[0] = filter;
  for (let i = 0; i < row.length; i++) {
    const a = i >= bpp ? row[i - bpp]! : 0;
    const b = prior ? prior[i]! : 0;
    const c = prior && i >= bpp ? prior[i - bpp]! : 0;
    const predictor = [0, a, b, (a + b) >> 1, paeth(a, b, c)][filter]!;
    out[i + 1] = (row[i]! - predictor) & 0xff;
  }
  return out;
}

interface PngSpec {
  width: number;
  height: number;
  depth: number;
  colourType: number;
  /** Unfiltered scanline bytes, rows back to back. */
  raw: Uint8Array;
  /** The filter of each row (cycled). */
  filters: number[];
  palette?: Uint8Array;
  interlace?: number;
}

function makePng(spec: PngSpec): Buffer {
  const channels = ({ 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as Record<number, number>)[spec.colourType]!;
  const stride = Math.ceil((spec.width * channels * spec.depth) / 8);
  const bpp = Math.max(1, (channels * spec.depth) >> 3);
  const rows: Uint8Array[] = [];
  for (let y = 0; y < spec.height; y++) {
    const row = spec.raw.subarray(y * stride, (y + 1) * stride);
    rows.push(filterRow(row, y > 0 ? spec.raw.subarray((y - 1) * stride, y * stride) : undefined, spec.filters[y % spec.filters.length]!, bpp));
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(spec.width, 0);
  ihdr.writeUInt32BE(spec.height, 4);
  ihdr.set([spec.depth, spec.colourType, 0, 0, spec.interlace ?? 0], 8);
  const compressed = deflateSync(Buffer.concat(rows));
  // Two IDAT chunks: the decoder must join them.
  const half = compressed.length >> 1;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('tEXt', Buffer.from('Comment\0ancillary chunks are skipped', 'latin1')),
    ...(spec.palette ? [pngChunk('PLTE', spec.palette)] : []),
    pngChunk('IDAT', compressed.subarray(0, half)),
    pngChunk('IDAT', compressed.subarray(half)),
    pngChunk('IEND', new Uint8Array(0)),
  ]);
}

/** Every filter on the first row (no row above) and on later rows, in several orders. */
const ALL_FILTERS = [0, 1, 2, 3, 4, 4, 3, 2, 1, 0, 3, 1, 4, 2];

function errorOf(body: () => unknown): { code?: string; message: string; file?: string } {
  try {
    body();
  } catch (error) {
    return error as { code?: string; message: string; file?: string };
  }
  throw new Error('expected an error');
}

describe('PNG decoding', () => {
  it('reads the PNG writer frames back byte for byte, in frame order', async () => {
    const [width, height, count] = [23, 17, 12];
    const frames: RgbFrames = { width, height, count, data: noise(count * height * width * 3, 7) };
    const target = path.join(work, 'written-frames');
    const writer = openVideoWriter(target, { format: 'png', width, height });
    await writer.write(frames);
    await writer.finish();
    const video = await readVideo(target);
    expect({ width: video.width, height: video.height, count: video.count, format: video.format, fps: video.fps }).toEqual({ width, height, count, format: 'png', fps: undefined });
    expect(Buffer.from(video.data).equals(Buffer.from(frames.data))).toBe(true);
    const firstFive = await readVideo(target, { maxFrames: 5 });
    expect(firstFive.count).toBe(5);
    expect(Buffer.from(firstFive.data).equals(Buffer.from(frames.data.subarray(0, 5 * width * height * 3)))).toBe(true);
  });

  it('orders frames by the number in their names, not by text', async () => {
    const dir = path.join(work, 'numbered');
    mkdirSync(dir);
    const colours = [10, 20, 30, 40];
    for (const [name, grey] of [['f_10.png', 40], ['f_2.png', 20], ['f_9.png', 30], ['f_1.png', 10]] as const) {
      writeFileSync(path.join(dir, name), encodePng(new Uint8Array(2 * 2 * 3).fill(grey), 2, 2));
    }
    writeFileSync(path.join(dir, 'notes.txt'), 'not a frame');
    writeFileSync(path.join(dir, '.f_0.png'), 'a hidden temporary');
    const video = await readVideo(dir);
    expect(video.count).toBe(4);
    expect([0, 1, 2, 3].map((t) => video.data[t * 12])).toEqual(colours);
  });

  it('undoes all five row filters, for 1, 2, 3, 4, 6 and 8 bytes per pixel', () => {
    const [width, height] = [13, 14];
    for (const [colourType, depth, channels] of [[0, 8, 1], [4, 8, 2], [2, 8, 3], [6, 8, 4], [2, 16, 3], [6, 16, 4]] as const) {
      const bytesPerSample = depth / 8;
      const raw = noise(width * height * channels * bytesPerSample, 11 + colourType + depth);
      const png = decodePng(makePng({ width, height, depth, colourType, raw, filters: ALL_FILTERS }));
      expect([png.width, png.height]).toEqual([width, height]);
      const expected = new Uint8Array(width * height * 3);
      for (let p = 0; p < width * height; p++) {
        // 16-bit samples keep their nearest 8-bit level (v / 257, rounded); alpha is dropped; grey fills R, G and B.
        const sample = (c: number) => (depth === 8 ? raw[p * channels + c]! : Math.round(((raw[(p * channels + c) * 2]! << 8) | raw[(p * channels + c) * 2 + 1]!) / 257));
        for (let c = 0; c < 3; c++) expected[p * 3 + c] = sample(channels >= 3 ? c : 0);
      }
      expect(Buffer.from(png.rgb).equals(Buffer.from(expected)), `colour type ${colourType}, depth ${depth}`).toBe(true);
    }
  });

  it('reads grey, grey + alpha, RGBA, sub-byte grey and palettes', () => {
    // 2x2 pixels, no filtering: the colour conversions alone.
    const one = (colourType: number, depth: number, raw: number[], palette?: number[]) =>
      Array.from(decodePng(makePng({ width: 2, height: 2, depth, colourType, raw: Uint8Array.from(raw), filters: [0], ...(palette ? { palette: Uint8Array.from(palette) } : {}) })).rgb);
    expect(one(0, 8, [0, 100, 200, 255])).toEqual([0, 0, 0, 100, 100, 100, 200, 200, 200, 255, 255, 255]);
    expect(one(4, 8, [10, 0, 20, 255, 30, 128, 40, 7])).toEqual([10, 10, 10, 20, 20, 20, 30, 30, 30, 40, 40, 40]);
    expect(one(6, 8, [1, 2, 3, 0, 4, 5, 6, 255, 7, 8, 9, 9, 10, 11, 12, 100])).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    // 1-bit grey: rows are 1 byte, the high bits first; 1 is white. 2-bit grey: 0, 85, 170, 255.
    expect(one(0, 1, [0b10000000, 0b01000000])).toEqual([255, 255, 255, 0, 0, 0, 0, 0, 0, 255, 255, 255]);
    expect(one(0, 2, [0b00010000, 0b10110000])).toEqual([0, 0, 0, 85, 85, 85, 170, 170, 170, 255, 255, 255]);
    // Palette, 8-bit and 4-bit indices.
    const palette = [255, 0, 0, 0, 255, 0, 0, 0, 255];
    expect(one(3, 8, [2, 1, 0, 2], palette)).toEqual([0, 0, 255, 0, 255, 0, 255, 0, 0, 0, 0, 255]);
    expect(one(3, 4, [0x21, 0x02], palette)).toEqual([0, 0, 255, 0, 255, 0, 255, 0, 0, 0, 0, 255]);
    expect(errorOf(() => one(3, 8, [3, 0, 0, 0], palette))).toMatchObject({ code: 'ERR_IO', message: expect.stringContaining('palette index 3') });
  });

  it('refuses corrupt and truncated files as ERR_IO naming the frame, interlaced ones as ERR_UNSUPPORTED', async () => {
    const good = encodePng(noise(8 * 6 * 3, 3), 8, 6);
    expect(decodePng(good).width).toBe(8);
    const idat = good.indexOf('IDAT');
    const corrupt = Buffer.from(good);
    corrupt[idat + 6]! ^= 0x40; // a data byte: the stored CRC no longer matches
    expect(errorOf(() => decodePng(corrupt, 'x.png'))).toMatchObject({ code: 'ERR_IO', file: 'x.png', message: expect.stringMatching(/CRC mismatch in chunk 'IDAT'/) });
    for (const cut of [good.length - 5, idat + 10, 20]) {
      expect(errorOf(() => decodePng(good.subarray(0, cut))), `cut at ${cut}`).toMatchObject({ code: 'ERR_IO', message: expect.stringContaining('truncated') });
    }
    // Cut exactly at a chunk boundary: every chunk is whole, but IEND is missing.
    expect(errorOf(() => decodePng(good.subarray(0, good.length - 12)))).toMatchObject({ code: 'ERR_IO', message: expect.stringContaining('no IEND') });
    expect(errorOf(() => decodePng(Buffer.from('GIF89a not a png at all')))).toMatchObject({ code: 'ERR_IO', message: expect.stringContaining('signature') });
    // Image data that inflates to fewer bytes than the header promises (a short IDAT stream).
    const short = makePng({ width: 4, height: 4, depth: 8, colourType: 2, raw: noise(4 * 3 * 3, 5), filters: [0] });
    expect(errorOf(() => decodePng(short))).toMatchObject({ code: 'ERR_IO', message: expect.stringContaining('short') });
    const interlaced = makePng({ width: 2, height: 2, depth: 8, colourType: 0, raw: new Uint8Array(4), filters: [0], interlace: 1 });
    expect(errorOf(() => decodePng(interlaced))).toMatchObject({ code: 'ERR_UNSUPPORTED' });
    const badFilter = makePng({ width: 2, height: 2, depth: 8, colourType: 0, raw: new Uint8Array(4), filters: [0] });
    // The filter byte of row 0 is the first inflated byte; rebuild the IDATs with filter 5.
    const rebuilt = Buffer.concat([badFilter.subarray(0, 33), pngChunk('IDAT', deflateSync(Buffer.from([5, 0, 0, 0, 0, 0]))), pngChunk('IEND', new Uint8Array(0))]);
    expect(errorOf(() => decodePng(rebuilt))).toMatchObject({ code: 'ERR_IO', message: expect.stringContaining('unknown row filter') });

    // Through readVideo: the frame is named.
    const dir = path.join(work, 'corrupt-frames');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'frame_00000.png'), good);
    writeFileSync(path.join(dir, 'frame_00001.png'), corrupt);
    await expect(readVideo(dir)).rejects.toMatchObject({ code: 'ERR_IO', file: path.join(dir, 'frame_00001.png') });
    // Only the first frame is read with maxFrames 1, so the corrupt one is never reached.
    expect((await readVideo(dir, { maxFrames: 1 })).count).toBe(1);
  });

  it('refuses folders with no frames, frames of different sizes and unordered names', async () => {
    const empty = path.join(work, 'empty');
    mkdirSync(empty);
    await expect(readVideo(empty)).rejects.toMatchObject({ code: 'ERR_IO', file: empty, message: expect.stringContaining('no PNG frames') });
    const mixed = path.join(work, 'mixed');
    mkdirSync(mixed);
    writeFileSync(path.join(mixed, 'frame_00000.png'), encodePng(new Uint8Array(4 * 4 * 3), 4, 4));
    writeFileSync(path.join(mixed, 'frame_00001.png'), encodePng(new Uint8Array(4 * 6 * 3), 6, 4));
    await expect(readVideo(mixed)).rejects.toMatchObject({ code: 'ERR_SHAPE', file: path.join(mixed, 'frame_00001.png') });
    const unnumbered = path.join(work, 'unnumbered');
    mkdirSync(unnumbered);
    writeFileSync(path.join(unnumbered, 'frame_00000.png'), encodePng(new Uint8Array(12), 2, 2));
    writeFileSync(path.join(unnumbered, 'cover.png'), encodePng(new Uint8Array(12), 2, 2));
    await expect(readVideo(unnumbered)).rejects.toMatchObject({ code: 'ERR_IO', message: expect.stringContaining('without a frame number') });
    // A single .png file is a one-frame video.
    const single = await readVideo(path.join(unnumbered, 'cover.png'));
    expect([single.count, single.width, single.height, single.format]).toEqual([1, 2, 2, 'png']);
  });
});

// ---- YUV4MPEG2 ----

/** Frames whose R, G and B are affine in x, y and t (no wrap, no clipping): 2x2 means are exact there. */
function affineFrames(count: number, height: number, width: number): RgbFrames {
  const data = new Uint8Array(count * height * width * 3);
  for (let t = 0; t < count; t++)
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) {
        const p = ((t * height + y) * width + x) * 3;
        data[p] = 40 + 2 * x + t;
        data[p + 1] = 20 + 3 * y;
        data[p + 2] = 200 - x - y - t;
      }
  return { width, height, count, data };
}

const MIDTONES = [[200, 100, 50], [60, 180, 90], [40, 70, 210], [230, 220, 30]] as const;

/** Flat 16x16 blocks of mid-range colours, moving by one colour per frame. */
function blockFrames(count: number, height: number, width: number): RgbFrames {
  const data = new Uint8Array(count * height * width * 3);
  for (let t = 0; t < count; t++)
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) data.set(MIDTONES[(Math.floor(x / 16) + 3 * Math.floor(y / 16) + t) % 4]!, ((t * height + y) * width + x) * 3);
  return { width, height, count, data };
}

/** Largest |a - b| over the pixels for which `keep(x, y)` holds. */
function maxError(a: DecodedVideo, b: RgbFrames, keep: (x: number, y: number) => boolean): number {
  let worst = 0;
  for (let t = 0; t < b.count; t++)
    for (let y = 0; y < b.height; y++)
      for (let x = 0; x < b.width; x++) {
        if (!keep(x, y)) continue;
        for (let c = 0; c < 3; c++) {
          const i = ((t * b.height + y) * b.width + x) * 3 + c;
          worst = Math.max(worst, Math.abs(a.data[i]! - b.data[i]!));
        }
      }
  return worst;
}

async function writeY4m(name: string, frames: RgbFrames): Promise<string> {
  const target = path.join(work, name);
  const writer = openVideoWriter(target, { format: 'y4m', width: frames.width, height: frames.height, fps: 25 });
  await writer.write(frames);
  return writer.finish();
}

/** A Y4M file from a header line and frames of raw plane bytes. */
function y4mFile(name: string, header: string, frames: number[][], frameLine = 'FRAME'): string {
  const file = path.join(work, name);
  writeFileSync(file, Buffer.concat([Buffer.from(`${header}\n`, 'latin1'), ...frames.flatMap((planes) => [Buffer.from(`${frameLine}\n`), Buffer.from(planes)])]));
  return file;
}

/** BT.601 full range, the writer's forward matrix. */
function toYcbcr(r: number, g: number, b: number): [number, number, number] {
  return [0.299 * r + 0.587 * g + 0.114 * b, 128 - 0.168736 * r - 0.331264 * g + 0.5 * b, 128 + 0.5 * r - 0.418688 * g - 0.081312 * b];
}

describe('YUV4MPEG2 reading', () => {
  it('reads the Y4M writer output back within the colour-conversion rounding', async () => {
    // Bound, derived before running. The writer stores Y, Cb, Cr (BT.601 full range, as its header
    // says with XCOLORRANGE=FULL) each correctly rounded, so within 0.5; Cb and Cr come from the mean
    // of each 2x2 block. On frames whose R, G, B are affine in x and y that mean is the value at the
    // block centre, where C420jpeg sites the sample, and the reader's bilinear upsampling of an affine
    // function is exact, so only the stored rounding remains: R within 0.5 + 1.402·0.5 = 1.20, G within
    // 0.5 + (0.344 + 0.714)·0.5 = 1.03, B within 0.5 + 1.772·0.5 = 1.39. Below 1.5, so the reader's
    // rounding of the original integer lands at most 1 level away: bound 1. The outermost rows and
    // columns lie outside the outermost chroma sites, where the reader repeats the edge sample instead
    // of extrapolating: chroma there is off by half a pixel's slope, at most (0.84 + 1.49)/2 = 1.17 in
    // Cb and (1.08 + 1.17)/2 = 1.13 in Cr on these frames (slopes per pixel in x and y), so B within
    // 1.39 + 1.772·1.17 = 3.4 and R within 1.20 + 1.402·1.13 = 2.8: bound 3 on the border.
    const [width, height] = [48, 32];
    const affine = affineFrames(3, height, width);
    const video = await readVideo(await writeY4m('affine.y4m', affine));
    expect({ width: video.width, height: video.height, count: video.count, format: video.format, fps: video.fps }).toEqual({ width, height, count: 3, format: 'y4m', fps: 25 });
    const inside = (x: number, y: number) => x > 0 && y > 0 && x < width - 1 && y < height - 1;
    expect(maxError(video, affine, inside), 'interior').toBeLessThanOrEqual(1);
    expect(maxError(video, affine, () => true), 'border included').toBeLessThanOrEqual(3);

    // Flat 16x16 blocks: every 2x2 mean inside a block is the block's colour, and pixels at least one
    // pixel inside a block interpolate only between chroma samples of their own block: bound 1 as above.
    const blocks = blockFrames(2, height, width);
    const read = await readVideo(await writeY4m('blocks.y4m', blocks));
    expect(maxError(read, blocks, (x, y) => x % 16 >= 1 && x % 16 <= 14 && y % 16 >= 1 && y % 16 <= 14)).toBeLessThanOrEqual(1);
    // A reader that took the file for limited range, or swapped U and V, would be far off.
    const first = await readVideo(path.join(work, 'blocks.y4m'), { maxFrames: 1 });
    expect(first.count).toBe(1);
    expect(Buffer.from(first.data).equals(Buffer.from(read.data.subarray(0, width * height * 3)))).toBe(true);
  });

  it('reads mono and 4:4:4 headers, in limited range unless the header says full', async () => {
    // Mono, limited range (no XCOLORRANGE): 16 is black, 235 white, (v - 16)·255/219 between, clamped.
    const mono = await readVideo(y4mFile('mono.y4m', 'YUV4MPEG2 W5 H1 F30000:1001 Ip A0:0 Cmono', [[16, 235, 126, 0, 255]]));
    expect([mono.width, mono.height, mono.count]).toEqual([5, 1, 1]);
    expect(mono.fps).toBeCloseTo(29.97, 2);
    expect(Array.from(mono.data)).toEqual([0, 0, 0, 255, 255, 255, 128, 128, 128, 0, 0, 0, 255, 255, 255]);
    const monoFull = await readVideo(y4mFile('mono-full.y4m', 'YUV4MPEG2 W3 H1 Cmono XCOLORRANGE=FULL', [[16, 126, 255], [1, 2, 3]]));
    expect(monoFull.count).toBe(2);
    expect(Array.from(monoFull.data)).toEqual([16, 16, 16, 126, 126, 126, 255, 255, 255, 1, 1, 1, 2, 2, 2, 3, 3, 3]);

    // 4:4:4: every pixel has its own chroma, so each comes back within the rounding of its own samples.
    // Full range: within 1 (the sums above, below 1.5). Limited range stretches each sample's 0.5 by
    // 255/219 (luma) and 255/224 (chroma): B within 0.58 + 1.772·0.57 = 1.59, so 2.
    const colours = [...MIDTONES, [0, 0, 0], [255, 255, 255], [128, 128, 128], [17, 240, 99]] as const;
    const planes = (limited: boolean) => {
      const ycc = colours.map(([r, g, b]) => toYcbcr(r, g, b));
      const y = ycc.map(([l]) => Math.round(limited ? 16 + (l * 219) / 255 : l));
      const c = (i: 1 | 2) => ycc.map((s) => Math.round(limited ? 128 + ((s[i] - 128) * 224) / 255 : Math.min(255, s[i])));
      return [...y, ...c(1), ...c(2)];
    };
    for (const [name, header, bound] of [['full', 'C444 XCOLORRANGE=FULL', 1], ['limited', 'C444', 2]] as const) {
      const video = await readVideo(y4mFile(`444-${name}.y4m`, `YUV4MPEG2 W4 H2 F25:1 ${header}`, [planes(name === 'limited')], 'FRAME Ip'));
      expect([video.width, video.height, video.count]).toEqual([4, 2, 1]);
      const worst = Math.max(...colours.flatMap((rgb, p) => rgb.map((v, c) => Math.abs(video.data[p * 3 + c]! - v))));
      expect(worst, name).toBeLessThanOrEqual(bound);
    }
  });

  it('reads 4:2:2, 4:2:0 mpeg2 siting, odd sizes and alpha as flat colours exactly', async () => {
    // A flat frame has one chroma value everywhere, so siting cannot matter: within 1 as for 4:4:4.
    const [r, g, b] = [60, 180, 90];
    const [y, cb, cr] = toYcbcr(r, g, b).map(Math.round) as [number, number, number];
    const flat = (w: number, h: number, cw: number, ch: number, alpha = false) => [
      ...new Array<number>(w * h).fill(y),
      ...new Array<number>(cw * ch).fill(cb),
      ...new Array<number>(cw * ch).fill(cr),
      ...(alpha ? new Array<number>(w * h).fill(255) : []),
    ];
    for (const [name, header, planes] of [
      ['422', 'W6 H2 C422', flat(6, 2, 3, 2)],
      ['420mpeg2', 'W4 H4 C420mpeg2', flat(4, 4, 2, 2)],
      ['420paldv', 'W4 H2 C420paldv', flat(4, 2, 2, 1)],
      ['odd', 'W5 H3', flat(5, 3, 3, 2)], // no C: 4:2:0 (jpeg siting), chroma planes rounded up
      ['444alpha', 'W2 H2 C444alpha', flat(2, 2, 2, 2, true)],
    ] as const) {
      const video = await readVideo(y4mFile(`${name}.y4m`, `YUV4MPEG2 ${header} XCOLORRANGE=FULL`, [planes, planes]));
      expect(video.count, name).toBe(2);
      const worst = Math.max(...Array.from(video.data, (v, i) => Math.abs(v - [r, g, b][i % 3]!)));
      expect(worst, name).toBeLessThanOrEqual(1);
    }
  });

  it('refuses truncated, unmarked, unknown-colour-space and non-Y4M files', async () => {
    const frames = affineFrames(2, 8, 8);
    const whole = readFileSync(await writeY4m('whole.y4m', frames));
    const cut = path.join(work, 'cut.y4m');
    writeFileSync(cut, whole.subarray(0, whole.length - 10));
    await expect(readVideo(cut)).rejects.toMatchObject({ code: 'ERR_IO', file: cut, message: expect.stringContaining('frame 1 is cut short') });
    // The complete first frame is still readable alone.
    expect((await readVideo(cut, { maxFrames: 1 })).count).toBe(1);
    const unmarked = path.join(work, 'unmarked.y4m');
    writeFileSync(unmarked, Buffer.from(whole.toString('latin1').replace('FRAME', 'FRAMX'), 'latin1'));
    await expect(readVideo(unmarked)).rejects.toMatchObject({ code: 'ERR_IO', message: expect.stringContaining('no FRAME marker before frame 0') });
    await expect(readVideo(y4mFile('p10.y4m', 'YUV4MPEG2 W2 H2 C420p10', [[0, 0]]))).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED', message: expect.stringContaining('C420p10') });
    await expect(readVideo(y4mFile('nosize.y4m', 'YUV4MPEG2 W2 C420jpeg', []))).rejects.toMatchObject({ code: 'ERR_IO', message: expect.stringContaining('frame size') });
    await expect(readVideo(y4mFile('empty.y4m', 'YUV4MPEG2 W2 H2 C420jpeg', []))).rejects.toMatchObject({ code: 'ERR_IO', message: expect.stringContaining('no frames') });
    const text = path.join(work, 'text.y4m');
    writeFileSync(text, 'hello, world\n');
    await expect(readVideo(text)).rejects.toMatchObject({ code: 'ERR_IO', file: text, message: expect.stringContaining('YUV4MPEG2') });
  });
});

describe('readVideo arguments', () => {
  it('names a missing input, refuses bad maxFrames, honours an aborted signal', async () => {
    const missing = path.join(work, 'no-such-video.y4m');
    await expect(readVideo(missing)).rejects.toMatchObject({ code: 'ERR_IO', file: missing, message: expect.stringContaining('video not found') });
    for (const maxFrames of [0, -1, 1.5, Number.NaN]) await expect(readVideo(missing, { maxFrames })).rejects.toMatchObject({ code: 'ERR_ARGUMENT' });
    const video = await writeY4m('for-abort.y4m', affineFrames(2, 4, 4));
    await expect(readVideo(video, { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ERR_ABORTED' });
  });
});

describe('toUnitFrames', () => {
  it('maps RGB8 [T, H, W, 3] to [T, 3, H, W] in [-1, 1] as x / 127.5 - 1', () => {
    const [count, height, width] = [2, 3, 4];
    const data = noise(count * height * width * 3, 9);
    data.set([0, 255, 128], 0);
    const unit = toUnitFrames({ width, height, count, data, format: 'png' });
    expect(unit.length).toBe(data.length);
    expect([unit[0], unit[height * width], unit[2 * height * width]]).toEqual([-1, 1, Math.fround(128 / 127.5 - 1)]);
    for (let t = 0; t < count; t++)
      for (let c = 0; c < 3; c++)
        for (let p = 0; p < height * width; p++) {
          expect(unit[(t * 3 + c) * height * width + p]).toBe(Math.fround(data[(t * height * width + p) * 3 + c]! / 127.5 - 1));
        }
    // toRgbFrames inverts it up to its truncation: in float32, v / 127.5 - 1 is sometimes a hair
    // below the exact value, and (u + 1)·127.5 truncates to v - 1 then; never further.
    const levels = Uint8Array.from({ length: 256 * 3 }, (_, i) => i % 256);
    const back = toRgbFrames(toUnitFrames({ width: 256, height: 1, count: 1, data: levels, format: 'png' }), 1, 1, 256).data;
    const offsets = new Set(Array.from(back, (v, i) => levels[i]! - v));
    expect([...offsets].every((d) => d === 0 || d === 1)).toBe(true);
    expect(back[255]).toBe(255);
    expect(back[0]).toBe(0);
    expect(() => toUnitFrames({ width, height, count: 3, data, format: 'png' })).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
  });
});
