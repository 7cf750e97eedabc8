#!/usr/bin/env node
// `npm run test:emulated [-- <vitest arguments>]`: the GPU test suites on the emulated CUDA device.
// Builds the emulated addon (the real cuda/ sources compiled against the SIMT emulator in
// cuda/emulator, STEPVIDEO_CUDA=emulate) into its own folder if needed, incrementally, then runs
// test/gpu on it (or the files and filters given after `--`), ending with vitest's summary.
//
//   --sanitize   AddressSanitizer + UndefinedBehaviorSanitizer build (build-emulated-asan), run with
//                the sanitizer runtime preloaded; default selection: the kernel suites.
//   --tsan       ThreadSanitizer build (build-emulated-tsan): races between GPU threads of a block
//                (a missing barrier) as data races; blocks run one after another. Slow; a script,
//                not part of CI.
//   STEPVIDEO_EMU_SCHEDULE=random:<seed>   a seeded random warp schedule (cuda/emulator/README.md).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const separator = argv.indexOf('--');
const own = separator < 0 ? argv : argv.slice(0, separator);
const vitestArgs = separator < 0 ? [] : argv.slice(separator + 1);
for (const option of own) {
  if (!['--sanitize', '--tsan'].includes(option)) {
    console.error(`test:emulated: unknown option ${option} (vitest arguments go after --)`);
    process.exit(2);
  }
}
const sanitize = own.includes('--tsan') ? 'thread' : own.includes('--sanitize') ? 'address,undefined' : '';
const buildDir = sanitize === 'thread' ? 'build-emulated-tsan' : sanitize ? 'build-emulated-asan' : 'build-emulated';

// The kernel suites: what the sanitizers are for (every kernel, every PTX emulation), in minutes.
const KERNEL_SUITES = ['test/gpu/kernels.test.ts', 'test/gpu/attention.test.ts', 'test/gpu/attention-sm90.test.ts', 'test/gpu/conv.test.ts', 'test/gpu/review.test.ts'];

function run(command, args, env) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', env });
  if (result.error) throw result.error;
  return result.status ?? 1;
}

function gccFile(name) {
  const result = spawnSync('gcc', [`-print-file-name=${name}`], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : name;
}

console.log(`test:emulated: building the emulated addon in ${buildDir}/ (incremental)`);
const buildEnv = { ...process.env, STEPVIDEO_CUDA: 'emulate', STEPVIDEO_BUILD_DIR: buildDir, STEPVIDEO_SANITIZE: sanitize };
let status = run(process.execPath, [path.join(root, 'scripts', 'build-addon.mjs')], buildEnv);
if (status !== 0) process.exit(status);

const testEnv = { ...process.env, STEPVIDEO_BUILD_DIR: buildDir };
delete testEnv.STEPVIDEO_ADDON;
if (sanitize) {
  // node itself is not instrumented: the runtime must come first, and node's own allocations are
  // not ours to report (no leak checking).
  const runtime = gccFile(sanitize === 'thread' ? 'libtsan.so' : 'libasan.so');
  testEnv.LD_PRELOAD = [runtime, process.env.LD_PRELOAD].filter(Boolean).join(':');
  testEnv.ASAN_OPTIONS = 'detect_leaks=0:abort_on_error=1:detect_stack_use_after_return=0';
  testEnv.UBSAN_OPTIONS = 'print_stacktrace=1:halt_on_error=1';
  testEnv.TSAN_OPTIONS = `halt_on_error=1:report_signal_unsafe=0:suppressions=${path.join(root, 'scripts', 'tsan.supp')}`;
  // ThreadSanitizer: blocks one after another on the waiting thread (the block boundaries order
  // them, so what it reports is an access within a block that no barrier orders; with blocks on
  // several OS threads it reports orderings through the worker pool it cannot see).
  if (sanitize === 'thread') testEnv.STEPVIDEO_EMU_WORKERS = process.env.STEPVIDEO_EMU_WORKERS ?? '1';
}
const namesFiles = vitestArgs.some((a) => a.startsWith('test/') || a.endsWith('.ts'));
const selection = namesFiles ? [] : sanitize ? KERNEL_SUITES : ['test/gpu'];
const vitest = path.join(root, 'node_modules', 'vitest', 'vitest.mjs');
status = run(process.execPath, [vitest, 'run', ...selection, ...vitestArgs], testEnv);
process.exit(status);
