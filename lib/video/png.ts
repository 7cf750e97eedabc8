// A minimal PNG encoder for RGB8 frames (8-bit truecolor, filter "Up" on every row, zlib), so
// frames can be written without ffmpeg.
import { type ZlibOptions, deflateSync } from 'node:zlib';

import { crc32 } from '../io/zip.js';

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)) >>> 0, 8 + data.length);
  return out;
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Encodes one RGB8 image (rows of width·3 bytes). */
export function encodePng(rgb: Uint8Array, width: number, height: number): Buffer {
  const stride = width * 3;
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = (stride + 1) * y;
    raw[row] = y === 0 ? 0 : 2; // filter: none for the first row, "Up" after
    for (let x = 0; x < stride; x++) {
      const value = rgb[y * stride + x]!;
      raw[row + 1 + x] = y === 0 ? value : (value - rgb[(y - 1) * stride + x]!) & 0xff;
    }
  }
  return pngFromScanlines(raw, width, height);
}

/**
 * A PNG around already filtered scanlines (each a filter byte then width·3 bytes), for callers that
 * know their rows' structure (e.g. block-upscaled previews) and may pick the deflate settings.
 */
export function pngFromScanlines(scanlines: Uint8Array, width: number, height: number, deflate: ZlibOptions = { level: 6 }): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // truecolor
  return Buffer.concat([SIGNATURE, chunk('IHDR', header), chunk('IDAT', deflateSync(scanlines, deflate)), chunk('IEND', new Uint8Array(0))]);
}
