// A PNG decoder for reading frames back (lib/video/readers.ts): every standard colour type at every
// bit depth the format allows, non-interlaced, all five row filters, CRCs checked, decoded to RGB8
// (alpha dropped, 16-bit rounded to 8). zlib does the inflating; nothing else is needed.
import { inflateSync } from 'node:zlib';

import { StepVideoError } from '../errors.js';
import { crc32 } from '../io/zip.js';

export interface DecodedPng {
  width: number;
  height: number;
  /** RGB8, rows of width·3 bytes. */
  rgb: Uint8Array;
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** The bit depths the PNG specification allows for each colour type, and its samples per pixel. */
const COLOUR_TYPES: Record<number, { channels: number; depths: readonly number[]; name: string }> = {
  0: { channels: 1, depths: [1, 2, 4, 8, 16], name: 'greyscale' },
  2: { channels: 3, depths: [8, 16], name: 'truecolour' },
  3: { channels: 1, depths: [1, 2, 4, 8], name: 'indexed' },
  4: { channels: 2, depths: [8, 16], name: 'greyscale with alpha' },
  6: { channels: 4, depths: [8, 16], name: 'truecolour with alpha' },
};

/** Above this many decoded bytes a frame is surely not a video frame (a guard against a hostile header). */
const MAX_RAW_BYTES = 1 << 30;

function malformed(what: string, file: string | undefined, details: { expected?: unknown; got?: unknown; cause?: unknown } = {}): StepVideoError {
  return new StepVideoError('ERR_IO', `not a valid PNG: ${what}`, { ...details, ...(file !== undefined ? { file } : {}) });
}

/** Decodes one PNG image to RGB8. Malformed files are ERR_IO, valid ones this decoder cannot read (interlaced) ERR_UNSUPPORTED; `file` only names the file in errors. */
export function decodePng(bytes: Uint8Array, file?: string): DecodedPng {
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) throw malformed('the PNG signature is missing', file);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let header: { width: number; height: number; depth: number; colourType: number } | undefined;
  let palette: Uint8Array | undefined;
  const idat: Uint8Array[] = [];
  let ended = false;
  let at = 8;
  while (at < bytes.length && !ended) {
    if (at + 12 > bytes.length) throw malformed('the file ends inside a chunk header (truncated)', file);
    const length = view.getUint32(at);
    const type = String.fromCharCode(bytes[at + 4]!, bytes[at + 5]!, bytes[at + 6]!, bytes[at + 7]!);
    if (length > 0x7fffffff) throw malformed(`chunk '${type}' claims an impossible length`, file, { got: length });
    if (at + 12 + length > bytes.length) throw malformed(`the file ends inside chunk '${type}' (truncated)`, file, { expected: `${length} data bytes`, got: bytes.length - at - 12 });
    const stored = view.getUint32(at + 8 + length);
    const computed = crc32(bytes.subarray(at + 4, at + 8 + length));
    if (stored !== computed) throw malformed(`CRC mismatch in chunk '${type}' at byte ${at} (corrupt file)`, file, { expected: computed, got: stored });
    const data = bytes.subarray(at + 8, at + 8 + length);
    const start = at;
    at += 12 + length;
    if (header === undefined && type !== 'IHDR') throw malformed('the first chunk is not IHDR', file, { got: type });
    switch (type) {
      case 'IHDR': {
        if (header !== undefined) throw malformed('a second IHDR chunk', file);
        if (length !== 13) throw malformed('IHDR has the wrong length', file, { expected: 13, got: length });
        const width = view.getUint32(start + 8);
        const height = view.getUint32(start + 12);
        const [depth, colourType, compression, filter, interlace] = [data[8]!, data[9]!, data[10]!, data[11]!, data[12]!];
        const kind = COLOUR_TYPES[colourType];
        if (kind === undefined) throw malformed('unknown colour type', file, { expected: '0, 2, 3, 4 or 6', got: colourType });
        if (!kind.depths.includes(depth)) throw malformed(`bit depth not allowed for ${kind.name}`, file, { expected: kind.depths, got: depth });
        if (width === 0 || height === 0 || width > 0x7fffffff || height > 0x7fffffff) throw malformed('invalid image size', file, { got: `${width}x${height}` });
        if (compression !== 0 || filter !== 0) throw malformed('unknown compression or filter method', file, { expected: '0 and 0', got: `${compression} and ${filter}` });
        if (interlace === 1) throw new StepVideoError('ERR_UNSUPPORTED', 'interlaced (Adam7) PNG frames are not supported: save them non-interlaced', file !== undefined ? { file } : {});
        if (interlace !== 0) throw malformed('unknown interlace method', file, { got: interlace });
        header = { width, height, depth, colourType };
        break;
      }
      case 'PLTE':
        if (length === 0 || length % 3 !== 0 || length > 768) throw malformed('PLTE length is not a multiple of 3 up to 768', file, { got: length });
        palette = data;
        break;
      case 'IDAT':
        idat.push(data);
        break;
      case 'IEND':
        ended = true;
        break;
      default:
        // An unknown chunk whose name starts with an upper-case letter is critical: the image cannot be decoded without it.
        if ((type.charCodeAt(0) & 0x20) === 0) throw malformed(`unknown critical chunk '${type}'`, file);
    }
  }
  if (header === undefined) throw malformed('no IHDR chunk', file);
  if (!ended) throw malformed('no IEND chunk (truncated)', file);
  if (idat.length === 0) throw malformed('no IDAT chunk', file);
  if (header.colourType === 3 && palette === undefined) throw malformed('an indexed image without PLTE', file);

  const { width, height, depth, colourType } = header;
  const channels = COLOUR_TYPES[colourType]!.channels;
  const bitsPerPixel = channels * depth;
  const stride = Math.ceil((width * bitsPerPixel) / 8);
  const rawLength = (stride + 1) * height;
  if (rawLength > MAX_RAW_BYTES) throw new StepVideoError('ERR_UNSUPPORTED', 'PNG frame too large', { expected: `at most ${MAX_RAW_BYTES} decoded bytes`, got: rawLength, ...(file !== undefined ? { file } : {}) });
  let raw: Buffer;
  try {
    // One byte more than the image holds lets too much data show as an error instead of being cut.
    raw = inflateSync(Buffer.concat(idat), { maxOutputLength: rawLength + 1 });
  } catch (error) {
    throw malformed(`the image data does not inflate (${(error as Error).message})`, file, { cause: error });
  }
  if (raw.length !== rawLength) throw malformed(raw.length < rawLength ? 'the image data is short (truncated)' : 'the image data is longer than the image', file, { expected: rawLength, got: raw.length > rawLength ? `more than ${rawLength}` : raw.length });

  unfilter(raw, stride, height, Math.max(1, bitsPerPixel >> 3), file);
  return { width, height, rgb: toRgb(raw, width, height, stride, depth, colourType, palette, file) };
}

/** Undoes the per-row filters in place; the filter bytes stay. `bpp`: bytes per complete pixel, at least 1. */
function unfilter(raw: Uint8Array, stride: number, height: number, bpp: number, file: string | undefined): void {
  for (let y = 0; y < height; y++) {
    const row = y * (stride + 1) + 1;
    const prev = row - stride - 1; // the previous row's first byte (only read when y > 0)
    const filter = raw[row - 1]!;
    switch (filter) {
      case 0:
        break;
      case 1: // Sub
        for (let i = bpp; i < stride; i++) raw[row + i] = (raw[row + i]! + raw[row + i - bpp]!) & 0xff;
        break;
      case 2: // Up
        if (y > 0) for (let i = 0; i < stride; i++) raw[row + i] = (raw[row + i]! + raw[prev + i]!) & 0xff;
        break;
      case 3: // Average
        for (let i = 0; i < stride; i++) {
          const left = i >= bpp ? raw[row + i - bpp]! : 0;
          const up = y > 0 ? raw[prev + i]! : 0;
          raw[row + i] = (raw[row + i]! + ((left + up) >> 1)) & 0xff;
        }
        break;
      case 4: // Paeth
        for (let i = 0; i < stride; i++) {
          const a = i >= bpp ? raw[row + i - bpp]! : 0;
          const b = y > 0 ? raw[prev + i]! : 0;
          const c = i >= bpp && y > 0 ? raw[prev + i - bpp]! : 0;
          const pa = Math.abs(b - c);
          const pb = Math.abs(a - c);
          const pc = Math.abs(a + b - 2 * c);
          raw[row + i] = (raw[row + i]! + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c)) & 0xff;
        }
        break;
      default:
        throw malformed(`unknown row filter in row ${y}`, file, { expected: '0 to 4', got: filter });
    }
  }
}

/** Unfiltered scanlines of any colour type and depth -> RGB8. */
function toRgb(raw: Uint8Array, width: number, height: number, stride: number, depth: number, colourType: number, palette: Uint8Array | undefined, file: string | undefined): Uint8Array {
  const rgb = new Uint8Array(width * height * 3);
  const channels = COLOUR_TYPES[colourType]!.channels;
  // Sub-byte greyscale scales to the full range (a 1-bit 1 is 255); 16-bit keeps its nearest 8-bit level.
  const greyScale = depth < 8 ? 255 / ((1 << depth) - 1) : 1;
  if (colourType === 2 && depth === 8) {
    // What the writer stores: the rows are the image already.
    for (let y = 0; y < height; y++) rgb.set(raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)), y * stride);
    return rgb;
  }
  let o = 0;
  for (let y = 0; y < height; y++) {
    const row = y * (stride + 1) + 1;
    if (depth < 8) {
      const mask = (1 << depth) - 1;
      for (let x = 0; x < width; x++) {
        const bit = x * depth;
        const value = (raw[row + (bit >> 3)]! >> (8 - depth - (bit & 7))) & mask;
        if (colourType === 3) {
          if (3 * value + 2 >= palette!.length) throw malformed(`palette index ${value} outside the palette`, file, { expected: `below ${palette!.length / 3}` });
          rgb[o++] = palette![3 * value]!;
          rgb[o++] = palette![3 * value + 1]!;
          rgb[o++] = palette![3 * value + 2]!;
        } else {
          const grey = Math.round(value * greyScale);
          rgb[o++] = grey;
          rgb[o++] = grey;
          rgb[o++] = grey;
        }
      }
      continue;
    }
    const bytesPerSample = depth >> 3;
    const sample = depth === 8 ? (i: number) => raw[i]! : (i: number) => Math.round(((raw[i]! << 8) | raw[i + 1]!) / 257);
    for (let x = 0; x < width; x++) {
      const p = row + x * channels * bytesPerSample;
      if (colourType === 3) {
        const value = raw[p]!;
        if (3 * value + 2 >= palette!.length) throw malformed(`palette index ${value} outside the palette`, file, { expected: `below ${palette!.length / 3}` });
        rgb[o++] = palette![3 * value]!;
        rgb[o++] = palette![3 * value + 1]!;
        rgb[o++] = palette![3 * value + 2]!;
      } else if (channels >= 3) {
        rgb[o++] = sample(p);
        rgb[o++] = sample(p + bytesPerSample);
        rgb[o++] = sample(p + 2 * bytesPerSample);
      } else {
        const grey = sample(p);
        rgb[o++] = grey;
        rgb[o++] = grey;
        rgb[o++] = grey;
      }
    }
  }
  return rgb;
}
