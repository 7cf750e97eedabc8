// Resource report of the Hopper attention kernel (cuda/attention_sm90.cuh), next to the mma kernel
// for head dim 128, as JSON lines:
//  - ptxas: cuda/attention.cu compiled for sm_90a with -Xptxas -v (needs nvcc and the sources; no
//    GPU): registers at entry, stack frame, spill stores/loads, and every "Potential Performance
//    Loss" note (C75xx: serialized wgmma, ignored setmaxnreg, ...) per kernel;
//  - SASS: `cuobjdump -sass` of the built addon (needs cuobjdump; no GPU): per kernel the count of
//    HGMMA (warpgroup MMA), local-memory accesses (STL/LDL: spills), TMA loads (UTMALDG), mbarrier
//    operations (SYNCS), setmaxnreg (USETMAXREG), warpgroup arrive / wait (WARPGROUP.ARRIVE,
//    WARPGROUP.DEPBAR) and barriers (BAR).
// A part whose tool is missing reports {"unavailable": reason} instead of failing.
//   node benchmarks/attention/sass_report.mjs [--addon=build/Release/stepvideo.node] [--nvcc=nvcc]
//     [--cuobjdump=cuobjdump] [--no-ptxas] [--no-sass]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { parseFlags, report, root } from '../lib/harness.mjs';

const flags = parseFlags();

/** The kernels of interest, by mangled-name pattern: the Hopper variants and the mma kernel for D = 128. */
function kernelLabel(mangled) {
  const hopper = /attention_sm90_kernelILi(\d)ELb([01])ELb([01])E/.exec(mangled);
  if (hopper) {
    const [, stages, overlap, pingpong] = hopper;
    const schedule = pingpong === '1' ? 'pingpong' : overlap === '1' ? 'overlap' : 'serial';
    return `hopper:${schedule}/${stages}`;
  }
  const mma = /flash_attention_kernelI13__nv_bfloat16NS1_6ConfigILi128ELi8ELi1ELi64ELi2EEELb0EEE/.exec(mangled);
  return mma ? 'mma D=128 bf16' : undefined;
}

function findTool(name, flag) {
  const candidates = [flag, name, process.env.CUDA_HOME && path.join(process.env.CUDA_HOME, 'bin', name), `/usr/local/cuda/bin/${name}`].filter(Boolean);
  for (const candidate of candidates) {
    const probe = spawnSync(candidate, ['--version'], { encoding: 'utf8' });
    if (!probe.error && probe.status === 0) return { path: candidate, version: (probe.stdout.match(/release [\d.]+, V[\d.]+/) ?? [''])[0] };
  }
  return undefined;
}

// ---- ptxas ----
function ptxasReport() {
  const source = path.join(root, 'cuda', 'attention.cu');
  if (!existsSync(source)) return report({ report: 'ptxas', unavailable: `no ${path.relative(root, source)} (the offline bundle carries no CUDA sources)` });
  const nvcc = findTool('nvcc', flags.nvcc);
  if (!nvcc) return report({ report: 'ptxas', unavailable: 'nvcc not found' });
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-ptxas-'));
  try {
    // The flags of the CMake build (CMakeLists.txt) for the sm_90a part.
    const args = ['-O3', '-DNDEBUG', '--generate-code=arch=compute_90a,code=[sm_90a]', '--expt-relaxed-constexpr', '-lineinfo',
      '-Xptxas=-v', '-std=c++17', '-DSV_WITH_CUDA', '-DSV_CUDA_ARCHS="90a"', '-x', 'cu', '-c', source, '-o', path.join(scratch, 'attention.o')];
    const result = spawnSync(nvcc.path, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
    if (result.status !== 0) return report({ report: 'ptxas', error: (result.stderr || String(result.error)).slice(-2000) });
    const kernels = new Map();
    let current;
    for (const line of result.stderr.split('\n')) {
      const entry = /Compiling entry function '([^']+)' for '(sm_\w+)'/.exec(line);
      if (entry) {
        const label = kernelLabel(entry[1]);
        // Notes may come before the entry line: keep what was collected for this kernel.
        current = label ? Object.assign(kernels.get(label) ?? { kernel: label, notes: [] }, { arch: entry[2] }) : undefined;
        if (current) kernels.set(label, current);
        continue;
      }
      const note = /\((C75\d\d)\) (.*) for the function '([^']+)'/.exec(line) ?? /\((C75\d\d)\) ([^']*?)(?:'([^']+)')?$/.exec(line);
      if (note) {
        const label = note[3] ? kernelLabel(note[3]) : undefined;
        if (label) (kernels.get(label) ?? kernels.set(label, { kernel: label, notes: [] }).get(label)).notes.push(`${note[1]} ${note[2]}`);
        continue;
      }
      if (!current) continue;
      const frame = /(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads/.exec(line);
      if (frame) Object.assign(current, { stackBytes: Number(frame[1]), spillStoreBytes: Number(frame[2]), spillLoadBytes: Number(frame[3]) });
      const used = /Used (\d+) registers/.exec(line);
      if (used) current.registers = Number(used[1]);
    }
    for (const k of kernels.values()) report({ report: 'ptxas', nvcc: nvcc.version, ...k });
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

// ---- SASS ----
const OPCODES = ['HGMMA', 'STL', 'LDL', 'UTMALDG', 'SYNCS', 'USETMAXREG', 'WARPGROUP.ARRIVE', 'WARPGROUP.DEPBAR', 'BAR'];

function sassReport() {
  const addon = path.resolve(flags.addon ?? path.join(root, process.env.STEPVIDEO_BUILD_DIR ?? 'build', 'Release', 'stepvideo.node'));
  if (!existsSync(addon)) return report({ report: 'sass', unavailable: `no addon at ${addon}` });
  const cuobjdump = findTool('cuobjdump', flags.cuobjdump);
  if (!cuobjdump) return report({ report: 'sass', addon, unavailable: 'cuobjdump not found (CUDA toolkit binaries; not in the pip nvcc wheel)' });
  const result = spawnSync(cuobjdump.path, ['-sass', '-arch', 'sm_90a', addon], { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (result.status !== 0) return report({ report: 'sass', error: (result.stderr || String(result.error)).slice(-2000) });
  let current;
  const kernels = new Map();
  for (const line of result.stdout.split('\n')) {
    const fn = /Function : (\S+)/.exec(line);
    if (fn) {
      const label = kernelLabel(fn[1]);
      current = label ? { kernel: label, instructions: 0, counts: Object.fromEntries(OPCODES.map((o) => [o, 0])) } : undefined;
      if (current) kernels.set(label, current);
      continue;
    }
    if (!current) continue;
    const instruction = /\/\*[0-9a-f]{4,}\*\/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)/.exec(line);
    if (!instruction) continue;
    current.instructions++;
    const opcode = instruction[1];
    for (const o of OPCODES) if (opcode === o || opcode.startsWith(`${o}.`)) current.counts[o]++;
  }
  for (const k of kernels.values()) report({ report: 'sass', cuobjdump: cuobjdump.version, addon: path.relative(root, addon), ...k });
  if (kernels.size === 0) report({ report: 'sass', addon, unavailable: 'no sm_90a code for the attention kernels in this addon (built without 90a?)' });
}

if (!flags['no-ptxas']) ptxasReport();
if (!flags['no-sass']) sassReport();
