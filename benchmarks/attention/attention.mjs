// Attention forward speed on the GPU (issue 3's mma kernel, issue 8's Hopper kernel): our kernels on
// the model's shapes, bf16, against torch SDPA (cuDNN and flash backends) timed in the same run by
// sdpa_baseline.py. One JSON line per shape and path: achieved TFLOP/s, the floor (FLOPs over the
// bf16 GEMM ceiling, bytes over the copy ceiling) and the ratio to each baseline and to the mma kernel.
//   node benchmarks/attention/attention.mjs [--only=dit|cross|llm|vae] [--no-baseline] [--python=python3]
//     [--iterations=5] [--generic]   (--generic also times the generic kernel where it is affordable)
//     [--tokens=75888,...]           only these DiT self-attention lengths (default: all four)
//     [--baselines=cudnn,flash]      the torch SDPA backends to time (default: cudnn, flash, efficient)
//     [--hopper=all|default|none]    Hopper kernel variants on the shapes it takes, on compute capability
//                                    9.0 (default all: every schedule x ring depth, one line each)
//     [--smoke]   shapes / 64 on the default device (f32 on the CPU): checks the script anywhere
// FLOPs: 4·B·H·Nq·Nk·D for full attention; causal counts only the visible (query, key) pairs.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

import { H200, environment, library, parseFlags, report, root, time } from '../lib/harness.mjs';

const flags = parseFlags();
const iterations = Number(flags.iterations ?? 5);
const sv = await library();
const smoke = Boolean(flags.smoke);
const device = smoke ? sv.defaultDevice() : sv.getDevice('cuda');
const dtype = device.isCuda ? 'bf16' : 'f32';
const { attention, attentionKernel } = sv.kernels;
const { cast, matmul } = sv.ops;

// The model's shapes: DiT self-attention at the four frame counts/resolutions the issue names
// (N = 18,972 ... 82,944 tokens), cross-attention to the 397 caption tokens, Step-LLM (320 tokens,
// causal ALiBi-sqrt; 48 heads assumed, 4 groups assumed) and the VAE mid-block (one head of 512).
const shapes = [
  ...[18_972, 50_592, 75_888, 82_944].map((n) => ({ group: 'dit', name: `dit-self N=${n}`, B: 2, H: 48, Hkv: 48, Nq: n, Nk: n, D: 128, causal: false, alibi: false })),
  { group: 'cross', name: 'dit-cross 75888x397', B: 2, H: 48, Hkv: 48, Nq: 75_888, Nk: 397, D: 128, causal: false, alibi: false, generic: true },
  { group: 'llm', name: 'step-llm N=320 causal alibi', B: 2, H: 48, Hkv: 4, Nq: 320, Nk: 320, D: 128, causal: true, alibi: true, generic: true },
  { group: 'vae', name: 'vae-mid N=42160 causal D=512', B: 1, H: 1, Hkv: 1, Nq: 42_160, Nk: 42_160, D: 512, causal: true, alibi: false, generic: true },
]
  .filter((s) => flags.only === undefined || String(flags.only).split(',').includes(s.group))
  .filter((s) => flags.tokens === undefined || s.group !== 'dit' || String(flags.tokens).split(',').map(Number).includes(s.Nq))
  .map((s) => (smoke ? { ...s, B: 1, H: 4, Hkv: s.Hkv === s.H ? 4 : 2, Nq: Math.ceil(s.Nq / 64), Nk: Math.ceil(s.Nk / 64) } : s));

function visiblePairs(s) {
  if (!s.causal) return s.Nq * s.Nk;
  const offset = s.Nk - s.Nq;
  let pairs = 0;
  for (let i = 0; i < s.Nq; i++) pairs += Math.min(s.Nk, i + offset + 1);
  return pairs;
}

/** Seeded [B, H, N, D] data made on the device: uploaded [rows, 16] uniform coefficients times a [16, D] basis. */
function randomInput(shape, seed) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const rank = 16;
  const rows = shape[0] * shape[1] * shape[2];
  const coefficients = new Float32Array(rows * rank);
  for (let i = 0; i < coefficients.length; i++) coefficients[i] = 2 * next() - 1;
  const basis = new Float32Array(rank * shape[3]);
  for (let i = 0; i < basis.length; i++) basis[i] = (next() + next() + next() - 1.5) * 0.6;
  const a = sv.Tensor.from(coefficients, [rows, rank], { device });
  const b = sv.Tensor.from(basis, [rank, shape[3]], { device });
  const product = matmul(a, b);
  const out = cast(product, dtype);
  for (const t of [a, b, product]) t.dispose();
  return out.reshape(shape);
}

// Paths: 'auto' (what the models get), 'generic', and the Hopper kernel's variants (forced; the
// first listed is its default). Each path is a kernel policy the op reads when it is enqueued.
const HOPPER_VARIANTS = [['pingpong', 2], ['pingpong', 3], ['overlap', 2], ['overlap', 3], ['serial', 2], ['serial', 3]];
const hopperVariants = flags.hopper === 'none' ? [] : flags.hopper === 'default' ? HOPPER_VARIANTS.slice(0, 1) : HOPPER_VARIANTS;
const pathPolicy = (mode) => {
  if (!mode.startsWith('hopper:')) return { attention: mode };
  const [schedule, stages] = mode.slice('hopper:'.length).split('/');
  return { attention: 'hopper', hopperSchedule: schedule, hopperStages: Number(stages) };
};

// The CPU has one kernel per op: only CUDA devices take a policy.
const onPath = (mode, fn) => (device.isCuda ? device.withKernelPolicy(pathPolicy(mode), fn) : fn());

/** The Hopper variants this call can take ([] off compute capability 9.0, for f32, other head dims, masks). */
function hopperPaths(q, k, v, options) {
  if (!device.isCuda) return [];
  return hopperVariants
    .map(([schedule, stages]) => `hopper:${schedule}/${stages}`)
    .filter((mode) => {
      try {
        return onPath(mode, () => attentionKernel(q, k, v, options)) === 'hopper';
      } catch {
        return false;  // ERR_UNSUPPORTED: not an sm_90a build on a 9.0 device, or a call it does not take
      }
    });
}

// ---- the baseline, first, so both share the GPU's state (clocks, memory) as little as possible ----
const baseline = new Map();
if (!flags['no-baseline'] && !smoke) {
  const python = flags.python ?? 'python3';
  const script = path.join(root, 'benchmarks', 'attention', 'sdpa_baseline.py');
  const backends = flags.baselines ? [String(flags.baselines)] : [];
  const result = spawnSync(python, [script, JSON.stringify(shapes), String(iterations), ...backends], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (result.error || result.status !== 0) {
    report({ benchmark: 'attention-baseline', error: String(result.error ?? result.stderr).slice(-2000) });
  } else {
    for (const line of result.stdout.split('\n').filter((l) => l.startsWith('{'))) {
      const row = JSON.parse(line);
      report({ benchmark: 'attention-baseline', ...row });
      if (row.ms !== undefined) baseline.set(`${row.name}|${row.backend}`, row.ms);
    }
  }
}

const env = environment(device);
for (const s of shapes) {
  const q = randomInput([s.B, s.H, s.Nq, s.D], 1);
  const k = randomInput([s.B, s.Hkv, s.Nk, s.D], 2);
  const v = randomInput([s.B, s.Hkv, s.Nk, s.D], 3);
  const flops = 4 * s.B * s.H * visiblePairs(s) * s.D;
  const bytes = (dtype === 'f32' ? 4 : 2) * (2 * q.numel + k.numel + v.numel);  // q read, out written, k and v read once
  const floorMs = Math.max(flops / H200.bf16GemmFlops, bytes / H200.copyBytesPerSecond) * 1e3;
  const options = { causal: s.causal, alibiSqrt: s.alibi };
  const paths = ['auto', ...hopperPaths(q, k, v, options), ...(flags.generic && s.generic && device.isCuda ? ['generic'] : [])];
  let autoMs;
  for (const mode of paths) {
    const run = () => onPath(mode, () => attention(q, k, v, options).dispose());
    const t = await time(device, run, { warmup: 1, iterations: mode === 'generic' ? 3 : iterations });
    const tflops = flops / (t.medianMs * 1e-3) / 1e12;
    if (mode === 'auto') autoMs = t.medianMs;
    const row = {
      benchmark: 'attention',
      ...env,
      name: s.name,
      device: device.name,
      dtype,
      path: mode === 'auto' ? `auto (${onPath(mode, () => attentionKernel(q, k, v, options))})` : mode,
      shape: { B: s.B, H: s.H, Hkv: s.Hkv, Nq: s.Nq, Nk: s.Nk, D: s.D, causal: s.causal, alibi: s.alibi },
      medianMs: Number(t.medianMs.toFixed(3)),
      minMs: Number(t.minMs.toFixed(3)),
      tflops: Number(tflops.toFixed(1)),
      floorMs: Number(floorMs.toFixed(3)),
      floorRatio: Number((t.medianMs / floorMs).toFixed(2)),
    };
    for (const backend of ['cudnn', 'flash', 'efficient']) {
      const ms = baseline.get(`${s.name}|${backend}`);
      if (ms !== undefined) row[`speedupVs_${backend}`] = Number((ms / t.medianMs).toFixed(3));
    }
    if (mode !== 'auto' && autoMs !== undefined) row.speedupVs_auto = Number((autoMs / t.medianMs).toFixed(3));
    report(row);
  }
  for (const t of [q, k, v]) t.dispose();
}
