// Kernel cases at awkward sizes, from the review of the CUDA kernels before their first GPU run:
// each reaches a branch of a CUDA launcher that the family files leave out (a vector width that
// leaves a partial warp or idle threads, the scalar fallbacks, a single query or key, key tiles
// that fit exactly, odd output channels over two tensor-core tiles, head dims other than 128 in the
// head split, ...). The CPU suite checks them against float64 references here; the GPU suite runs
// them on CUDA in f32 and bf16 against the same references and the CPU twin.
import { swiglu } from '../../lib/kernels/swiglu.js';
import { attention } from '../../lib/kernels/attention.js';
import { groupNorm, layerNorm, rmsNorm } from '../../lib/kernels/norm.js';
import { gatedResidual } from '../../lib/kernels/residual.js';
import { Rope3D, ropeCosSin } from '../../lib/kernels/rope.js';
import { type HeadPart, splitHeads } from '../../lib/kernels/split-heads.js';
import { upsampleResidual } from '../../lib/kernels/vae.js';
import * as ops from '../../lib/ops.js';
import type { Tensor } from '../../lib/tensor.js';
import { Rng, randn, randu } from '../helpers/random.js';
import { attentionRef } from './attention.js';
import { convCase } from './conv.js';
import { rope3dRef } from './split-heads.js';
import type { OpCase, OpInput } from './types.js';
import { groupNormRef, upsampleResidualRef } from './vae.js';

const count = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

// ---- norms ----

function layerNormCase(name: string, rows: number, dim: number, opts: { affine?: boolean; groups?: number; eps?: number }, seed: number): OpCase {
  const rng = new Rng(seed);
  const eps = opts.eps ?? 1e-5;
  const groups = opts.groups ?? 0;
  const inputs: OpInput[] = [{ shape: [rows, dim], data: randn(rng, rows * dim, 1.7, 0.4) }];
  if (opts.affine) inputs.push({ shape: [dim], data: randn(rng, dim, 0.2, 1) }, { shape: [dim], data: randn(rng, dim, 0.2) });
  if (groups) inputs.push({ shape: [groups, dim], data: randn(rng, groups * dim, 0.3) }, { shape: [groups, dim], data: randn(rng, groups * dim, 0.3) });
  return {
    name,
    inputs,
    run: ([x, ...rest]) => {
      const [w, b] = opts.affine ? rest : [];
      const [scale, shift] = groups ? rest.slice(opts.affine ? 2 : 0) : [];
      return layerNorm(x!, { eps, ...(w ? { weight: w, bias: b! } : {}), ...(scale ? { scale, shift: shift! } : {}) });
    },
    reference: ([x, ...rest]) => {
      const [w, b] = opts.affine ? rest : [];
      const [scale, shift] = groups ? rest.slice(opts.affine ? 2 : 0) : [];
      const out = new Float64Array(rows * dim);
      for (let r = 0; r < rows; r++) {
        let mean = 0;
        for (let j = 0; j < dim; j++) mean += x![r * dim + j]!;
        mean /= dim;
        let variance = 0;
        for (let j = 0; j < dim; j++) variance += (x![r * dim + j]! - mean) ** 2;
        const inv = 1 / Math.sqrt(variance / dim + eps);
        const g = groups ? Math.floor(r / (rows / groups)) : 0;
        for (let j = 0; j < dim; j++) {
          let y = (x![r * dim + j]! - mean) * inv;
          if (w) y = y * w[j]! + b![j]!;
          if (scale) y = y * (1 + scale[g * dim + j]!) + shift![g * dim + j]!;
          out[r * dim + j] = y;
        }
      }
      return out;
    },
    tolerance: 1e-5,
  };
}

function rmsNormCase(name: string, rows: number, dim: number, weighted: boolean, seed: number): OpCase {
  const rng = new Rng(seed);
  const inputs: OpInput[] = [{ shape: [rows, dim], data: randn(rng, rows * dim, 1.3) }];
  if (weighted) inputs.push({ shape: [dim], data: randu(rng, dim, 0.5, 1.5) });
  return {
    name,
    inputs,
    run: ([x, w]) => rmsNorm(x!, w, 1e-6),
    reference: ([x, w]) => {
      const out = new Float64Array(rows * dim);
      for (let r = 0; r < rows; r++) {
        let ss = 0;
        for (let j = 0; j < dim; j++) ss += x![r * dim + j]! ** 2;
        const inv = 1 / Math.sqrt(ss / dim + 1e-6);
        for (let j = 0; j < dim; j++) out[r * dim + j] = x![r * dim + j]! * inv * (w ? w[j]! : 1);
      }
      return out;
    },
    tolerance: 1e-5,
  };
}

function gatedResidualCase(name: string, rows: number, dim: number, groups: number, seed: number): OpCase {
  const rng = new Rng(seed);
  const inputs: OpInput[] = [
    { shape: [rows, dim], data: randn(rng, rows * dim) },
    { shape: [rows, dim], data: randn(rng, rows * dim) },
  ];
  if (groups) inputs.push({ shape: [groups, dim], data: randu(rng, groups * dim, -1, 1) });
  return {
    name,
    inputs,
    run: ([x, y, gate]) => gatedResidual(x!, y!, gate),
    reference: ([x, y, gate]) =>
      Float64Array.from(x!, (v, i) => v + (gate ? gate[Math.floor(Math.floor(i / dim) / (rows / groups)) * dim + (i % dim)]! : 1) * y![i]!),
  };
}

function groupNormCase(name: string, shape: number[], groups: number, silu: boolean, seed: number): OpCase {
  const rng = new Rng(seed);
  const C = shape[shape.length - 1]!;
  return {
    name,
    inputs: [
      { shape, data: randn(rng, count(shape), 0.9, 0.3) },
      { shape: [C], data: randn(rng, C, 0.2, 1) },
      { shape: [C], data: randn(rng, C, 0.2) },
    ],
    run: ([x, w, b]) => groupNorm(x!, w!, b!, { groups, silu }),
    reference: ([x, w, b]) => groupNormRef(x!, shape, groups, w!, b!, silu),
    tolerance: 1e-5,
  };
}

// ---- VAE fusions ----

function upsampleResidualCase(name: string, shape: [number, number, number, number], ut: number, us: number, seed: number): OpCase {
  const [T, H, W, C] = shape;
  const rng = new Rng(seed);
  const small = [T / ut, H / us, W / us, C];
  return {
    name,
    inputs: [
      { shape, data: randn(rng, count(shape), 1.5) },
      { shape: small, data: randn(rng, count(small), 1.5) },
    ],
    run: ([h, x]) => upsampleResidual(h!, x!, { time: ut, space: us }),
    reference: ([h, x]) => upsampleResidualRef(h!, x!, shape, ut, us),
  };
}

// ---- attention ----

interface AttentionSpec {
  B: number; H: number; Hkv: number; Nq: number; Nk: number; D: number;
  kvLen?: number[]; causal?: boolean; alibi?: boolean;
}

function attentionCase(name: string, s: AttentionSpec, seed: number): OpCase {
  const rng = new Rng(seed);
  const inputs: OpInput[] = [
    { shape: [s.B, s.H, s.Nq, s.D], data: randn(rng, s.B * s.H * s.Nq * s.D, 1.5) },
    { shape: [s.B, s.Hkv, s.Nk, s.D], data: randn(rng, s.B * s.Hkv * s.Nk * s.D) },
    { shape: [s.B, s.Hkv, s.Nk, s.D], data: randn(rng, s.B * s.Hkv * s.Nk * s.D) },
  ];
  if (s.kvLen) inputs.push({ shape: [s.B], data: Int32Array.from(s.kvLen), dtype: 'i32' });
  const flags = { causal: s.causal ?? false, alibi: s.alibi ?? false };
  return {
    name,
    inputs,
    run: ([q, k, v, kvLen]) => attention(q!, k!, v!, { causal: flags.causal, alibiSqrt: flags.alibi, ...(kvLen ? { kvLen } : {}) }),
    reference: ([q, k, v, kvLen]) => attentionRef(q!, k!, v!, s.B, s.H, s.Hkv, s.Nq, s.Nk, s.D, { ...(kvLen ? { kvLen } : {}), ...flags }),
    tolerance: 1e-5,
  };
}

// ---- convolution ----

// Conv edge cases use the conv family's own case builder (test/cases/conv.ts).

// ---- core: matmul, softmax, swiglu ----

function matmulCase(name: string, s: { batch: number; m: number; n: number; k: number; transB: boolean; bBatched?: boolean; bias?: boolean; gelu?: boolean }, seed: number): OpCase {
  const rng = new Rng(seed);
  const aShape = s.batch > 1 ? [s.batch, s.m, s.k] : [s.m, s.k];
  const bCore = s.transB ? [s.n, s.k] : [s.k, s.n];
  const bShape = s.bBatched ? [s.batch, ...bCore] : bCore;
  const inputs: OpInput[] = [
    { shape: aShape, data: randn(rng, count(aShape)) },
    { shape: bShape, data: randn(rng, count(bShape), 1 / Math.sqrt(Math.max(1, s.k))) },
  ];
  if (s.bias) inputs.push({ shape: [s.n], data: randn(rng, s.n) });
  const geluTanh = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
  return {
    name,
    inputs,
    run: ([a, b, bias]) => ops.matmul(a!, b!, { transB: s.transB, ...(bias ? { bias } : {}), ...(s.gelu ? { epilogue: 'gelu_tanh' as const } : {}) }),
    reference: ([a, b, bias]) => {
      const out = new Float64Array(s.batch * s.m * s.n);
      for (let t = 0; t < s.batch; t++) {
        const bBase = s.bBatched ? t * s.k * s.n : 0;
        for (let i = 0; i < s.m; i++)
          for (let j = 0; j < s.n; j++) {
            let acc = bias ? bias[j]! : 0;
            for (let p = 0; p < s.k; p++) acc += a![(t * s.m + i) * s.k + p]! * b![bBase + (s.transB ? j * s.k + p : p * s.n + j)]!;
            out[(t * s.m + i) * s.n + j] = s.gelu ? geluTanh(acc) : acc;
          }
      }
      return out;
    },
    tolerance: 1e-5,
  };
}

function softmaxCase(rows: number, cols: number, seed: number): OpCase {
  const rng = new Rng(seed);
  return {
    name: `softmax ${rows}x${cols}`,
    inputs: [{ shape: [rows, cols], data: randn(rng, rows * cols, 3) }],
    run: ([x]) => ops.softmax(x!),
    reference: ([x]) => {
      const out = new Float64Array(rows * cols);
      for (let r = 0; r < rows; r++) {
        let m = -Infinity;
        for (let j = 0; j < cols; j++) m = Math.max(m, x![r * cols + j]!);
        let total = 0;
        for (let j = 0; j < cols; j++) total += Math.exp(x![r * cols + j]! - m);
        for (let j = 0; j < cols; j++) out[r * cols + j] = Math.exp(x![r * cols + j]! - m) / total;
      }
      return out;
    },
  };
}

function swigluCase(name: string, rows: number, half: number, seed: number): OpCase {
  const rng = new Rng(seed);
  return {
    name,
    inputs: [{ shape: [rows, 2 * half], data: randn(rng, rows * 2 * half, 1.5) }],
    run: ([x]) => swiglu(x!),
    reference: ([x]) => {
      const out = new Float64Array(rows * half);
      for (let r = 0; r < rows; r++)
        for (let j = 0; j < half; j++) {
          const g = x![r * 2 * half + j]!;
          out[r * half + j] = (g / (1 + Math.exp(-g))) * x![r * 2 * half + half + j]!;
        }
      return out;
    },
  };
}

// ---- head split + QK-norm + RoPE at head dims other than the DiT's 128 ----

interface SplitSpec {
  B: number; N: number; H: number; Dh: number;
  layout: readonly HeadPart[];
  norms: boolean;
  rope?: { grid: [number, number, number]; split: [number, number, number] };
}

function splitCase(name: string, s: SplitSpec, seed: number): OpCase {
  const rng = new Rng(seed);
  const P = s.layout.length;
  const produced = (['q', 'k', 'v'] as const).filter((p) => s.layout.includes(p));
  const normed = produced.filter((p) => s.norms && p !== 'v');
  const inputs: OpInput[] = [{ shape: [s.B, s.N, s.H * P * s.Dh], data: randn(rng, s.B * s.N * s.H * P * s.Dh, 1.7, 0.2) }];
  for (const _ of normed) inputs.push({ shape: [s.Dh], data: randu(rng, s.Dh, 0.5, 1.5) });
  return {
    name,
    inputs,
    run: ([proj, ...weights]) => {
      const weightOf = (p: HeadPart) => (normed.includes(p as 'q' | 'k') ? weights[normed.indexOf(p as 'q' | 'k')] : undefined);
      const rope = s.rope ? Rope3D.create(s.rope.grid, { split: s.rope.split, angles: 'exact', device: proj!.device }) : undefined;
      try {
        const qNorm = weightOf('q'), kNorm = weightOf('k');
        const parts = splitHeads(proj!, { heads: s.H, layout: s.layout, ...(qNorm ? { qNorm } : {}), ...(kNorm ? { kNorm } : {}), ...(rope ? { rope } : {}) });
        const ordered = produced.map((p) => parts[p]!);
        const joined: Tensor = ordered.length === 1 ? ordered[0]!.clone() : ops.concat(ordered, 0);
        for (const t of ordered) t.dispose();
        return joined;
      } finally {
        rope?.dispose();
      }
    },
    reference: ([proj, ...weights]) => {
      const out = new Float64Array(produced.length * s.B * s.H * s.N * s.Dh);
      const tables = s.rope ? s.rope.split.map((width, axis) => ropeCosSin(s.rope!.grid[axis]!, width, { angles: 'exact' })) : [];
      const x = new Float64Array(s.Dh);
      let o = 0;
      for (const part of produced) {
        const index = s.layout.indexOf(part);
        const weight = normed.includes(part as 'q' | 'k') ? weights[normed.indexOf(part as 'q' | 'k')] : undefined;
        for (let b = 0; b < s.B; b++)
          for (let h = 0; h < s.H; h++)
            for (let n = 0; n < s.N; n++) {
              const base = (((b * s.N + n) * s.H + h) * P + index) * s.Dh;
              for (let d = 0; d < s.Dh; d++) x[d] = proj![base + d]!;
              if (weight) {
                let ss = 0;
                for (let d = 0; d < s.Dh; d++) ss += x[d]! * x[d]!;
                const inv = 1 / Math.sqrt(ss / s.Dh + 1e-6);
                for (let d = 0; d < s.Dh; d++) x[d] = x[d]! * inv * weight[d]!;
              }
              if (s.rope && part !== 'v') {
                const [, G1, G2] = s.rope.grid;
                const position = [Math.floor(n / (G1 * G2)), Math.floor(n / G2) % G1, n % G2];
                rope3dRef(x, position, s.rope.split, tables, out, o);
              } else {
                for (let d = 0; d < s.Dh; d++) out[o + d] = x[d]!;
              }
              o += s.Dh;
            }
      }
      return out;
    },
    tolerance: 1e-5,
  };
}

const causal3 = { front: 2, top: 1, bottom: 1, left: 1, right: 1 };

export function edgeCases(): OpCase[] {
  return [
    // LayerNorm: the register-resident kernel with 1, 2 and 3→4 vectors per thread, a partial warp,
    // and the scalar kernel for a bf16 row of more than 4 vectors per thread.
    layerNormCase('edge layerNorm D 1024 + affine (CLIP width: one 16-byte vector per thread)', 6, 1024, { affine: true }, 1000),
    layerNormCase('edge layerNorm D 2056 + affine + AdaLN in 3 groups (bf16: 2 vectors per thread; f32: 3 of 4 slots)', 9, 2056, { affine: true, groups: 3 }, 1001),
    layerNormCase('edge layerNorm D 40, no affine (5 or 10 vectors: a partial warp)', 7, 40, { eps: 1e-6 }, 1002),
    layerNormCase('edge layerNorm D 8200 (bf16: more than 4 vectors per thread, scalar kernel)', 3, 8200, { affine: true }, 1003),
    rmsNormCase('edge rmsNorm D 6144 (Step-LLM width, 512 threads)', 5, 6144, true, 1010),
    rmsNormCase('edge rmsNorm D 33 without weight', 7, 33, false, 1011),
    gatedResidualCase('edge gatedResidual D 131 (scalar kernel), gate in 3 groups', 9, 131, 3, 1020),
    gatedResidualCase('edge gatedResidual D 24 (3 or 6 vectors per row), no gate', 5, 24, 0, 1021),
    // GroupNorm: the clear kernel (bf16 with C % 8 != 0 and C > 256), idle threads in a block (C = 264:
    // 33 vectors per pixel row), the widest fast layouts (C = 1024), more than 32 chunks per frame
    // (the finalize warp loops), and groups of one channel over one pixel (zero variance).
    groupNormCase('edge groupNorm+SiLU C 300 in 30 groups (bf16: clear kernel; f32: 75 vectors a row)', [2, 5, 7, 300], 30, true, 1030),
    groupNormCase('edge groupNorm C 264 in 33 groups, 33x35 frame (7 pixel rows of 33 vectors, 6 chunks)', [1, 33, 35, 264], 33, false, 1031),
    groupNormCase('edge groupNorm+SiLU C 1024 in 32 groups (256 or 128 vectors per pixel)', [2, 3, 5, 1024], 32, true, 1032),
    groupNormCase('edge groupNorm C 128, 130x130 frame (more than 32 chunks per frame)', [1, 130, 130, 128], 32, false, 1033),
    groupNormCase('edge groupNorm one channel per group over one pixel (zero variance)', [3, 1, 1, 32], 32, true, 1034),
    // Upsample3D's residual: 12 channels (bf16 scalar, f32 vector), space x4 only.
    upsampleResidualCase('edge upsampleResidual 12 channels, x2 in T,H,W', [2, 4, 6, 12], 2, 2, 1040),
    upsampleResidualCase('edge upsampleResidual 16 channels, space x4 only', [1, 8, 8, 16], 1, 4, 1041),
    // Attention: the 512-wide kernel with bottom-right causal alignment and per-item kv_len, GQA with
    // every mask at once, one query, one key, exact tile multiples, and a generic-only head dim.
    attentionCase('edge attention D 512 causal, 40 queries over 75 keys, kv_len [75, 50]', { B: 2, H: 1, Hkv: 1, Nq: 40, Nk: 75, D: 512, causal: true, kvLen: [75, 50] }, 1050),
    attentionCase('edge attention D 64 GQA 8/2 causal ALiBi-sqrt, kv_len [3, 50]', { B: 2, H: 8, Hkv: 2, Nq: 50, Nk: 50, D: 64, causal: true, alibi: true, kvLen: [3, 50] }, 1051),
    attentionCase('edge attention D 256, one query over 300 keys, kv_len [300, 1]', { B: 2, H: 2, Hkv: 2, Nq: 1, Nk: 300, D: 256, kvLen: [300, 1] }, 1052),
    attentionCase('edge attention D 128, one query and one key', { B: 1, H: 3, Hkv: 3, Nq: 1, Nk: 1, D: 128 }, 1053),
    attentionCase('edge attention D 128 causal N 256 (whole row blocks and key tiles)', { B: 1, H: 2, Hkv: 2, Nq: 256, Nk: 256, D: 128, causal: true }, 1054),
    attentionCase('edge attention D 96 (generic kernel, partial lanes), kv_len [37, 20]', { B: 2, H: 3, Hkv: 3, Nq: 37, Nk: 37, D: 96, kvLen: [37, 20] }, 1055),
    // Convolution: a full 16-wide tile, odd Cout over two 128-wide tiles (scalar stores), upsampling
    // by 4 with a time stride, a 1x1x1 over B = 2 with a partial row tile, and the SIMT kernel with
    // a stride and the asymmetric pad.
    convCase('edge conv3d 32 -> 16 (one full 128x16 tile column), odd 3x7x9', { input: [1, 3, 7, 9, 32], cout: 16, kernel: [3, 3, 3], padding: causal3, bias: true }, 1060),
    convCase('edge conv3d 64 -> 129 (two N tiles, odd Cout: unpaired stores) + residual', { input: [1, 2, 5, 6, 64], cout: 129, kernel: [3, 3, 3], padding: causal3, bias: true, residual: true }, 1061),
    convCase('edge conv3d 32 -> 33, space x4 on read, time stride 2', { input: [1, 4, 2, 3, 32], cout: 33, kernel: [3, 3, 3], stride: [2, 1, 1], padding: causal3, upsample: { space: 4 }, bias: true }, 1062),
    convCase('edge conv 1x1x1 B 2, 32 -> 64, 210 rows + residual', { input: [2, 3, 5, 7, 32], cout: 64, kernel: [1, 1, 1], bias: true, residual: true }, 1063),
    convCase('edge conv2d Cin 3 -> 5 (SIMT) 3x3 stride 2, right/bottom pad', { input: [1, 2, 9, 7, 3], cout: 5, kernel: [1, 3, 3], stride: [1, 2, 2], padding: { bottom: 1, right: 1 }, bias: true }, 1064),
    // GEMM: degenerate and skinny shapes (both the cuBLASLt path and the fallback tiles).
    matmulCase('edge matmul 1x1x1', { batch: 1, m: 1, n: 1, k: 1, transB: false }, 1070),
    matmulCase('edge matmul k 3, transB + bias', { batch: 1, m: 37, n: 65, k: 3, transB: true, bias: true }, 1071),
    matmulCase('edge matmul one row (GEMV), transB + bias + gelu_tanh', { batch: 1, m: 1, n: 300, k: 257, transB: true, bias: true, gelu: true }, 1072),
    matmulCase('edge matmul batched 5 with batched b, n 8', { batch: 5, m: 66, n: 8, k: 40, transB: false, bBatched: true }, 1073),
    softmaxCase(1, 1, 1080),
    softmaxCase(3, 4099, 1081),
    swigluCase('edge swiglu half width 1', 5, 1, 1090),
    // Head split at head dims the DiT does not use: 8 elements per lane (192), partial lanes (80, odd
    // RoPE half-widths 10), more heads than warps per block.
    splitCase('edge splitHeads Dh 192 [96|48|48], QK-norm + RoPE, 3 heads', { B: 1, N: 12, H: 3, Dh: 192, layout: ['q', 'k', 'v'], norms: true, rope: { grid: [2, 2, 3], split: [96, 48, 48] } }, 1100),
    splitCase('edge splitHeads Dh 80 [40|20|20], RoPE without norms, 9 heads, batch 2', { B: 2, N: 10, H: 9, Dh: 80, layout: ['k', 'q'], norms: false, rope: { grid: [1, 2, 5], split: [40, 20, 20] } }, 1101),
    splitCase('edge splitHeads Dh 64, k-norm, no RoPE, [k|v]', { B: 2, N: 7, H: 5, Dh: 64, layout: ['k', 'v'], norms: true }, 1102),
  ];
}
