// Cases of the attention family (native/attention.h): every mask variant at real head dims with
// odd lengths, masks that differ per batch item, and a fully masked batch item. The sizes sit on
// both sides of the tensor-core kernel's tiles (16-row warps, 32/64/128-row blocks, 32/64-key tiles), so
// the same cases check its partial tiles on the GPU. Real sizes are in attentionLargeCases().
import type { DType } from '../../lib/dtype.js';
import { attention } from '../../lib/kernels/attention.js';
import { randomNormal } from '../../lib/kernels/random.js';
import { cast, scale } from '../../lib/ops.js';
import { Tensor } from '../../lib/tensor.js';
import { fitEmulated } from '../helpers/gpu.js';
import { Rng, randn, randu } from '../helpers/random.js';
import type { LargeCase, OpCase } from './types.js';

export function alibiSlope(h: number, heads: number): number {
  let n = 1;
  while (n * 2 <= heads) n *= 2;
  return h < n ? 2 ** ((-8 * (h + 1)) / n) : 2 ** ((-4 * (2 * (h - n) + 1)) / n);
}

/** float64 attention: q [B,H,Nq,D], k/v [B,Hkv,Nk,D] → [B,Nq,H,D]. */
export function attentionRef(
  q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>,
  B: number, H: number, Hkv: number, Nq: number, Nk: number, D: number,
  opts: { kvLen?: ArrayLike<number>; causal?: boolean; alibi?: boolean; scale?: number } = {},
): Float64Array {
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const out = new Float64Array(B * Nq * H * D);
  const offset = Nk - Nq;
  const s = new Float64Array(Nk);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / (H / Hkv));
      const slope = opts.alibi ? alibiSlope(h, H) : 0;
      for (let i = 0; i < Nq; i++) {
        let last = opts.kvLen ? Math.min(Nk, Math.max(0, opts.kvLen[b]!)) : Nk;
        if (opts.causal) last = Math.min(last, i + offset + 1);
        let m = -Infinity;
        for (let j = 0; j < last; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[((b * H + h) * Nq + i) * D + d]! * k[((b * Hkv + hk) * Nk + j) * D + d]!;
          s[j] = dot * scale - (opts.alibi ? slope * Math.sqrt(i + offset - j) : 0);
          m = Math.max(m, s[j]!);
        }
        let total = 0;
        for (let j = 0; j < last; j++) {
          s[j] = Math.exp(s[j]! - m);
          total += s[j]!;
        }
        for (let d = 0; d < D; d++) {
          let acc = 0;
          for (let j = 0; j < last; j++) acc += s[j]! * v[((b * Hkv + hk) * Nk + j) * D + d]!;
          out[((b * Nq + i) * H + h) * D + d] = total > 0 ? acc / total : 0;
        }
      }
    }
  return out;
}

interface Spec {
  name: string;
  B: number; H: number; Hkv: number; Nq: number; Nk: number; D: number;
  kvLen?: number[]; causal?: boolean; alibi?: boolean; seed: number; qStd?: number;
}

function attentionCase(spec: Spec): OpCase {
  const { B, H, Hkv, Nq, Nk, D } = spec;
  const rng = new Rng(spec.seed);
  const inputs = [
    { shape: [B, H, Nq, D], data: randn(rng, B * H * Nq * D, spec.qStd ?? 1) },
    { shape: [B, Hkv, Nk, D], data: randn(rng, B * Hkv * Nk * D) },
    { shape: [B, Hkv, Nk, D], data: randn(rng, B * Hkv * Nk * D) },
  ] as OpCase['inputs'];
  if (spec.kvLen) inputs.push({ shape: [B], data: Int32Array.from(spec.kvLen), dtype: 'i32' });
  return {
    name: spec.name,
    inputs,
    run: ([q, k, v, kvLen]) => attention(q!, k!, v!, { causal: spec.causal ?? false, alibiSqrt: spec.alibi ?? false, ...(kvLen ? { kvLen } : {}) }),
    reference: ([q, k, v, kvLen]) => attentionRef(q!, k!, v!, B, H, Hkv, Nq, Nk, D, { ...(kvLen ? { kvLen } : {}), causal: spec.causal ?? false, alibi: spec.alibi ?? false }),
    tolerance: 1e-5,
  };
}

export function attentionCases(): OpCase[] {
  return [
    attentionCase({ name: 'self-attention, 3 heads x 128, odd N 131, batch 2', B: 2, H: 3, Hkv: 3, Nq: 131, Nk: 131, D: 128, seed: 200, qStd: 2 }),
    attentionCase({ name: 'cross-attention, prefix kv_len [17, 9] of 17 keys', B: 2, H: 2, Hkv: 2, Nq: 67, Nk: 17, D: 128, kvLen: [17, 9], seed: 201 }),
    attentionCase({ name: 'cross-attention, one batch item fully masked (kv_len 0)', B: 2, H: 2, Hkv: 2, Nq: 9, Nk: 13, D: 128, kvLen: [0, 13], seed: 202 }),
    attentionCase({ name: 'Step-LLM: causal ALiBi-sqrt GQA 4 heads / 1 group x 64', B: 2, H: 4, Hkv: 1, Nq: 45, Nk: 45, D: 64, causal: true, alibi: true, seed: 203 }),
    attentionCase({ name: 'Step-LLM: causal ALiBi-sqrt 6 heads (non power of 2) / 2 groups x 128', B: 1, H: 6, Hkv: 2, Nq: 33, Nk: 33, D: 128, causal: true, alibi: true, seed: 204 }),
    attentionCase({ name: 'BERT: padding kv_len [16, 11], 4 heads x 16', B: 2, H: 4, Hkv: 4, Nq: 16, Nk: 16, D: 16, kvLen: [16, 11], seed: 205 }),
    attentionCase({ name: 'BERT: padding kv_len [77, 23], 16 heads x 64', B: 2, H: 16, Hkv: 16, Nq: 77, Nk: 77, D: 64, kvLen: [77, 23], seed: 206 }),
    attentionCase({ name: 'VAE mid-block: causal single head x 512', B: 1, H: 1, Hkv: 1, Nq: 97, Nk: 97, D: 512, causal: true, seed: 207 }),
    // Lengths around the tiles: one token, one short of / exactly / one past 64 and 128.
    ...[1, 63, 64, 65, 127, 129].map((n, i) =>
      attentionCase({ name: `self-attention N=${n}, 2 heads x 128`, B: 1, H: 2, Hkv: 2, Nq: n, Nk: n, D: 128, seed: 210 + i }),
    ),
    ...[1, 63, 65, 129].map((n, i) =>
      attentionCase({ name: `causal N=${n}, 2 heads x 128`, B: 1, H: 2, Hkv: 2, Nq: n, Nk: n, D: 128, causal: true, seed: 220 + i }),
    ),
    attentionCase({ name: 'causal, 65 queries over 129 keys (bottom-right aligned)', B: 2, H: 2, Hkv: 2, Nq: 65, Nk: 129, D: 64, causal: true, seed: 230 }),
    attentionCase({ name: 'causal ALiBi-sqrt, 17 queries over 80 keys', B: 1, H: 3, Hkv: 3, Nq: 17, Nk: 80, D: 128, causal: true, alibi: true, seed: 231 }),
    // Prefix masks on tile boundaries, and out-of-range values (clamped to [0, Nk]).
    attentionCase({ name: 'kv_len [64, 65] of 129 keys', B: 2, H: 2, Hkv: 2, Nq: 70, Nk: 129, D: 128, kvLen: [64, 65], seed: 232 }),
    attentionCase({ name: 'kv_len [1, 129] of 129 keys', B: 2, H: 2, Hkv: 2, Nq: 33, Nk: 129, D: 128, kvLen: [1, 129], seed: 233 }),
    attentionCase({ name: 'kv_len [500 (> Nk), -3 (< 0)] of 40 keys', B: 2, H: 2, Hkv: 2, Nq: 21, Nk: 40, D: 64, kvLen: [500, -3], seed: 234 }),
    attentionCase({ name: 'causal + kv_len [100, 7], N=129', B: 2, H: 2, Hkv: 2, Nq: 129, Nk: 129, D: 128, causal: true, kvLen: [100, 7], seed: 235 }),
    attentionCase({ name: 'GQA 4 heads / 2 groups x 128, kv_len [65, 33]', B: 2, H: 4, Hkv: 2, Nq: 65, Nk: 65, D: 128, kvLen: [65, 33], seed: 236 }),
    // Step-LLM at its real sequence length (320, right padding handled by causality).
    attentionCase({ name: 'Step-LLM N=320: causal ALiBi-sqrt, 4 heads / 2 groups x 128', B: 1, H: 4, Hkv: 2, Nq: 320, Nk: 320, D: 128, causal: true, alibi: true, seed: 237 }),
    // Wide heads: the tensor-core kernel splits 256 and 512 over warps.
    attentionCase({ name: 'head dim 256, kv_len [97, 40], N=97', B: 2, H: 2, Hkv: 2, Nq: 97, Nk: 97, D: 256, kvLen: [97, 40], seed: 238 }),
    attentionCase({ name: 'head dim 256, causal N=129', B: 1, H: 2, Hkv: 1, Nq: 129, Nk: 129, D: 256, causal: true, seed: 239 }),
    attentionCase({ name: 'head dim 512, kv_len [70, 33], N=70', B: 2, H: 1, Hkv: 1, Nq: 70, Nk: 70, D: 512, kvLen: [70, 33], seed: 240 }),
    attentionCase({ name: 'head dim 16, causal N=65', B: 1, H: 3, Hkv: 3, Nq: 65, Nk: 65, D: 16, causal: true, seed: 241 }),
  ];
}

// ---- real sizes (GPU suite; CPU twin on a sample) ----

/**
 * Seeded random [B, H, N, D] data made on the GPU, as bf16: standard-normal values from the
 * counter-based generator (randomNormal: Philox of the element's index), times `std` in bf16 (as
 * test/gpu/attention-sm90.test.ts makes its real sizes). Every element is drawn on its own: full
 * rank, independent heads, no period along N, in one pass over the tensor and nothing uploaded.
 * bf16 storage means the f32 run, the bf16 run and the CPU twin see the same numbers.
 */
function randomOnGpu(shape: [number, number, number, number], seed: number, std: number): Tensor {
  using unit = randomNormal(shape, { seed, dtype: 'bf16', device: 'cuda' });
  return scale(unit, std);
}

/** Rows [start, start + count) of head h of batch item b of a [B, H, N, D] tensor, on the host. */
async function rowsOf(t: Tensor, b: number, h: number, start: number, count: number): Promise<Float32Array> {
  const [, H, N, D] = t.shape as [number, number, number, number];
  using flat = t.reshape([t.numel / D, D]);
  using view = flat.narrow((b * H + h) * N + start, count);
  using onHost = await view.to('cpu');
  return onHost.toFloat32();
}

/** q, k, v made on first use and freed after the last dtype's GPU run. */
class LargeInputs {
  #tensors: { q: Tensor; k: Tensor; v: Tensor } | undefined;
  constructor(private readonly make: () => { q: Tensor; k: Tensor; v: Tensor }) {}
  get(): { q: Tensor; k: Tensor; v: Tensor } {
    return (this.#tensors ??= this.make());
  }
  release(): void {
    for (const t of Object.values(this.#tensors ?? {})) t.dispose();
    this.#tensors = undefined;
  }
}

interface LargeSpec {
  name: string;
  B: number; H: number; Nq: number; Nk: number; D: number;
  kvLen?: number[]; causal?: boolean; seed: number;
  /** (batch item, head, query rows) compared with the CPU twin. */
  picks: Array<{ b: number; h: number; rows: number[] }>;
  dtypes: ReadonlyArray<'f32' | 'bf16'>;
  tolerance: { f32: number; bf16: number };
}

/**
 * Attention at a real size, run whole on the GPU. The CPU twin runs only the picked query rows
 * against the full keys/values of their (batch, head). Causal picks are contiguous row blocks
 * [r0, r0 + n) run against keys [0, r0 + n): bottom-right alignment then gives exactly the rows'
 * own causal limits.
 */
function largeAttentionCase(spec: LargeSpec): LargeCase {
  const { B, H, Nq, Nk, D, picks, causal = false } = spec;
  const inputs = new LargeInputs(() => ({
    q: randomOnGpu([B, H, Nq, D], spec.seed, 1.5),
    k: randomOnGpu([B, H, Nk, D], spec.seed + 1, 1.0),
    v: randomOnGpu([B, H, Nk, D], spec.seed + 2, 1.0),
  }));
  const sampledRows = picks.reduce((n, p) => n + p.rows.length, 0);
  return {
    name: spec.name,
    dtypes: spec.dtypes,
    async runGpu(dtype: DType) {
      const { q, k, v } = inputs.get();
      using kvLen = spec.kvLen ? Tensor.from(Int32Array.from(spec.kvLen), [B], { device: 'cuda' }) : undefined;
      using qd = cast(q, dtype);
      using kd = cast(k, dtype);
      using vd = cast(v, dtype);
      const out = attention(qd, kd, vd, { causal, ...(kvLen ? { kvLen } : {}) });
      if (dtype === spec.dtypes[spec.dtypes.length - 1]) inputs.release();  // queued work keeps what it reads
      return out;
    },
    async runCpuSample() {
      const { q, k, v } = inputs.get();
      const expected = new Float32Array(sampledRows * D);
      let at = 0;
      const runs: Array<{ rows: number; result: Promise<Float32Array> }> = [];
      for (const { b, h, rows } of picks) {
        if (causal && rows.some((row, i) => row !== rows[0]! + i)) throw new Error(`${spec.name}: causal picks must be contiguous`);
        const keys = causal ? rows[rows.length - 1]! + 1 : Nk;
        const qs = new Float32Array(rows.length * D);
        for (const [r, row] of rows.entries()) qs.set(await rowsOf(q, b, h, row, 1), r * D);
        using qc = Tensor.from(qs, [1, 1, rows.length, D], { device: 'cpu' });
        using kc = Tensor.from(await rowsOf(k, b, h, 0, keys), [1, 1, keys, D], { device: 'cpu' });
        using vc = Tensor.from(await rowsOf(v, b, h, 0, keys), [1, 1, keys, D], { device: 'cpu' });
        using kvLen = spec.kvLen ? Tensor.from(Int32Array.from([spec.kvLen[b]!]), [1], { device: 'cpu' }) : undefined;
        const out = attention(qc, kc, vc, { causal, ...(kvLen ? { kvLen } : {}) });
        runs.push({ rows: rows.length, result: out.toFloat32().finally(() => out.dispose()) });
      }
      for (const run of runs) {
        expected.set(await run.result, at);
        at += run.rows * D;
      }
      return expected;
    },
    sample(output: Float32Array) {
      const picked = new Float32Array(sampledRows * D);
      let at = 0;
      for (const pick of picks)
        for (const row of pick.rows) {
          const from = ((pick.b * Nq + row) * H + pick.h) * D;
          picked.set(output.subarray(from, from + D), at);
          at += D;
        }
      return picked;
    },
    tolerance: spec.tolerance,
  };
}

/** Query rows spread over [0, n): first, last, the first tile edges, and seeded ones between. */
function spreadRows(n: number, count: number, seed: number): number[] {
  const rng = new Rng(seed);
  const rows = new Set<number>([0, 63, 64, 127, 128, n - 1].filter((r) => r < n));
  while (rows.size < count) rows.add(rng.int(0, n));
  return [...rows].sort((a, b) => a - b);
}

const block = (start: number, length: number): number[] => Array.from({ length }, (_, i) => start + i);

// bf16 against the CPU twin on the same (bf16-valued) inputs: the output is rounded once and P is
// rounded to bf16 before P·V, each about 2^-9 relative; 8e-3 is twice their sum with margin.
// f32 (generic kernel, f32 accumulation over up to 75,888 keys) against the double-accumulating CPU.
// On the emulated device (test/helpers/gpu.ts) each case keeps its structure at a size that fits the
// CI time: both batch items and two heads each, many key tiles (the cp.async ring wraps) with a
// partial last tile, the caption's 397 keys with kv_len [397, 250], the VAE's causal head of 512.
export function attentionLargeCases(): LargeCase[] {
  const self = fitEmulated(
    { N: 75_888, H: 48, heads: [0, 29, 17, 47] },  // DiT tokens at 204 frames, 544x992: 48 x 1581
    { N: 1029, H: 2, heads: [0, 1, 0, 1] },  // 17 key tiles of 64 (9 of 128), the last one 5 keys
    'N 75,888 -> 1,029 and 48 -> 2 heads to fit CI time',
  );
  const cross = fitEmulated(
    { N: 75_888, H: 48, heads: [0, 29, 17, 47] },
    { N: 259, H: 2, heads: [0, 1, 0, 1] },  // three query blocks of 128, the last one 3 rows
    '75,888 -> 259 queries and 48 -> 2 heads to fit CI time',
  );
  const vae = fitEmulated(
    { N: 42_160, middle: 21_071 },
    { N: 517, middle: 257 },
    'N 42,160 -> 517 to fit CI time',
  );
  const picks = (size: { N: number; heads: number[] }) =>
    [0, 0, 1, 1].map((b, i) => ({ b, h: size.heads[i]!, rows: spreadRows(size.N, 16, 300 + i) }));
  return [
    largeAttentionCase({
      name: `DiT self-attention B=2, 48 heads x 128, N=75,888${self.note}`,
      B: 2, H: self.value.H, Nq: self.value.N, Nk: self.value.N, D: 128, seed: 310, picks: picks(self.value),
      // The generic f32 kernel needs minutes at this size; the model runs bf16.
      dtypes: ['bf16'], tolerance: { f32: 1e-4, bf16: 8e-3 },
    }),
    largeAttentionCase({
      name: `DiT cross-attention 75,888 x 397 keys, kv_len [397, 250]${cross.note}`,
      B: 2, H: cross.value.H, Nq: cross.value.N, Nk: 397, D: 128, kvLen: [397, 250], seed: 320, picks: picks(cross.value),
      dtypes: ['f32', 'bf16'], tolerance: { f32: 1e-4, bf16: 8e-3 },
    }),
    largeAttentionCase({
      name: `VAE mid-block: causal 1 head x 512, N=42,160${vae.note}`,
      B: 1, H: 1, Nq: vae.value.N, Nk: vae.value.N, D: 512, causal: true, seed: 330,
      // Blocks across the first tiles, an odd middle stretch and the end of the sequence.
      picks: [block(0, 16), block(120, 16), block(vae.value.middle, 16), block(vae.value.N - 16, 16)].map((rows) => ({ b: 0, h: 0, rows })),
      dtypes: ['f32', 'bf16'], tolerance: { f32: 1e-4, bf16: 8e-3 },
    }),
  ];
}
