#!/usr/bin/env node
// The GPU check (issue 12): one device call that tells whether the CUDA backend works and how fast
// it is, in at most 5 minutes on an H100, so that a second call fits after a fix. Steps run in
// order, each stopped at its own time budget: the environment; every GPU and golden suite on the
// default paths; the opt-in paths; the headline benchmarks, each with its PyTorch baseline run in
// the same call. report.json and summary.md are rewritten in the output folder after every step
// (and every few seconds while tests run), so a call cut short still returns what finished.
//
//   node scripts/gpu-check.mjs --plan [--only a,b] [--budget step=s,...]   the plan; runs nothing
//   node scripts/gpu-check.mjs [--only a,b] [--budget step=s,...] [--keep-going] [--out DIR] [--app DIR]
//
// On the GPU host it runs from the offline bundle: `bash offline/run.sh check [options]` unpacks,
// then runs this file (packed as offline/check.mjs) with --app, --out $OUT and the unpack time.
// From a checkout it checks the checkout (dist/, the built addon, node_modules). docs/GPU-RUN.md
// says how to call it and read the results.
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** What the whole call may take: 5 of the session's 15 device minutes, so a rerun fits. */
export const TOTAL_BUDGET_S = 300;

// Four test files at a time: the largest GPU tests hold up to ~25 GB each (the released-size VAE
// decode is allowed the official 23.1 GiB; the past-2^31 cases hold several 4-8 GiB tensors), so
// four side by side stay within an H100's 80 GB, and the CPU twins still get several cores each
// (STEPVIDEO_THREADS is set to cores / workers).
const VITEST_WORKERS = 4;
// A green run must mean the GPU suites ran against the goldens: missing either fails, never skips.
// The VAE goldens are not carried (38 MB): the GPU VAE is checked against its CPU twin run here on
// seeded weights of the tiny config instead (STEPVIDEO_VAE_GOLDEN=twin, test/gpu/vae.test.ts).
export const TEST_ENV = { STEPVIDEO_REQUIRE_GPU: '1', STEPVIDEO_REQUIRE_GOLDEN: '1', STEPVIDEO_POISON: '1', STEPVIDEO_VAE_GOLDEN: 'twin' };

const tests = (files, options = {}) => ({ files, exclude: [], env: {}, ...options });
const node = (script, ...args) => ({ interpreter: 'node', script, args });
const python = (script, ...args) => ({ interpreter: 'python3', script, args });

// {baselines} is the folder where a baseline writes the result its benchmark reads ($OUT/baselines).
// Every budget is in seconds; they add up to TOTAL_BUDGET_S at most (`--plan` prints the sum).
export const STEPS = [
  { name: 'unpack', budget: 8, what: 'unpack node, the app and the goldens into /tmp (done by run.sh before this script; timed, not stopped)' },
  { name: 'environment', budget: 12, what: 'GPU, memory, driver, cudart, cuBLASLt, torch; fails on no device or an emulated one (then the rest is skipped)' },
  {
    name: 'tests',
    budget: 85,
    what: 'every GPU and golden suite on the default paths (dit-perf and attention-sm90 run with the opt-in paths; the VAE goldens are not carried)',
    tests: [tests(['test/gpu', 'test/golden'], { exclude: ['**/test/gpu/attention-sm90.test.ts', '**/test/gpu/dit-perf.test.ts', '**/test/golden/vae.test.ts'] })],
  },
  {
    name: 'optin-hopper',
    budget: 15,
    what: 'Hopper attention: its own suite (every schedule and ring depth), then the DiT golden in bf16 with STEPVIDEO_ATTENTION=hopper',
    tests: [tests(['test/gpu/attention-sm90.test.ts']), tests(['test/gpu/dit.test.ts'], { env: { STEPVIDEO_ATTENTION: 'hopper' }, names: 'bf16' })],
  },
  {
    name: 'optin-wgmma',
    budget: 12,
    what: 'Hopper wgmma conv: the GPU VAE suite with STEPVIDEO_CONV_KERNEL=wgmma (test/gpu/conv.test.ts runs the kernel itself in `tests`)',
    tests: [tests(['test/gpu/vae.test.ts'], { env: { STEPVIDEO_CONV_KERNEL: 'wgmma' } })],
  },
  {
    name: 'optin-autotune',
    budget: 10,
    what: 'GEMM autotuning: the GEMM kernel cases and the DiT golden with STEPVIDEO_GEMM_AUTOTUNE=1',
    tests: [
      tests(['test/gpu/kernels.test.ts'], { env: { STEPVIDEO_GEMM_AUTOTUNE: '1' }, names: 'matmul|linear|fp8' }),
      tests(['test/gpu/dit.test.ts'], { env: { STEPVIDEO_GEMM_AUTOTUNE: '1' } }),
    ],
  },
  {
    name: 'optin-dit-perf',
    budget: 12,
    what: 'FP8 weights, fused residual, weight streaming, autotuning and the memory model on the DiT golden (test/gpu/dit-perf.test.ts)',
    tests: [tests(['test/gpu/dit-perf.test.ts'])],
  },
  {
    name: 'bench-attention',
    budget: 20,
    what: 'DiT self-attention B=2 H=48 N=75,888 d=128 bf16: ours (automatic, Hopper) vs torch SDPA cuDNN and flash',
    commands: [node('benchmarks/attention/attention.mjs', '--only=dit', '--tokens=75888', '--hopper=default', '--iterations=3', '--baselines=cudnn,flash')],
  },
  {
    name: 'bench-gemm',
    budget: 20,
    what: 'every DiT GEMM at 544x992x204 with CFG (bf16 heuristic and autotuned, FP8, fused residual) vs torch',
    commands: [
      python('benchmarks/dit/gemm_torch.py', '--iterations=3', '--warmup=1', '--result={baselines}/gemm-torch.json'),
      node('benchmarks/dit/gemm.mjs', '--iterations=3', '--torch={baselines}/gemm-torch.json'),
    ],
  },
  {
    name: 'bench-vae',
    budget: 20,
    what: 'one VAE decode chunk (17 frames at 544x992, released widths; default and wgmma convs) vs the PyTorch decoder',
    commands: [
      python('benchmarks/vae/decode_torch.py', '--frames=17', '--runs=1', '--result={baselines}/vae-decode-torch.json'),
      node('benchmarks/vae/decode.mjs', '--frames=17', '--runs=1', '--variants=default,wgmma', '--torch={baselines}/vae-decode-torch.json'),
    ],
  },
  {
    name: 'bench-dpo',
    budget: 15,
    what: 'one Video-DPO training step (LoRA rank 64) on 1 random block of released width at 6x34x62 latents, against the forward on the same model: step time, the ratio (floor about 12 forwards)',
    commands: [node('benchmarks/training/dpo-step.mjs', '--device=cuda', '--layers=1', '--frames=6', '--rank=64', '--steps=1')],
  },
  {
    name: 'bench-dit',
    budget: 71,
    what: 'one DiT block at 544x992x204 with CFG vs the PyTorch block; one whole-model step (48 blocks, bf16) at the largest size that fits, its peak memory',
    commands: [
      python('benchmarks/dit/block_torch.py', '--runs=2', '--result={baselines}/dit-block-torch.json'),
      // No warm-up step (it would double the time); the block figure is the median spacing of
      // blocks 1.. of this step, reported after 8 blocks too, in case the step runs out of time.
      node('benchmarks/step/step.mjs', '--weights=model', '--frames=fit', '--warmup=0', '--block-report-after=8', '--torch-block={baselines}/dit-block-torch.json'),
    ],
  },
];

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

function parseArgs(argv) {
  const options = { plan: false, probe: false, keepGoing: false, only: undefined, budgets: {}, out: undefined, app: undefined, unpackSeconds: undefined };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s);
    const value = () => inline ?? argv[++i];
    if (flag === '--plan') options.plan = true;
    else if (flag === '--probe') options.probe = true;
    else if (flag === '--keep-going') options.keepGoing = true;
    else if (flag === '--only') options.only = value().split(',').filter(Boolean);
    else if (flag === '--budget') {
      for (const item of value().split(',')) {
        const [name, seconds] = item.split('=');
        options.budgets[name] = Number(seconds);
      }
    } else if (flag === '--out') options.out = path.resolve(value());
    else if (flag === '--app') options.app = path.resolve(value());
    else if (flag === '--unpack-seconds') options.unpackSeconds = Number(value());
    else throw new Error(`unknown option ${argv[i]} (see the header of scripts/gpu-check.mjs)`);
  }
  const known = STEPS.map((s) => s.name);
  for (const name of [...(options.only ?? []), ...Object.keys(options.budgets)]) {
    if (!known.includes(name)) throw new Error(`unknown step '${name}' (steps: ${known.join(', ')})`);
  }
  for (const [name, seconds] of Object.entries(options.budgets)) {
    if (!(seconds > 0)) throw new Error(`--budget ${name}=${seconds}: expected seconds > 0`);
  }
  return options;
}

/** The steps to run: --only's, plus unpack and environment, which every run needs. */
function selectSteps(options) {
  return STEPS.filter((s) => !options.only || ['unpack', 'environment'].includes(s.name) || options.only.includes(s.name)).map((s) => ({
    ...s,
    budget: options.budgets[s.name] ?? s.budget,
  }));
}

const fill = (arg, baselines) => arg.replaceAll('{baselines}', baselines);

function planText(steps) {
  const lines = [`stepvideo GPU check: steps in order, each stopped at its budget (the whole check is meant for ${TOTAL_BUDGET_S} s)`];
  steps.forEach((step, i) => {
    lines.push(`${String(i + 1).padStart(2)}. ${step.name.padEnd(16)} ${String(step.budget).padStart(4)} s  ${step.what}`);
    for (const t of step.tests ?? []) {
      const env = Object.entries(t.env).map(([k, v]) => `${k}=${v} `).join('');
      const names = t.names ? ` -t '${t.names}'` : '';
      const exclude = t.exclude.map((e) => ` --exclude '${e}'`).join('');
      lines.push(`      ${env}vitest run ${t.files.join(' ')}${names}${exclude}`);
    }
    for (const c of step.commands ?? []) lines.push(`      ${c.interpreter} ${c.script} ${c.args.join(' ')}`);
  });
  const total = steps.reduce((sum, s) => sum + s.budget, 0);
  if (total > TOTAL_BUDGET_S) lines.push(`warning: the budgets add up to more than ${TOTAL_BUDGET_S} s`);
  lines.push(`plan: ${steps.length} steps, budget ${total} s`);
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Running a command under a deadline
// ---------------------------------------------------------------------------------------------

const children = new Set(); // process groups running now, stopped if this process is told to stop

/**
 * Runs argv in its own process group until it exits or `deadline` (ms since the epoch) passes;
 * then the whole group (vitest forks, a Python baseline) gets SIGTERM and, 3 s later, SIGKILL.
 * Output goes to `log`; onLine sees each stdout line.
 */
function runCommand(argv, { cwd, env, deadline, log, onLine }) {
  return new Promise((resolve) => {
    const started = Date.now();
    appendFileSync(log, `\n$ ${argv.join(' ')}\n`);
    let child;
    try {
      child = spawn(argv[0], argv.slice(1), { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      resolve({ code: null, timedOut: false, error: error.message, stdout: '', seconds: 0 });
      return;
    }
    children.add(child);
    let stdout = '';
    let pending = '';
    child.stdout.on('data', (chunk) => {
      appendFileSync(log, chunk);
      stdout += chunk;
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop();
      for (const line of lines) onLine?.(line);
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      appendFileSync(log, chunk);
      stderr = (stderr + chunk).slice(-8192);
    });
    let timedOut = false;
    const kill = (signal) => {
      try {
        process.kill(-child.pid, signal);
      } catch {} // already gone
    };
    const timer = setTimeout(() => {
      timedOut = true;
      appendFileSync(log, `\n[check] stopped at the step's budget\n`);
      kill('SIGTERM');
      setTimeout(() => kill('SIGKILL'), 3000).unref();
    }, Math.max(0, deadline - Date.now()));
    let spawnError;
    child.on('error', (error) => {
      spawnError = error.message;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      if (pending) onLine?.(pending);
      resolve({ code: code ?? (signal ? `signal ${signal}` : null), timedOut, error: spawnError ?? lastError(stderr), stdout, seconds: (Date.now() - started) / 1000 });
    });
  });
}

/** The line of a failed command's stderr that most likely says why (the last one naming an error). */
function lastError(stderr) {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('at ')).reverse();
  return (lines.find((l) => /error/i.test(l)) ?? lines[0])?.slice(0, 300);
}

// ---------------------------------------------------------------------------------------------
// Steps
// ---------------------------------------------------------------------------------------------

const TORCH_PROBE = [
  'import json, torch',
  'ok = torch.cuda.is_available()',
  'print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(), "gpu": torch.cuda.get_device_name() if ok else None}))',
].join('\n');

/** In a child process (so the check itself never holds a CUDA context): what the addon sees. */
async function probe(app) {
  const result = {};
  try {
    const sv = await import(pathToFileURL(path.join(app, 'dist', 'index.js')).href);
    const { native } = await import(pathToFileURL(path.join(app, 'dist', 'native.js')).href);
    result.build = native.build;
    result.backend = sv.backendInfo();
    result.devices = [];
    for (let i = 0; i < sv.cudaDeviceCount(); i++) result.devices.push(sv.getDevice(`cuda:${i}`).info());
    if (result.devices.length > 0) {
      // A small bf16 GEMM on the default path: cuBLASLt plans exist only when cuBLASLt loaded.
      const a = sv.Tensor.from(new Float32Array(64 * 64).fill(1), [64, 64], { device: 'cuda', dtype: 'bf16' });
      const c = sv.ops.matmul(a, a);
      const values = await c.toFloat32();
      result.gemmCorrect = values.every((v) => v === 64);
      result.gemmPlans = sv.gemmPlans().map((p) => ({ kind: p.kind, m: p.m, n: p.n, k: p.k, candidates: p.candidates }));
      a.dispose();
      c.dispose();
      result.cublasLt = readFileSync('/proc/self/maps', 'utf8').split('\n').map((line) => line.split(/\s+/).pop()).find((file) => /libcublasLt/.test(file ?? '')) ?? null;
    }
  } catch (error) {
    result.error = `${error.code ? `${error.code}: ` : ''}${error.message}`;
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

const GiB = 2 ** 30;

async function environmentStep(step, ctx) {
  const run = (argv) => runCommand(argv, { cwd: ctx.app, env: process.env, deadline: ctx.deadline, log: ctx.log });
  const [query, table, addon, torch] = await Promise.all([
    run(['nvidia-smi', '--query-gpu=name,memory.total,driver_version,compute_cap', '--format=csv,noheader']),
    run(['nvidia-smi']),
    run([process.execPath, fileURLToPath(import.meta.url), '--probe', '--app', ctx.app]),
    run(['python3', '-c', TORCH_PROBE]),
  ]);
  const figures = {};
  const problems = [];
  const fatal = [];
  const lastJson = (text) => {
    try {
      return JSON.parse(text.trim().split('\n').filter((l) => l.startsWith('{')).pop() ?? 'null');
    } catch {
      return null;
    }
  };

  if (query.code === 0) figures.nvidiaSmi = query.stdout.trim().split('\n');
  else problems.push(`nvidia-smi failed (${query.error ?? `exit ${query.code}`})`);
  figures.driverCuda = /CUDA Version:\s*([\d.]+)/.exec(table.stdout)?.[1] ?? null;

  const probed = lastJson(addon.stdout);
  if (!probed) fatal.push(`the addon probe gave no answer (${addon.timedOut ? 'timed out' : `exit ${addon.code}${addon.error ? `: ${addon.error}` : ''}`})`);
  else if (probed.error) fatal.push(`the library did not load or failed: ${probed.error}`);
  if (probed?.build) {
    figures.build = probed.build;
    figures.backend = probed.backend;
    figures.devices = probed.devices.map((d) => ({ ...d, totalGiB: Number((d.totalBytes / GiB).toFixed(1)), freeGiB: Number((d.freeBytes / GiB).toFixed(1)) }));
    figures.cudart = probed.backend?.cudaVersions?.runtime || ctx.bundle?.cudart || null;
    figures.cublasLt = probed.cublasLt ?? null;
    figures.gemmPlans = probed.gemmPlans ?? [];
    if (!probed.build.cuda) fatal.push('the addon was built without the CUDA backend');
    if (probed.devices.length === 0) fatal.push(`no CUDA device: ${probed.backend?.cudaUnavailableReason || 'cudaGetDeviceCount found none'}`);
    // An emulated device (a CPU stand-in for the CUDA API) would make every figure meaningless:
    // the addon's build.cudaEmulated, or any reported text (device name, reason) saying so.
    const texts = [];
    const collect = (value) => (typeof value === 'string' ? texts.push(value) : value && typeof value === 'object' && Object.values(value).forEach(collect));
    collect([probed.build, probed.backend, probed.devices]);
    if (probed.build.cudaEmulated === true || texts.some((text) => /emulat/i.test(text))) {
      fatal.push('the addon reports an emulated CUDA device');
    }
    if (probed.devices.length > 0) {
      if (!probed.cublasLt || !(probed.gemmPlans ?? []).some((p) => p.candidates > 0)) problems.push('cuBLASLt is not in use: GEMMs run on the fallback kernel (set STEPVIDEO_CUBLASLT)');
      if (probed.gemmCorrect === false) problems.push('a 64x64 bf16 GEMM of ones did not give 64');
    }
  }
  const torchInfo = lastJson(torch.stdout);
  if (torchInfo) figures.torch = torchInfo;
  if (!torchInfo?.gpu) problems.push(`PyTorch with CUDA unavailable: the benchmarks will lack their baselines (${torch.timedOut ? 'probe timed out' : torchInfo ? 'no CUDA device' : torch.error ?? `exit ${torch.code}`})`);

  figures.problems = [...fatal, ...problems];
  const timedOut = [query, table, addon, torch].some((r) => r.timedOut);
  return { status: fatal.length || problems.length ? 'fail' : timedOut ? 'timeout' : 'pass', fatal: fatal.length > 0, figures };
}

/** Counts and names from the reporter's JSON lines (complete or cut short). */
function summarizeTests(jsonlFile) {
  const records = existsSync(jsonlFile)
    ? readFileSync(jsonlFile, 'utf8').split('\n').filter(Boolean).map((line) => {
        try {
          return JSON.parse(line);
        } catch {
          return null; // a line cut by the stop
        }
      }).filter(Boolean)
    : [];
  const counts = { passed: 0, failed: 0, skipped: 0, other: 0 };
  const failures = [];
  const skippedNames = [];
  let slowest = [];
  const files = [];
  for (const r of records) {
    if (r.kind === 'test') {
      counts[r.state in counts ? r.state : 'other']++;
      if (r.state === 'failed') failures.push(`${r.name}: ${r.error ?? ''}`);
      if (r.state === 'skipped') skippedNames.push(r.name);
      slowest.push(r);
    } else if (r.kind === 'file-error') {
      failures.push(`${r.file} (did not load): ${r.error}`);
    } else if (r.kind === 'unhandled') {
      failures.push(`outside any test: ${r.error}`);
    } else if (r.kind === 'file') {
      files.push(r);
    }
  }
  // Where the time went, to set the budgets from.
  const seconds = (r) => `${(r.ms / 1000).toFixed(1)} s`;
  slowest = slowest.sort((a, b) => b.ms - a.ms).slice(0, 5).map((r) => `${r.name} (${seconds(r)})`);
  const slowestFiles = files.sort((a, b) => b.ms - a.ms).slice(0, 8).map((r) => `${r.file} ${seconds(r)}`);
  return { ...counts, runs: records.filter((r) => r.kind === 'end').length, failures, skippedNames, slowest, slowestFiles };
}

async function testStep(step, ctx) {
  const jsonl = path.join(ctx.out, 'tests', `${step.name}.jsonl`);
  mkdirSync(path.dirname(jsonl), { recursive: true });
  writeFileSync(jsonl, '');
  const threads = String(Math.max(1, Math.floor(os.cpus().length / VITEST_WORKERS)));
  const results = [];
  const emptyRuns = [];
  // Partial counts reach report.json while the tests run.
  const progress = setInterval(() => ctx.update({ figures: summarizeTests(jsonl) }), 5000);
  try {
    for (const t of step.tests) {
      const argv = [
        process.execPath, path.join('node_modules', 'vitest', 'vitest.mjs'), 'run', ...t.files,
        ...t.exclude.flatMap((glob) => ['--exclude', glob]),
        ...(t.names ? ['-t', t.names] : []),
        `--reporter=${ctx.reporter}`, '--reporter=default', `--maxWorkers=${VITEST_WORKERS}`,
      ];
      const env = { ...process.env, STEPVIDEO_THREADS: threads, ...TEST_ENV, ...t.env, STEPVIDEO_CHECK_JSONL: jsonl };
      const passedBefore = summarizeTests(jsonl).passed;
      results.push(await runCommand(argv, { cwd: ctx.app, env, deadline: ctx.deadline, log: ctx.log }));
      if (results.at(-1).timedOut) break;
      // Every run must test something: a -t pattern that no longer matches would pass on nothing.
      if (summarizeTests(jsonl).passed === passedBefore) emptyRuns.push(`no test passed in: vitest run ${t.files.join(' ')}${t.names ? ` -t '${t.names}'` : ''}`);
    }
  } finally {
    clearInterval(progress);
  }
  const figures = summarizeTests(jsonl);
  figures.failures.push(...emptyRuns);
  // Green only if tests ran, none failed, and every vitest run ended on its own with exit 0.
  const clean = results.length === step.tests.length && results.every((r) => r.code === 0) && figures.runs === step.tests.length;
  const status = results.some((r) => r.timedOut) ? 'timeout' : clean && figures.failures.length === 0 ? 'pass' : 'fail';
  return { status, figures };
}

async function benchStep(step, ctx) {
  const rows = [];
  const results = [];
  for (const c of step.commands) {
    const argv = [c.interpreter === 'node' ? process.execPath : c.interpreter, c.script, ...c.args.map((a) => fill(a, ctx.baselines))];
    const onLine = (line) => {
      if (!line.trim().startsWith('{')) return;
      try {
        const row = { step: step.name, ...JSON.parse(line) };
        rows.push(row);
        appendFileSync(path.join(ctx.out, 'benchmarks.jsonl'), `${JSON.stringify(row)}\n`);
        ctx.update({ figures: { lines: benchmarkLines(rows) } });
      } catch {} // not JSON after all
    };
    results.push(await runCommand(argv, { cwd: ctx.app, env: { ...process.env, STEPVIDEO_POISON: '0' }, deadline: ctx.deadline, log: ctx.log, onLine }));
    if (results.at(-1).timedOut) break;
  }
  const lines = benchmarkLines(rows);
  const errors = rows.filter((r) => r.error).map((r) => `${r.benchmark}: ${String(r.error).split('\n')[0].slice(0, 300)}`);
  const failed = results.map((r, i) => (r.code === 0 || r.timedOut ? null : `${step.commands[i].script}: exit ${r.code}${r.error ? `: ${r.error}` : ''}`)).filter(Boolean);
  if (lines.length === 0 && !results.some((r) => r.timedOut)) errors.push('no benchmark figure came out');
  const status = results.some((r) => r.timedOut) ? 'timeout' : failed.length || errors.length ? 'fail' : 'pass';
  return { status, figures: { lines, problems: [...failed, ...errors] } };
}

// ---------------------------------------------------------------------------------------------
// Benchmark lines: figure, baseline (same run), ratio. Times are compared as baseline / ours,
// so > 1 means ours is faster, whatever ratio field the script itself prints. The default path is
// compared with PyTorch; an opt-in path also with the default path it would replace (what
// deciding to turn it on needs).
// ---------------------------------------------------------------------------------------------

const ms = (v) => (v === null || v === undefined ? null : `${Number(v).toFixed(v >= 100 ? 0 : 2)} ms`);
const speedup = (baseline, ours) => (baseline > 0 && ours > 0 ? `${(baseline / ours).toFixed(2)}x` : 'n/a');

export function benchmarkLines(rows) {
  const lines = [];
  const add = (benchmark, figure, baseline, ratio) => lines.push({ benchmark, figure, baseline: baseline ?? 'missing', ratio });
  for (const r of rows) {
    if (r.benchmark === 'attention') {
      const figure = `${ms(r.medianMs)}, ${r.tflops} TFLOP/s`;
      for (const backend of ['cudnn', 'flash']) {
        const base = rows.find((b) => b.benchmark === 'attention-baseline' && b.name === r.name && b.backend === backend);
        add(`attention ${r.name}, ${r.path} vs SDPA ${backend}`, figure, base?.ms ? `${ms(base.ms)}, ${base.tflops} TFLOP/s` : base?.unsupported, speedup(base?.ms, r.medianMs));
      }
      const auto = rows.find((b) => b.benchmark === 'attention' && b.name === r.name && b.path.startsWith('auto'));
      if (auto && auto !== r) add(`attention ${r.name}, ${r.path} vs ours ${auto.path}`, figure, `${ms(auto.medianMs)}, ${auto.tflops} TFLOP/s`, speedup(auto.medianMs, r.medianMs));
    } else if (r.benchmark === 'dit-gemm') {
      const name = `GEMM ${r.shape} [${r.m}x${r.k}]x[${r.k}x${r.n}]`;
      const tflops = (msValue) => ((2 * r.m * r.k * r.n) / (msValue * 1e-3) / 1e12).toFixed(0);
      add(`${name} bf16 (heuristic, the default)`, `${ms(r.heuristicMs)}, ${tflops(r.heuristicMs)} TFLOP/s`, r.torchMs && `torch ${ms(r.torchMs)}`, speedup(r.torchMs, r.heuristicMs));
      add(`${name} bf16 autotuned`, `${ms(r.autotunedMs)}, ${tflops(r.autotunedMs)} TFLOP/s`, `ours heuristic ${ms(r.heuristicMs)}`, speedup(r.heuristicMs, r.autotunedMs));
      if (r.fp8Ms) add(`${name} FP8 (with activation quantization)`, ms(r.fp8Ms), r.torchFp8WithQuantizeMs && `torch._scaled_mm + quantize ${ms(r.torchFp8WithQuantizeMs)}`, speedup(r.torchFp8WithQuantizeMs, r.fp8Ms));
      if (r.residual) add(`${name} fused residual`, ms(r.residual.fusedMs), `ours unfused ${ms(r.residual.unfusedMs)}`, speedup(r.residual.unfusedMs, r.residual.fusedMs));
    } else if (r.benchmark === 'vae-decode') {
      const chunks = Math.floor(r.frames / 17);
      const figure = `${ms(r.msPerChunk)} per chunk, peak ${r.peakGiB} GiB`;
      add(`VAE decode ${r.frames} frames ${r.height}x${r.width}, ${r.variant} convs`, figure, r.torchMs && `torch ${ms(r.torchMs / chunks)} per chunk, peak ${r.torchPeakGiB} GiB`, speedup(r.torchMs, r.ms));
      const base = rows.find((b) => b.benchmark === 'vae-decode' && b.variant === 'default' && b.frames === r.frames);
      if (base && base !== r) add(`VAE decode ${r.frames} frames, ${r.variant} vs default convs`, figure, `ours default ${ms(base.msPerChunk)} per chunk`, speedup(base.ms, r.ms));
    } else if (r.benchmark === 'dit-block') {
      add(`DiT block ${r.shape ? `N=${r.shape.tokens}` : ''} CFG${r.source ? ` (${r.source})` : ''}`, ms(r.blockMs), r.torchBlockMs && `PyTorch block ${ms(r.torchBlockMs)}`, speedup(r.torchBlockMs, r.blockMs));
    } else if (r.benchmark === 'dpo-step') {
      add(`Video-DPO step, ${r.model}, ${r.tokens} tokens, rank ${r.rank}`, `${ms(r.stepMs)} (${r.stepOverForward} forwards; floor about ${r.floorForwards})`, `our forward ${ms(r.forwardMs)}`, `${r.stepOverForward} forwards`);
    } else if (r.benchmark === 'dit-step') {
      add(`DiT step, ${r.shape.layers} blocks, ${r.videoFrames ?? '?'} frames 544x992 CFG, ${r.mode}`, `${r.stepSeconds} s (load ${r.loadSeconds} s)`, r.torchStepSeconds && `${r.shape.layers} x PyTorch block ${r.torchStepSeconds} s`, speedup(r.torchStepSeconds, r.stepSeconds));
      add('DiT step peak memory', `${r.peakGB} GB (pool high ${r.poolReservedHighGB} GB, driver ${r.driverUsedGB} GB)`, `memory model ${r.modelPredictedPeakGB} GB`, r.modelPredictedPeakGB ? `${(r.peakGB / r.modelPredictedPeakGB).toFixed(3)} of predicted` : 'n/a');
    }
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

function writeAtomically(file, text) {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

function summaryMarkdown(report) {
  const out = ['# stepvideo GPU check', ''];
  const gpu = report.steps.find((s) => s.name === 'environment')?.figures?.devices?.[0];
  const spent = report.steps.reduce((sum, s) => sum + (s.seconds ?? 0), 0);
  out.push(`commit ${report.commit} · ${gpu ? gpu.name : 'no GPU'} · ${report.host} · started ${report.started} · ${spent.toFixed(0)} s of ${report.budget} s · ${report.finished ? 'finished' : 'not finished'}`, '');
  out.push('| step | status | time | budget |', '| --- | --- | --- | --- |');
  for (const s of report.steps) {
    const status = s.status === 'skipped' && s.note ? `skipped: ${s.note}` : s.status;
    out.push(`| ${s.name} | ${status} | ${s.seconds === undefined ? '' : `${s.seconds.toFixed(1)} s`} | ${s.budget} s |`);
  }
  for (const s of report.steps) {
    const f = s.figures;
    if (!f || s.status === 'pending') continue;
    out.push('', `## ${s.name} (${s.status})`);
    if (s.name === 'environment') {
      for (const d of f.devices ?? []) out.push(`- ${d.name}: compute ${d.computeCapability}, ${d.multiprocessors} SMs, ${d.totalGiB} GiB (${d.freeGiB} free)`);
      if (f.nvidiaSmi) out.push(`- nvidia-smi: ${f.nvidiaSmi.join('; ')}; driver supports CUDA ${f.driverCuda ?? '?'}`);
      if (f.build) out.push(`- addon: CUDA ${f.build.cuda ? `yes (${f.build.cudaArchitectures})` : 'no'}, cudart ${f.cudart ?? '?'}; cuBLASLt ${f.cublasLt ?? 'not loaded'}`);
      if (f.torch) out.push(`- torch ${f.torch.torch} (CUDA ${f.torch.cuda}, cuDNN ${f.torch.cudnn})`);
    }
    if ('passed' in f) {
      out.push(`- passed ${f.passed}, failed ${f.failed}, skipped ${f.skipped}${f.other ? `, other ${f.other}` : ''}`);
      for (const x of f.failures.slice(0, 40)) out.push(`- FAIL ${x}`);
      if (f.failures.length > 40) out.push(`- ... ${f.failures.length - 40} more failures in tests/${s.name}.jsonl`);
      for (const x of f.skippedNames.slice(0, 10)) out.push(`- skipped: ${x}`);
      if (f.skippedNames.length > 10) out.push(`- ... ${f.skippedNames.length - 10} more skipped`);
      if (f.slowestFiles.length) out.push(`- slowest files: ${f.slowestFiles.join('; ')}`);
      if (f.slowest.length) out.push(`- slowest tests: ${f.slowest.join('; ')}`);
    }
    if (f.lines?.length) {
      out.push('', '| benchmark | figure | baseline (same run) | ratio (time: baseline / ours) |', '| --- | --- | --- | --- |');
      for (const l of f.lines) out.push(`| ${l.benchmark} | ${l.figure} | ${l.baseline} | ${l.ratio} |`);
    }
    for (const p of f.problems ?? []) out.push(`- problem: ${p}`);
    if (s.note) out.push(`- ${s.note}`);
  }
  return `${out.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const steps = selectSteps(options);
  if (options.probe) return probe(options.app ?? path.resolve(here, '..'));
  if (options.plan) {
    console.log(planText(steps));
    return;
  }

  const app = options.app ?? path.resolve(here, '..');
  const out = options.out ?? process.env.OUT ?? path.resolve('check-results');
  const baselines = path.join(out, 'baselines');
  mkdirSync(path.join(out, 'logs'), { recursive: true });
  mkdirSync(baselines, { recursive: true });
  const bundleFile = path.join(here, 'bundle.json');
  const bundle = existsSync(bundleFile) ? JSON.parse(readFileSync(bundleFile, 'utf8')) : undefined;
  const commitFile = path.join(app, 'COMMIT');
  const gitCommit = () => {
    try {
      return execFileSync('git', ['describe', '--always', '--dirty', '--abbrev=7'], { cwd: app, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    } catch {
      return 'unknown';
    }
  };
  const report = {
    check: 'stepvideo GPU check (scripts/gpu-check.mjs)',
    commit: bundle?.commit ?? (existsSync(commitFile) ? readFileSync(commitFile, 'utf8').trim() : gitCommit()),
    host: os.hostname(),
    started: new Date().toISOString(),
    budget: steps.reduce((sum, s) => sum + s.budget, 0),
    finished: false,
    options: process.argv.slice(2),
    steps: steps.map((s) => ({ name: s.name, what: s.what, budget: s.budget, status: 'pending' })),
  };
  const save = () => {
    report.updated = new Date().toISOString();
    writeAtomically(path.join(out, 'report.json'), `${JSON.stringify(report, null, 1)}\n`);
    writeAtomically(path.join(out, 'summary.md'), summaryMarkdown(report));
  };

  let running;
  const stop = (signal) => {
    if (running) Object.assign(running, { status: 'interrupted', note: `the check was stopped (${signal}) during this step` });
    save();
    for (const child of children) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {}
    }
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  console.log(`[check] ${steps.length} steps, budget ${report.budget} s: ${steps.map((s) => `${s.name} ${s.budget}`).join(', ')}`);
  const unpack = report.steps[0];
  if (options.unpackSeconds === undefined) Object.assign(unpack, { status: 'skipped', note: 'not run from the offline bundle' });
  else Object.assign(unpack, { status: options.unpackSeconds <= unpack.budget ? 'pass' : 'over budget', seconds: options.unpackSeconds });
  save();

  let skipReason;
  for (const [i, step] of steps.entries()) {
    if (step.name === 'unpack') continue;
    const entry = report.steps[i];
    if (skipReason) {
      Object.assign(entry, { status: 'skipped', note: skipReason });
      continue;
    }
    const started = Date.now();
    const log = path.join(out, 'logs', `${step.name}.log`);
    writeFileSync(log, '');
    entry.status = 'running';
    entry.log = path.relative(out, log);
    running = entry;
    save();
    console.log(`[check] ${step.name}: up to ${step.budget} s`);
    const ctx = {
      app, out, baselines, bundle, log,
      deadline: started + step.budget * 1000,
      reporter: path.join(here, 'check-reporter.mjs'), // beside this file, in scripts/ and in offline/
      update: (partial) => {
        Object.assign(entry, partial, { seconds: (Date.now() - started) / 1000 });
        save();
      },
    };
    let result;
    try {
      result = step.name === 'environment' ? await environmentStep(step, ctx) : step.tests ? await testStep(step, ctx) : await benchStep(step, ctx);
    } catch (error) {
      result = { status: 'fail', figures: { problems: [`the check itself failed: ${error.stack ?? error}`] } };
    }
    running = undefined;
    Object.assign(entry, { status: result.status, figures: result.figures, seconds: (Date.now() - started) / 1000 });
    if (result.fatal && !options.keepGoing) skipReason = 'the environment step failed (--keep-going runs the rest anyway)';
    save();
    console.log(`[check] ${step.name}: ${result.status} in ${entry.seconds.toFixed(1)} s`);
  }
  report.finished = true;
  save();
  process.stdout.write(`\n${readFileSync(path.join(out, 'summary.md'), 'utf8')}`);
  console.log(`[check] ${path.join(out, 'report.json')}, ${path.join(out, 'summary.md')}`);
  process.exitCode = report.steps.every((s) => s.status === 'pass' || (s.name === 'unpack' && s.status === 'skipped')) ? 0 : 1;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error) => {
    console.error(`gpu-check: ${error.message}`);
    process.exit(2);
  });
}
