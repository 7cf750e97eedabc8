import { defineConfig } from 'vitest/config';

// Native code runs in forked processes: a worker thread shares the addon's static state with its
// siblings, and a crash in one fork cannot take the others down.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
