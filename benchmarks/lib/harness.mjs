// Shared benchmark harness: timing with warm-up and medians (the device is synchronised around
// every timed run), the measured H200 ceilings the floors are computed from, environment facts
// for RESULTS.md, and one JSON line per result on stdout.
import { execSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Ceilings measured on the H200 this project targets (see the developers' brief). */
export const H200 = {
  copyBytesPerSecond: 4.0e12,
  bf16GemmFlops: 700e12,
  sdpaCudnnFlops: 610e12,
  conv3dCudnnFlops: 440e12,
};

/** The library, from the compiled output (benchmarks run where there is no TypeScript loader). */
export async function library() {
  return import(path.join(root, 'dist', 'index.js'));
}

export function environment(device) {
  let commit = process.env.STEPVIDEO_COMMIT ?? 'unknown';
  try {
    commit = execSync('git rev-parse --short HEAD', { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    try {
      commit = readFileSync(path.join(root, 'COMMIT'), 'utf8').trim();
    } catch {}
  }
  let gpu = 'none';
  try {
    gpu = device?.isCuda ? device.info().name : 'none';
  } catch {}
  return { date: new Date().toISOString().slice(0, 10), commit, gpu, cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, node: process.version };
}

/**
 * Times `run` (which enqueues work) `iterations` times after `warmup` runs, synchronising the
 * device around each; returns milliseconds (median, min, all samples).
 */
export async function time(device, run, { warmup = 2, iterations = 5 } = {}) {
  for (let i = 0; i < warmup; i++) {
    await run();
    await device.synchronize();
  }
  const samples = [];
  for (let i = 0; i < iterations; i++) {
    await device.synchronize();
    const start = performance.now();
    await run();
    await device.synchronize();
    samples.push(performance.now() - start);
  }
  const sorted = [...samples].sort((a, b) => a - b);
  return { medianMs: sorted[Math.floor(sorted.length / 2)], minMs: sorted[0], samples };
}

/** Prints one result as a JSON line (the format benchmarks/run.mjs collects). */
export function report(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

export function parseFlags(argv = process.argv.slice(2)) {
  const flags = {};
  for (const arg of argv) {
    const match = /^--([^=]+)(?:=(.*))?$/.exec(arg);
    if (match) flags[match[1]] = match[2] ?? true;
  }
  return flags;
}
