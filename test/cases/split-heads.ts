// Cases of the head-split / QK-Norm / 3D RoPE family (native/split_heads.h) at the DiT's real head
// layout (48 heads x 128, RoPE split [64, 32, 32]) with odd token counts and batch 2, against an
// independent float64 reference of the official modules (split, RMSNorm, RoPE3D.apply_rope1d).
import { Rope3D, type RopeAngles, ropeCosSin } from '../../lib/kernels/rope.js';
import { type HeadPart, splitHeads } from '../../lib/kernels/split-heads.js';
import * as ops from '../../lib/ops.js';
import { Tensor, TensorScope } from '../../lib/tensor.js';
import { fitEmulated } from '../helpers/gpu.js';
import { Rng, randn, randu } from '../helpers/random.js';
import type { LargeCase, OpCase, OpInput } from './types.js';

export const SPLIT = [64, 32, 32] as const;

/** Batch B of N tokens, H heads of Dh, the parts of a head in proj's order, and the RoPE grid (none: no RoPE). */
export interface SplitGeometry {
  B: number;
  N: number;
  H: number;
  Dh: number;
  layout: readonly HeadPart[];
  rope?: { grid: [number, number, number]; angles: RopeAngles };
}

/** A case's geometry and the parts that are normed (QK-Norm). */
export interface SplitSpec extends SplitGeometry {
  qNorm?: boolean;
  kNorm?: boolean;
}

/** The DiT's self-attention at a case's size: [q|k|v] per head of 128, QK-Norm, 3D RoPE over grid (N = its size). */
export function ditSelfAttention(B: number, H: number, grid: [number, number, number], angles: RopeAngles): SplitSpec {
  return { B, N: grid[0] * grid[1] * grid[2], H, Dh: 128, layout: ['q', 'k', 'v'], qNorm: true, kNorm: true, rope: { grid, angles } };
}

/** The DiT's cross-attention keys ([k|v] per head of 128, k-Norm) or queries ([q], q-Norm) at a case's size. */
export function ditCrossAttention(part: 'keys' | 'queries', B: number, H: number, N: number): SplitSpec {
  return part === 'keys' ? { B, N, H, Dh: 128, layout: ['k', 'v'], kNorm: true } : { B, N, H, Dh: 128, layout: ['q'], qNorm: true };
}

/** The (frame, row, column) of token n on a RoPE grid [F, Hg, Wg]. */
export function gridPosition([, G1, G2]: readonly [number, number, number], n: number): number[] {
  return [Math.floor(n / (G1 * G2)), Math.floor(n / G2) % G1, n % G2];
}

/**
 * float64 reference for the given tokens of batch item b: per part, [H, tokens.length, Dh] values
 * in `out` order (q, k, v as present in the layout, each [B or 1, H, N or tokens, Dh]).
 */
/**
 * 3D RoPE of one head vector x (float64): slice a of width split[a] is rotated (rotate-half) by the
 * angles of position[a], from the f32 tables of that axis; written to out[o, o + sum(split)).
 * direction -1: the rotation's transpose (by -angle), as the backward applies it.
 */
export function rope3dRef(
  x: Float64Array, position: readonly number[], split: readonly number[], tables: ReadonlyArray<{ cos: Float32Array; sin: Float32Array }>,
  out: Float64Array, o: number, direction: 1 | -1 = 1,
): void {
  let start = 0;
  for (let axis = 0; axis < 3; axis++) {
    const width = split[axis]!;
    const half = width / 2;
    const { cos, sin } = tables[axis]!;
    for (let i = 0; i < width; i++) {
      const rotated = i < half ? -x[start + i + half]! : x[start + i - half]!;
      const t = position[axis]! * width + i;
      out[o + start + i] = x[start + i]! * cos[t]! + direction * rotated * sin[t]!;
    }
    start += width;
  }
}

export function splitHeadsRef(
  proj: ArrayLike<number>, spec: SplitSpec, weights: { q?: ArrayLike<number>; k?: ArrayLike<number> },
  tokens: readonly number[] = Array.from({ length: spec.N }, (_, n) => n), batches: readonly number[] = Array.from({ length: spec.B }, (_, b) => b),
  rowOf: (b: number, n: number) => number = (b, n) => b * spec.N + n,
): Float64Array {
  const { H, Dh, layout } = spec;
  const P = layout.length;
  const produced = (['q', 'k', 'v'] as const).filter((p) => layout.includes(p));
  const tables = spec.rope ? SPLIT.map((width, axis) => ropeCosSin(spec.rope!.grid[axis]!, width, { angles: spec.rope!.angles })) : [];
  const out = new Float64Array(produced.length * batches.length * H * tokens.length * Dh);
  const x = new Float64Array(Dh);
  let o = 0;
  for (const part of produced) {
    const index = layout.indexOf(part);
    const weight = part === 'v' ? undefined : weights[part];
    for (const b of batches)
      for (let h = 0; h < H; h++)
        for (const n of tokens) {
          const base = ((rowOf(b, n) * H + h) * P + index) * Dh;
          for (let d = 0; d < Dh; d++) x[d] = proj[base + d]!;
          if (weight) {
            let ss = 0;
            for (let d = 0; d < Dh; d++) ss += x[d]! * x[d]!;
            const inv = 1 / Math.sqrt(ss / Dh + 1e-6);
            for (let d = 0; d < Dh; d++) x[d] = x[d]! * inv * weight[d]!;
          }
          if (spec.rope && part !== 'v') {
            rope3dRef(x, gridPosition(spec.rope.grid, n), SPLIT, tables, out, o);
          } else {
            for (let d = 0; d < Dh; d++) out[o + d] = x[d]!;
          }
          o += Dh;
        }
  }
  return out;
}

function runSplit(spec: SplitSpec, [proj, qNorm, kNorm]: Tensor[]): Tensor {
  const rope = spec.rope ? Rope3D.create(spec.rope.grid, { split: SPLIT, angles: spec.rope.angles, device: proj!.device }) : undefined;
  try {
    const parts = splitHeads(proj!, {
      heads: spec.H,
      layout: spec.layout,
      ...(spec.qNorm ? { qNorm: qNorm! } : {}),
      ...(spec.kNorm ? { kNorm: spec.qNorm ? kNorm! : qNorm! } : {}),
      ...(rope ? { rope } : {}),
    });
    const ordered = (['q', 'k', 'v'] as const).flatMap((p) => (parts[p] ? [parts[p]!] : []));
    const joined = ordered.length === 1 ? ordered[0]!.clone() : ops.concat(ordered, 0);
    for (const t of ordered) t.dispose();
    return joined;
  } finally {
    rope?.dispose();
  }
}

function splitCase(name: string, spec: SplitSpec, seed: number): OpCase {
  const rng = new Rng(seed);
  const { B, N, H, Dh, layout } = spec;
  const inputs: OpInput[] = [{ shape: [B, N, H * layout.length * Dh], data: randn(rng, B * N * H * layout.length * Dh, 1.7, 0.2) }];
  if (spec.qNorm) inputs.push({ shape: [Dh], data: randu(rng, Dh, 0.5, 1.5) });
  if (spec.kNorm) inputs.push({ shape: [Dh], data: randu(rng, Dh, 0.5, 1.5) });
  return {
    name,
    inputs,
    run: (tensors) => runSplit(spec, tensors),
    reference: ([proj, first, second]) =>
      splitHeadsRef(proj!, spec, { ...(spec.qNorm ? { q: first! } : {}), ...(spec.kNorm ? { k: spec.qNorm ? second! : first! } : {}) }),
  };
}

export function ropeCases(): OpCase[] {
  return [
    splitCase('splitHeads self-attention: wqkv [q|k|v] per head, QK-Norm, 3D RoPE bf16 angles, 48 heads x 128, grid 3x5x7, batch 2', ditSelfAttention(2, 48, [3, 5, 7], 'bf16-official'), 300),
    splitCase('splitHeads self-attention: exact angles, grid 9x2x3 (more frames than rows or columns), 4 heads', ditSelfAttention(2, 4, [9, 2, 3], 'exact'), 301),
    splitCase('splitHeads cross-attention keys: wkv [k|v] per head, k-Norm, 48 heads x 128, 37 keys, batch 2', ditCrossAttention('keys', 2, 48, 37), 302),
    splitCase('splitHeads cross-attention queries: wq, q-Norm, 48 heads x 128, odd N 105, batch 2', ditCrossAttention('queries', 2, 48, 105), 303),
    splitCase(
      'splitHeads RoPE without norms, parts in another order [v|q|k]',
      { B: 1, N: 30, H: 3, Dh: 128, layout: ['v', 'q', 'k'], rope: { grid: [2, 3, 5], angles: 'exact' } },
      304,
    ),
  ];
}

/**
 * The self-attention split at the real size (544x992x204: grid 36x34x62, N = 75,888, 48 heads),
 * batch 1, checked on a sample of tokens spread over the grid.
 */
export function ropeLargeCases(): LargeCase[] {
  // On the emulated device (test/helpers/gpu.ts): two whole frames of the real 34x62 grid (tokens
  // at row, column and frame boundaries), two heads.
  const size = fitEmulated(
    { grid: [36, 34, 62] as [number, number, number], H: 48, far: [37_123, 74_000] },
    { grid: [2, 34, 62] as [number, number, number], H: 2, far: [3001, 4000] },
    'grid 36x34x62 -> 2x34x62 (N 75,888 -> 4,216) and 48 -> 2 heads to fit CI time',
  );
  const { grid, H, far } = size.value;
  const N = grid[0] * grid[1] * grid[2];
  return [
    sampledSplitCase(
      `splitHeads self-attention at 544x992x204 (N 75,888, 48 heads x 128, bf16 angles)${size.note}`,
      grid, H, [0, 1, 61, 62, 999, 1000, 2107, 2108, ...far, N - 2, N - 1], 'cuda',
    ),
  ];
}

/**
 * A self-attention split over `grid` whose input is built on the device (a random block of 1000
 * token rows repeated, plus a per-token ramp so every row differs); the `sampled` tokens are
 * gathered on the device and compared with the float64 reference on the same (f32) input values.
 */
export function sampledSplitCase(name: string, grid: [number, number, number], H: number, sampled: readonly number[], device: 'cuda' | 'cpu'): LargeCase {
  const N = grid[0] * grid[1] * grid[2];
  const Dh = 128, W = H * 3 * Dh, block = 1000;
  const rng = new Rng(310);
  const rows = randn(rng, block * W, 1.5, 0.1);
  const ramp = Float32Array.from({ length: N }, (_, n) => (((n * 7919) % 1009) / 1009 - 0.5) * 0.5);
  const qWeight = randu(rng, Dh, 0.5, 1.5);
  const kWeight = randu(rng, Dh, 0.5, 1.5);
  const spec = { B: 1, N, H, Dh, layout: ['q', 'k', 'v'] as const, rope: { grid, angles: 'bf16-official' as const } };
  return {
    name,
    async runGpu(dtype) {
      using scope = new TensorScope();
      const blockRows = scope.track(Tensor.from(rows, [1, 1, block, W], { device, dtype: 'f32' }));
      const copies = Math.ceil(N / block);
      const repeated = scope.track(ops.expand(blockRows, [1, copies, block, W]));
      const flat = scope.track(repeated.reshape(1, copies * block, W));
      const cut = scope.track(ops.slice(flat, 1, 0, N));
      const rampT = scope.track(Tensor.from(ramp, [1, N, 1], { device, dtype: 'f32' }));
      const sum = scope.track(ops.add(cut, rampT));
      const proj = scope.track(ops.cast(sum, dtype));
      const qNorm = scope.track(Tensor.from(qWeight, [Dh], { device, dtype }));
      const kNorm = scope.track(Tensor.from(kWeight, [Dh], { device, dtype }));
      using rope = Rope3D.create(grid, { split: SPLIT, angles: 'bf16-official', device });
      const parts = splitHeads(proj, { heads: H, layout: spec.layout, qNorm, kNorm, rope });
      // Gather the sampled tokens on the device: [3, H, sampled, Dh] in (q, k, v) order.
      const picked = (['q', 'k', 'v'] as const).map((part) => {
        const full = scope.track(parts[part]!);
        return scope.track(ops.concat(sampled.map((n) => scope.track(ops.slice(full, 2, n, n + 1))), 2));
      });
      return ops.concat(picked, 0);
    },
    async runCpuSample() {
      const proj = new Float32Array(sampled.length * W);
      sampled.forEach((n, s) => {
        for (let w = 0; w < W; w++) proj[s * W + w] = Math.fround(rows[(n % block) * W + w]! + ramp[n]!);
      });
      return Float32Array.from(splitHeadsRef(proj, spec, { q: qWeight, k: kWeight }, sampled, [0], (_b, n) => sampled.indexOf(n)));
    },
    sample: (output) => output,
    tolerance: { f32: 1e-5, bf16: 1e-2 },
  };
}
