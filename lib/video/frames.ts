// The official post-processing of decoded video (spec §6.3): x in [-1, 1] -> (clamp(x, -1, 1) + 1)
// · 127.5, clamped to [0, 255] and converted to uint8 by truncation; layout [T, 3, H, W] ->
// [T, H, W, 3]; optional centre crop to the standard 540p frame (540x960 landscape, 960x540
// portrait, square frames untouched).
import { StepVideoError } from '../errors.js';

/** A run of RGB frames, 8 bits per channel, row-major [count, height, width, 3]. */
export interface RgbFrames {
  width: number;
  height: number;
  count: number;
  data: Uint8Array;
}

export interface CropWindow {
  top: number;
  left: number;
  height: number;
  width: number;
}

/** The official crop2standard540p window for a frame size, or undefined when no crop applies. */
export function standard540pCrop(height: number, width: number): CropWindow | undefined {
  if (width === height) return undefined;
  const [targetH, targetW] = width > height ? [540, 960] : [960, 540];
  if (height < targetH || width < targetW) return undefined;
  const top = Math.floor(height / 2) - targetH / 2;
  const left = Math.floor(width / 2) - targetW / 2;
  return { top, left, height: targetH, width: targetW };
}

/**
 * Converts decoded frames [count, 3, height, width] (float, nominally [-1, 1]) to RGB8 [count,
 * H', W', 3] with the official arithmetic, optionally cropped.
 */
export function toRgbFrames(decoded: Float32Array, count: number, height: number, width: number, crop?: CropWindow): RgbFrames {
  if (decoded.length !== count * 3 * height * width) {
    throw new StepVideoError('ERR_SHAPE', 'decoded frames do not match their stated size', { expected: count * 3 * height * width, got: decoded.length });
  }
  const window = crop ?? { top: 0, left: 0, height, width };
  if (window.top < 0 || window.left < 0 || window.top + window.height > height || window.left + window.width > width) {
    throw new StepVideoError('ERR_ARGUMENT', 'crop window outside the frame', { expected: `within ${height}x${width}`, got: window });
  }
  const out = new Uint8Array(count * window.height * window.width * 3);
  const plane = height * width;
  let o = 0;
  for (let t = 0; t < count; t++) {
    const frame = t * 3 * plane;
    for (let y = window.top; y < window.top + window.height; y++) {
      for (let x = window.left; x < window.left + window.width; x++) {
        const p = frame + y * width + x;
        for (let c = 0; c < 3; c++) {
          const v = decoded[p + c * plane]!;
          // clamp(-1, 1), +1, ·127.5, clamp(0, 255), truncate. NaN maps to 0.
          const clamped = v > 1 ? 1 : v < -1 ? -1 : v;
          const scaled = (clamped + 1) * 127.5;
          out[o++] = scaled > 255 ? 255 : scaled > 0 ? Math.trunc(scaled) : 0;
        }
      }
    }
  }
  return { width: window.width, height: window.height, count, data: out };
}
