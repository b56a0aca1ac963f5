import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'

const RUNNER = fileURLToPath(new URL('../bench/run.mjs', import.meta.url))

// The suite itself is `npm run bench`; this only proves every scenario still runs and checks
// its results, with budgets of a few milliseconds.
it('the benchmark suite runs end to end and writes its results and chart', () => {
  const out = mkdtempSync(join(tmpdir(), 'anystore-bench-smoke-'))
  try {
    execFileSync(process.execPath, [RUNNER, '--smoke', '--out', out], {
      stdio: ['ignore', 'ignore', 'inherit'],
      timeout: 60_000,
    })
    const results = JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8'))
    expect(results.mode).toBe('smoke')
    expect(results.configurations.length).toBeGreaterThan(0)
    for (const configuration of results.configurations) {
      for (const result of configuration.results) expect(result.medianUs).toBeGreaterThan(0)
    }
    expect(results.processes.every((p: { lost: number }) => p.lost === 0)).toBe(true)
    expect(results.compare.contention.map((c: { store: string }) => c.store)).toEqual([
      'anystore',
      'lmdb',
      'lmdb-flushed',
      'conf',
      'floor',
    ])
    expect(results.compare.rows.every((r: { floor?: number }) => r.floor === undefined || r.floor > 0)).toBe(true)
    expect(readFileSync(join(out, 'chart.svg'), 'utf8')).toMatch(/^<svg[^>]*>[\s\S]*<\/svg>\n$/)
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
})
