import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    // Native code and vmThreads do not mix; every test file gets its own process.
    pool: 'forks',
    // Two test files at a time (vitest's default is one fewer than the cores: one, here). Most
    // of the time goes to child processes that wait on each other (packs, clusters, containers,
    // qemu), and no test asserts a time; 930 s one at a time on CI.
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
