// A model of the FP8 GEMM's accumulation on Hopper tensor cores, to set the bound of the FP8 Linear
// before any GPU run (docs/TOLERANCES.md, "FP8 GEMM"). Products of two e4m3 values are exact (4 x 4
// significant bits). One WGMMA adds 32 of them to its accumulator and keeps `bits` fraction bits of
// the sum (measured on H100: an e8m13 accumulator, truncated), optionally after cutting every
// addend to the grid of the largest exponent among them. With split accumulation (cuBLASLt's
// FAST_ACCUM off, the library's default) the tensor-core accumulator is added into an f32 register
// and restarted every `interval` products; with fast accumulation it never is.
import { decodeE4M3, quantizeRows } from './fp8.js';

export interface AccumulationModel {
  /** Fraction bits the tensor-core accumulator keeps (13 on H100). */
  bits: number;
  rounding: 'truncate' | 'nearest';
  /** Each addend cut to the grid of the largest exponent among the addends (and the accumulator). */
  alignTerms: boolean;
  /** Products between two promotions to f32 (Infinity: fast accumulation). */
  interval: number;
}

/** The model cuBLASLt's split accumulation on H100 is expected to follow (CUTLASS promotes every 4 WGMMAs). */
export const HOPPER_FP8: AccumulationModel = { bits: 13, rounding: 'truncate', alignTerms: false, interval: 128 };

const PRODUCTS_PER_WGMMA = 32;

function nearestEven(v: number): number {
  const floor = Math.floor(v);
  const rest = v - floor;
  if (rest !== 0.5) return rest < 0.5 ? floor : floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}

function toGrid(x: number, quantum: number, rounding: AccumulationModel['rounding']): number {
  const v = x / quantum; // exact: quantum is a power of two
  return (rounding === 'truncate' ? Math.trunc(v) : nearestEven(v)) * quantum;
}

const exponentOf = (x: number): number => Math.floor(Math.log2(Math.abs(x)));

/** Σ a_j·b_j over e4m3 values (exact products), accumulated as the model says; the f32 result. */
export function tensorCoreDot(a: ArrayLike<number>, b: ArrayLike<number>, model: AccumulationModel): number {
  const k = a.length;
  let promoted = 0;
  for (let start = 0; start < k; start += model.interval) {
    const end = Math.min(k, start + model.interval);
    let acc = 0;
    for (let group = start; group < end; group += PRODUCTS_PER_WGMMA) {
      const last = Math.min(end, group + PRODUCTS_PER_WGMMA);
      let sum = 0;
      if (model.alignTerms) {
        let top = acc === 0 ? -Infinity : exponentOf(acc);
        for (let j = group; j < last; j++) if (a[j]! * b[j]! !== 0) top = Math.max(top, exponentOf(a[j]! * b[j]!));
        if (top === -Infinity) continue;
        const quantum = 2 ** (top - model.bits);
        sum = toGrid(acc, quantum, model.rounding);
        for (let j = group; j < last; j++) sum += toGrid(a[j]! * b[j]!, quantum, model.rounding);
      } else {
        sum = acc;
        for (let j = group; j < last; j++) sum += a[j]! * b[j]!; // exact in a double: multiples of 2^-18 below 2^34
      }
      acc = sum === 0 ? 0 : toGrid(sum, 2 ** (exponentOf(sum) - model.bits), model.rounding);
    }
    promoted = Math.fround(promoted + acc);
  }
  return promoted;
}

function rel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

const geluTanh = (y: number): number => 0.5 * y * (1 + Math.tanh(0.7978845608028654 * (y + 0.044715 * y * y * y)));

/**
 * The FP8 Linear x·wᵀ (x [rows, k] and w [n, k] quantized per row, as the library does), computed
 * as each model says and as the CPU twin does (decode·scale in f32, then f32 sums in order). Returns
 * rel = ||model - twin|| / ||twin|| per model (what the GPU test measures) and the twin's own error
 * against exact arithmetic.
 */
export function predictLinear(x: ArrayLike<number>, rows: number, w: ArrayLike<number>, n: number, k: number, gelu: boolean, models: readonly AccumulationModel[]): { vsTwin: number[]; twinVsExact: number; twin: Float64Array } {
  const xq = quantizeRows(x, rows, k);
  const wq = quantizeRows(w, n, k);
  const dx = Float64Array.from(xq.codes, decodeE4M3);
  const dw = Float64Array.from(wq.codes, decodeE4M3);
  const out = (y: number) => (gelu ? geluTanh(y) : y);
  const exact: number[] = [];
  const twin: number[] = [];
  const simulated = models.map(() => [] as number[]);
  for (let r = 0; r < rows; r++) {
    const a = dx.subarray(r * k, (r + 1) * k);
    const sx = xq.scales[r]!;
    for (let c = 0; c < n; c++) {
      const b = dw.subarray(c * k, (c + 1) * k);
      const sw = wq.scales[c]!;
      let sum = 0;
      let f32 = 0;
      for (let j = 0; j < k; j++) {
        sum += a[j]! * b[j]!;
        f32 = Math.fround(f32 + Math.fround(Math.fround(a[j]! * sx) * Math.fround(b[j]! * sw)));
      }
      exact.push(out(sum * sx * sw));
      twin.push(out(f32));
      // The epilogue applies the two scales in f32 (then the GELU, where asked).
      models.forEach((model, i) => simulated[i]!.push(out(Math.fround(Math.fround(tensorCoreDot(a, b, model) * sw) * sx))));
    }
  }
  return { vsTwin: simulated.map((values) => rel(values, twin)), twinVsExact: rel(twin, exact), twin: Float64Array.from(twin) };
}
