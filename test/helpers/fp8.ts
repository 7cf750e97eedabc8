// An e4m3 reference independent of the native encoder: the 127 non-negative finite e4m3 values
// are listed from their bit fields, and a value is encoded by searching that list for the nearest
// one (ties to the code with an even mantissa, i.e. round to nearest even; beyond 448 saturating).

const VALUES: number[] = []; // VALUES[code] for codes 0..126 (0x7f is NaN)
for (let code = 0; code < 127; code++) {
  const exponent = code >> 3;
  const mantissa = code & 7;
  VALUES.push(exponent === 0 ? (mantissa / 8) * 2 ** -6 : (1 + mantissa / 8) * 2 ** (exponent - 7));
}

export const E4M3_MAX = 448;

export function decodeE4M3(code: number): number {
  if ((code & 0x7f) === 0x7f) return Number.NaN;
  const magnitude = VALUES[code & 0x7f]!;
  return code & 0x80 ? -magnitude : magnitude;
}

export function encodeE4M3(value: number): number {
  if (Number.isNaN(value)) return 0x7f;
  const sign = value < 0 || Object.is(value, -0) ? 0x80 : 0;
  const a = Math.abs(value);
  if (a >= E4M3_MAX) return sign | 0x7e;
  // Binary search for the first value >= a, then pick the nearer neighbour.
  let lo = 0;
  let hi = 126;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (VALUES[mid]! < a) lo = mid + 1;
    else hi = mid;
  }
  if (lo === 0 || VALUES[lo] === a) return sign | lo;
  const below = lo - 1;
  const [dBelow, dAbove] = [a - VALUES[below]!, VALUES[lo]! - a];
  if (dBelow < dAbove) return sign | below;
  if (dAbove < dBelow) return sign | lo;
  return sign | (below % 2 === 0 ? below : lo); // a tie: the even mantissa
}

/** Per-row quantization as the library defines it: scale = amax/448 (f32), codes of x/scale (f32 division). */
export function quantizeRows(x: ArrayLike<number>, rows: number, cols: number): { codes: Uint8Array; scales: Float32Array } {
  const codes = new Uint8Array(rows * cols);
  const scales = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let amax = 0;
    for (let j = 0; j < cols; j++) amax = Math.max(amax, Math.abs(x[r * cols + j]!));
    const scale = Math.fround(amax / E4M3_MAX);
    scales[r] = scale;
    if (scale === 0) continue;
    for (let j = 0; j < cols; j++) codes[r * cols + j] = encodeE4M3(Math.fround(x[r * cols + j]! / scale));
  }
  return { codes, scales };
}

/** decode(code)·scale per row, in float64. */
export function dequantizeRows(codes: Uint8Array, scales: Float32Array, cols: number): Float64Array {
  return Float64Array.from(codes, (c, i) => decodeE4M3(c) * scales[Math.floor(i / cols)]!);
}

/** Values after the per-row round trip (what an FP8 weight or activation stands for). */
export function roundTripRows(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const { codes, scales } = quantizeRows(x, rows, cols);
  return dequantizeRows(codes, scales, cols);
}
