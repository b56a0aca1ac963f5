import { defineConfig } from 'vitest/config'

// CI sets ANYSTORE_TEST_JSON to a path: the JSON report there gives .ci/run its pass/fail counts.
const jsonOutput = process.env.ANYSTORE_TEST_JSON

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'fuzz/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    reporters: jsonOutput ? ['default', ['json', { outputFile: jsonOutput }]] : ['default'],
  },
})
