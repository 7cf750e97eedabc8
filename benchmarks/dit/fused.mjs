// The DiT block's memory-bound kernels at 544x992x204 with CFG (2 x 75,888 tokens, D = 6144,
// bf16), each against its floor: the bytes it must move over the measured 4.0 TB/s copy bandwidth
// (goal: >= 0.8 of it). Also the FFN up-projection with the fused GELU-tanh epilogue against the
// bf16 GEMM ceiling, and the plain GEMM + separate GELU it replaces.
//   node benchmarks/dit/fused.mjs [--iterations=10]
// (--device=cpu --frames=1 --height=2 --width=3 is a quick check of the script itself, in f32.)
import path from 'node:path';

import { H200, environment, library, parseFlags, report, root, time } from '../lib/harness.mjs';

const flags = parseFlags();
const iterations = Number(flags.iterations ?? 10);
const sv = await library();
const rope = await import(path.join(root, 'dist', 'kernels', 'rope.js'));
const norm = await import(path.join(root, 'dist', 'kernels', 'norm.js'));
const device = sv.getDevice(flags.device ?? 'cuda');
const env = environment(device);

const [B, F, Hl, Wl] = [2, Number(flags.frames ?? 36), Number(flags.height ?? 34), Number(flags.width ?? 62)];
const dtype = device.isCuda ? 'bf16' : 'f32';
const N = F * Hl * Wl;
const D = 6144;
const heads = 48;

/** A bf16 [B, N, width] activation built on the device: 1000 random token rows repeated. */
function activation(width, seed) {
  const block = 1000;
  const data = new Float32Array(B * block * width);
  let s = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = (s / 4294967296) * 4 - 2;
  }
  const rows = sv.Tensor.from(data, [B, 1, block, width], { dtype, device });
  const copies = Math.ceil(N / block);
  const repeated = sv.ops.expand(rows, [B, copies, block, width]);
  const flat = repeated.reshape(B, copies * block, width);
  const cut = sv.ops.slice(flat, 1, 0, N);
  for (const t of [rows, repeated, flat]) t.dispose();
  return cut;
}

function small(shape, value) {
  return sv.Tensor.full(shape, value, dtype, device);
}

async function measure(name, bytes, run, extra = {}) {
  const { medianMs, minMs } = await time(device, () => {
    const out = run();
    for (const t of Array.isArray(out) ? out : Object.values(out)) t.dispose();
  }, { warmup: 2, iterations });
  const floorMs = (bytes / H200.copyBytesPerSecond) * 1e3;
  report({
    benchmark: `dit-${name}`,
    ...env,
    tokens: B * N,
    gigabytes: Number((bytes / 1e9).toFixed(3)),
    medianMs: Number(medianMs.toFixed(3)),
    minMs: Number(minMs.toFixed(3)),
    gbPerSecond: Number((bytes / (medianMs / 1e3) / 1e9).toFixed(1)),
    floorMs: Number(floorMs.toFixed(3)),
    fractionOfCopyBandwidth: Number((floorMs / medianMs).toFixed(3)),
    goal: 0.8,
    meetsGoal: floorMs / medianMs >= 0.8,
    ...extra,
  });
}

const element = dtype === 'bf16' ? 2 : 4;
const x = activation(D, 1);
const y = activation(D, 2);
const weight = small([D], 1.01);
const bias = small([D], 0.01);
const modulation = small([B, D], 0.05);

// LayerNorm (affine, eps 1e-5) + AdaLN modulate: read x, write the result.
await measure('layernorm-modulate', 2 * B * N * D * element, () => [
  norm.layerNorm(x, { weight, bias, scale: modulation, shift: modulation, eps: 1e-5 }),
]);
// Gated residual x + gate ⊙ y: read x and y, write the sum.
await measure('gated-residual', 3 * B * N * D * element, () => [norm.gatedResidual(x, y, modulation)]);
x.dispose();
y.dispose();

// Self-attention head split: read wqkv's output [B, N, 3D], QK-Norm + 3D RoPE on q and k, write q, k, v.
{
  const qkv = activation(3 * D, 3);
  const qNorm = small([128], 1.0);
  const kNorm = small([128], 0.99);
  const table = rope.Rope3D.create([F, Hl, Wl], { split: [64, 32, 32], angles: 'bf16-official', device });
  await measure('split-heads-qknorm-rope', 2 * B * N * 3 * D * element, () =>
    rope.splitHeads(qkv, { heads, layout: ['q', 'k', 'v'], qNorm, kNorm, rope: table }),
  );
  for (const t of [qkv, qNorm, kNorm]) t.dispose();
  table.dispose();
}
// Cross-attention query split: read wq's output [B, N, D], q-Norm, write [B, H, N, Dh].
{
  const q = activation(D, 4);
  const qNorm = small([128], 1.0);
  await measure('split-heads-qnorm', 2 * B * N * D * element, () => rope.splitHeads(q, { heads, layout: ['q'], qNorm }));
  for (const t of [q, qNorm]) t.dispose();
}

// FFN up-projection with the GELU-tanh epilogue (compute-bound: against the bf16 GEMM ceiling).
{
  const b = activation(D, 5);
  const w1 = small([4 * D, D], 0.001);
  const flops = 2 * B * N * D * 4 * D;
  for (const [name, run] of [
    ['ffn-up-gelu-epilogue', () => [sv.ops.linear(b, w1, undefined, { epilogue: 'gelu_tanh' })]],
    ['ffn-up-then-gelu', () => {
      const h = sv.ops.linear(b, w1);
      const g = sv.ops.geluTanh(h);
      h.dispose();
      return [g];
    }],
  ]) {
    const { medianMs } = await time(device, () => run().forEach((t) => t.dispose()), { warmup: 2, iterations: Math.min(iterations, 5) });
    report({
      benchmark: `dit-${name}`,
      ...env,
      shape: [B * N, D, 4 * D],
      medianMs: Number(medianMs.toFixed(2)),
      tflops: Number((flops / (medianMs / 1e3) / 1e12).toFixed(1)),
      floorMs: Number(((flops / H200.bf16GemmFlops) * 1e3).toFixed(2)),
      fractionOfGemmCeiling: Number((flops / H200.bf16GemmFlops / (medianMs / 1e3)).toFixed(3)),
    });
  }
  b.dispose();
  w1.dispose();
}
for (const t of [weight, bias, modulation]) t.dispose();
