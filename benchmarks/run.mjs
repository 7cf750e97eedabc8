#!/usr/bin/env node
// Runs benchmark suites and collects their JSON result lines.
//   node benchmarks/run.mjs [suite ...] [--out FILE] [--list]
// Each suite is a list of commands (Node scripts using the compiled library, and Python/PyTorch
// baselines where the suite compares against one) run in order in one process tree, so the
// kernel and its baseline are measured on the same machine in the same run.
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Suite name -> commands ([interpreter, script, ...args], relative to benchmarks/). */
export const suites = {
  io: [['node', 'io/load-speed.mjs', '--gb=8']],
  text: [['node', 'text/encode.mjs']],
  dit: [['python3', 'dit/block_torch.py', '--result=/tmp/stepvideo-dit-block-torch.json'], ['node', 'dit/block.mjs', '--torch=/tmp/stepvideo-dit-block-torch.json'], ['node', 'dit/fused.mjs']],
  sampler: [['python3', 'sampler/loop_torch.py', '--result=/tmp/stepvideo-sampler-torch.json'], ['node', 'sampler/loop.mjs', '--torch=/tmp/stepvideo-sampler-torch.json']],
  gemm: [['python3', 'dit/gemm_torch.py', '--result=/tmp/stepvideo-gemm-torch.json'], ['node', 'dit/gemm.mjs', '--torch=/tmp/stepvideo-gemm-torch.json']], step: [['node', 'step/step.mjs', '--weights=model']], 'step-fp8': [['node', 'step/step.mjs', '--weights=fp8']], 'step-stream': [['node', 'step/step.mjs', '--weights=fp8', '--stream', '--budget-gb=24']], // issue 9: see step/README.md
  attention: [['node', 'attention/attention.mjs', '--generic'], ['node', 'attention/sass_report.mjs']],  // attention.mjs spawns attention/sdpa_baseline.py itself (same shapes)
  pipeline: [['node', 'pipeline/e2e.mjs', '--device=cuda', '--frames=34', '--height=544', '--width=992', '--steps=10']],
  cache: [['node', 'sampler/cache.mjs']],  // step caching: speed-up, latent error, PSNR/SSIM against the uncached video (issue 18)
  preview: [['node', 'pipeline/preview.mjs']],  // latent previews: render() against a denoising step, and the fit at load
  vae: [['python3', 'vae/conv3d_torch.py', '--result=/tmp/stepvideo-vae-conv3d-torch.json'], ['node', 'vae/conv3d.mjs', '--torch=/tmp/stepvideo-vae-conv3d-torch.json'], ['python3', 'vae/decode_torch.py', '--result=/tmp/stepvideo-vae-decode-torch.json'], ['node', 'vae/decode.mjs', '--torch=/tmp/stepvideo-vae-decode-torch.json']],
};

const args = process.argv.slice(2);
if (args.includes('--list')) {
  for (const [name, commands] of Object.entries(suites)) console.log(`${name}: ${commands.map((c) => c.slice(1).join(' ')).join('; ')}`);
  process.exit(0);
}
const outIndex = args.indexOf('--out');
const outFile = outIndex >= 0 ? path.resolve(args[outIndex + 1]) : path.join(here, 'out', `results-${new Date().toISOString().replace(/[:.]/g, '-')}.jsonl`);
const selected = args.filter((a, i) => !a.startsWith('--') && (outIndex < 0 || i !== outIndex + 1));
const names = selected.length > 0 ? selected : Object.keys(suites);
for (const name of names) {
  if (!(name in suites)) {
    console.error(`unknown suite '${name}' (known: ${Object.keys(suites).join(', ')})`);
    process.exit(1);
  }
}
mkdirSync(path.dirname(outFile), { recursive: true });

let failures = 0;
for (const name of names) {
  for (const [interpreter, script, ...rest] of suites[name]) {
    const scriptPath = path.join(here, script);
    if (!existsSync(scriptPath)) {
      console.error(`[${name}] missing ${script}`);
      failures++;
      continue;
    }
    const command = interpreter === 'node' ? process.execPath : interpreter;
    console.error(`[${name}] ${interpreter} ${script} ${rest.join(' ')}`);
    const result = spawnSync(command, [scriptPath, ...rest], { cwd: path.join(here, '..'), stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 28 });
    const stdout = result.stdout?.toString() ?? '';
    for (const line of stdout.split('\n')) {
      if (!line.trim()) continue;
      process.stdout.write(`${line}\n`);
      if (line.trim().startsWith('{')) appendFileSync(outFile, `${JSON.stringify({ suite: name, ...JSON.parse(line) })}\n`);
    }
    if (result.status !== 0) {
      console.error(`[${name}] ${script} failed (${result.error?.message ?? `exit ${result.status}`})`);
      failures++;
    }
  }
}
console.error(`results: ${outFile}`);
process.exit(failures > 0 ? 1 : 0);
