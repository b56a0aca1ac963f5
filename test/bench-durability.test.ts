import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'
import { tempDir } from './helpers.js'

const SCRIPT = fileURLToPath(new URL('../bench/durability.mjs', import.meta.url))

// The benchmark itself is `node bench/durability.mjs`; this proves it runs, checks what it
// wrote, and reports a figure for every policy, with budgets of a few milliseconds.
it('the durability benchmark runs end to end and reports every policy', () => {
  const out = join(tempDir(), 'durability.json')
  execFileSync(process.execPath, ['--disable-warning=ANYSTORE_DEFAULT_KEY', SCRIPT, '--smoke', '--json', out], {
    stdio: ['ignore', 'ignore', 'inherit'],
    timeout: 60_000,
  })
  const report = JSON.parse(readFileSync(out, 'utf8'))
  expect(report.mode).toBe('smoke')
  expect(report.results.map((r: { policy: string }) => r.policy)).toEqual([
    'always',
    'never',
    '{ everyMs: 100 }',
  ])
  for (const result of report.results) {
    for (const figure of ['latencyUs', 'setsPerSecond', 'setsPerCommit', 'burstMs']) {
      expect(result[figure], `${result.policy} ${figure}`).toBeGreaterThan(0)
    }
  }
  expect(report.rawDurableUs).toBeGreaterThan(0)
  // One commit per awaited set() without write-behind; with it, the sequential sets share commits.
  const [always, never, behind] = report.results
  expect(always.setsPerCommit).toBe(1)
  expect(never.setsPerCommit).toBe(1)
  expect(behind.setsPerCommit).toBeGreaterThan(1)
})
