// Every DiT GEMM at 544x992x204 with CFG (benchmarks/dit/gemm_shapes.json) through the library:
// bf16 with the algorithm cuBLASLt's heuristic picks and with the autotuned one; the FP8 Linear
// (per-row activation quantization + e4m3 GEMM with per-channel/per-row scales); and, for the
// three projections followed by a residual add, the fused residual epilogue against the unfused
// pair. Each against torch in the same run (gemm_torch.py, --torch) and against its floor (FLOPs
// over 700 TFLOP/s bf16 or 1400 TFLOP/s FP8, bytes over 4.0 TB/s). Goal: >= 0.95 x torch (bf16).
//   node benchmarks/dit/gemm.mjs [--torch=FILE] [--iterations=10] [--only=NAME]
// (--device=cpu --max-rows=8 --only=clip --iterations=1 is a quick check of the script itself.)
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { H200, environment, library, parseFlags, report, root, time } from '../lib/harness.mjs';

const flags = parseFlags();
const iterations = Number(flags.iterations ?? 10);
const sv = await library();
const random = await import(path.join(root, 'dist', 'kernels', 'random.js'));
const fp8 = await import(path.join(root, 'dist', 'kernels', 'fp8.js'));
const linear = await import(path.join(root, 'dist', 'kernels', 'linear.js'));
const norm = await import(path.join(root, 'dist', 'kernels', 'norm.js'));
const device = sv.getDevice(flags.device ?? 'cuda');
const env = environment(device);
const dtype = device.isCuda ? 'bf16' : 'f32';
const shapes = JSON.parse(readFileSync(path.join(root, 'benchmarks', 'dit', 'gemm_shapes.json'), 'utf8')).shapes;
const torch = flags.torch && existsSync(flags.torch) ? JSON.parse(readFileSync(flags.torch, 'utf8')) : undefined;
const FP8_GEMM_FLOPS = 2 * H200.bf16GemmFlops; // the e4m3 tensor-core peak is twice bf16's

/** Median ms of `run` (reps launches per timed sample for the small context GEMMs). */
async function measure(run, reps) {
  const { medianMs } = await time(device, async () => {
    for (let i = 0; i < reps; i++) run().dispose();
  }, { warmup: 2, iterations });
  return medianMs / reps;
}

function withAutotune(on, body) {
  return device.isCuda ? device.withKernelPolicy({ gemmAutotune: on }, body) : body();
}

const round = (v, digits = 3) => (v === null || v === undefined ? null : Number(v.toFixed(digits)));

for (const shape of shapes) {
  if (flags.only && !shape.name.includes(flags.only)) continue;
  const { k, n } = shape;
  const m = Math.min(shape.m, Number(flags['max-rows'] ?? Infinity)); // --max-rows: a quick check of the script
  const reps = m >= 4096 ? 1 : 50;
  const epilogue = shape.epilogue === 'gelu_tanh' ? { epilogue: 'gelu_tanh' } : {};
  const x = random.randomNormal([m, k], { seed: 1, dtype, device });
  const wRaw = random.randomNormal([n, k], { seed: 2, dtype, device });
  const w = sv.ops.scale(wRaw, 1 / Math.sqrt(k));
  wRaw.dispose();
  const flops = 2 * m * k * n;
  const bytes = (m * k + n * k + m * n) * 2;
  const floorMs = Math.max(flops / H200.bf16GemmFlops, bytes / H200.copyBytesPerSecond) * 1e3;
  const fp8FloorMs = Math.max(flops / FP8_GEMM_FLOPS, (m * k * 2 + m * k + n * k + m * n * 2) / H200.copyBytesPerSecond) * 1e3;

  // bf16: the heuristic's first algorithm, then autotuned (the first autotuned call times the candidates).
  const linearBf16 = () => sv.ops.linear(x, w, undefined, epilogue);
  const heuristicMs = await withAutotune(false, () => measure(linearBf16, reps));
  const tunedMs = await withAutotune(true, async () => {
    linearBf16().dispose();
    await device.synchronize();
    return measure(linearBf16, reps);
  });
  const plan = sv.gemmPlans().find((p) => p.kind === 'matmul' && p.m === m && p.n === n && p.k === k);

  // FP8: the weight quantized once; each call quantizes its activations per row, then the e4m3 GEMM.
  const q = fp8.quantizeFp8(w);
  let fp8Ms = null;
  try {
    fp8Ms = await measure(() => fp8.linearFp8(x, q, { activations: 'per-row', ...epilogue }), reps);
  } catch (error) {
    console.error(`fp8 ${shape.name}: ${error.message}`);
  }
  const fp8Plan = sv.gemmPlans().find((p) => p.kind === 'fp8' && p.m === m && p.n === n && p.k === k);

  // The residual epilogue: x + gate ⊙ (a·Wᵀ) fused, against the linear then the gated residual.
  let fused = null;
  if (shape.residual) {
    const residual = random.randomNormal([m, n], { seed: 3, dtype, device });
    const gate = shape.residual === 'gated' ? random.randomNormal([2, n], { seed: 4, dtype, device }) : undefined;
    const fusedMs = await measure(() => linear.linearResidual(x, w, residual, gate), reps);
    const unfusedMs = await measure(() => {
      const y = sv.ops.linear(x, w);
      const out = norm.gatedResidual(residual, y, gate);
      y.dispose();
      return out;
    }, reps);
    fused = { fusedMs: round(fusedMs), unfusedMs: round(unfusedMs), speedup: round(unfusedMs / fusedMs) };
    residual.dispose();
    gate?.dispose();
  }
  q.dispose();
  x.dispose();
  w.dispose();

  const baseline = torch?.shapes.find((s) => s.name === shape.name);
  report({
    benchmark: 'dit-gemm',
    ...env,
    shape: shape.name,
    m, k, n,
    when: shape.when,
    heuristicMs: round(heuristicMs),
    autotunedMs: round(tunedMs),
    tflops: round(flops / (tunedMs / 1e3) / 1e12, 1),
    floorMs: round(floorMs),
    ratioToFloor: round(tunedMs / floorMs),
    candidates: plan?.candidates ?? null,
    chosen: plan?.chosen ?? null,
    torchMs: round(baseline?.bf16Ms),
    // torch time over ours: >= 0.95 meets the goal (ours no more than 1/0.95 of torch's).
    torchOverOurs: baseline ? round(baseline.bf16Ms / tunedMs) : null,
    meetsGoal: baseline ? baseline.bf16Ms / tunedMs >= 0.95 : null,
    fp8Ms: round(fp8Ms),
    fp8Tflops: fp8Ms ? round(flops / (fp8Ms / 1e3) / 1e12, 1) : null,
    fp8FloorMs: round(fp8FloorMs),
    fp8SpeedupOverBf16: fp8Ms ? round(tunedMs / fp8Ms) : null,
    fp8UsesFp8Gemm: Boolean(fp8Plan && fp8Plan.candidates > 0),
    torchFp8Ms: round(baseline?.fp8Ms),
    torchFp8WithQuantizeMs: round(baseline?.fp8TotalMs),
    torchFp8OverOurs: baseline?.fp8TotalMs && fp8Ms ? round(baseline.fp8TotalMs / fp8Ms) : null,
    residual: fused,
  });
}
