import { defineConfig } from 'vitest/config';

// The emulated CUDA device (npm run test:emulated sets STEPVIDEO_BUILD_DIR=build-emulated*) runs the
// kernels on the CPU, thousands of times slower than a GPU: its slowest shrunk cases take about a
// minute alone and more on a loaded 2-core runner. A hang there is reported by the emulator's
// deadlock detector, not by this timeout.
const emulated = (process.env.STEPVIDEO_BUILD_DIR ?? '').startsWith('build-emulated');
const timeout = emulated ? 600_000 : 120_000;

// Native code runs in forked processes: a worker thread shares the addon's static state with its
// siblings, and a crash in one fork cannot take the others down.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: timeout,
    hookTimeout: timeout,
    reporters: ['default'],
  },
});
