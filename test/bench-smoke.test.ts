import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'
import { redisTestsEnabled } from './backends/redis/server.js'

const RUNNER = fileURLToPath(new URL('../bench/run.mjs', import.meta.url))

interface Skip {
  scenario: string
  reason: string
}

/** Runs the suite with budgets of a few milliseconds into a temp dir; returns the files it wrote. */
function smoke(args: string[], resultName: string, chartName?: string) {
  const out = mkdtempSync(join(tmpdir(), 'anystore-bench-smoke-'))
  try {
    execFileSync(process.execPath, [RUNNER, '--smoke', ...args, '--out', out], {
      stdio: ['ignore', 'ignore', 'inherit'],
      timeout: 60_000,
    })
    return {
      results: JSON.parse(readFileSync(join(out, resultName), 'utf8')),
      chart: chartName === undefined ? '' : readFileSync(join(out, chartName), 'utf8'),
    }
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
}

// The suite itself is `npm run bench`; this only proves every scenario still runs and checks
// its results, with budgets of a few milliseconds.
it('the benchmark suite runs end to end and writes its results and chart', () => {
  const { results, chart } = smoke([], 'latest.json', 'chart.svg')
  expect(results.mode).toBe('smoke')
  expect(results.backend).toBe('file')
  expect(results.skipped).toEqual([])
  expect(results.configurations.length).toBeGreaterThan(0)
  for (const configuration of results.configurations) {
    for (const result of configuration.results) expect(result.medianUs).toBeGreaterThan(0)
  }
  expect(results.processes.every((p: { lost: number }) => p.lost === 0)).toBe(true)
  expect(results.startup.importMs).toEqual(expect.any(Number))
  expect(results.startup.cliRatio).toBeGreaterThan(0)
  expect(results.compare.contention.map((c: { store: string }) => c.store)).toEqual([
    'anystore',
    'lmdb',
    'lmdb-flushed',
    'conf',
    'floor',
  ])
  expect(results.compare.rows.every((r: { floor?: number }) => r.floor === undefined || r.floor > 0)).toBe(true)
  const floorTargets = results.floorTargets as { ratio: number; min: number; max: number; ratios: number[] }[]
  expect(floorTargets).toHaveLength(4)
  for (const target of floorTargets) {
    expect(target.ratio).toBeGreaterThan(0)
    expect(target.min).toBeLessThanOrEqual(target.ratio)
    expect(target.max).toBeGreaterThanOrEqual(target.ratio)
    expect(target.ratios.length).toBeGreaterThan(0)
  }
  expect(chart).toMatch(/^<svg[^>]*>[\s\S]*<\/svg>\n$/)
})

it('on the memory backend, the suite skips what needs a file or other processes, and says so', () => {
  const { results, chart } = smoke(
    ['--backend', 'memory'],
    'latest-memory.json',
    'chart-memory.svg',
  )
  expect(results.backend).toBe('memory')
  expect(results.command).toBe('npm run bench -- --smoke --backend memory')
  for (const configuration of results.configurations) {
    expect(configuration.limits.sync).toBeNull()
    for (const result of configuration.results) expect(result.medianUs).toBeGreaterThan(0)
  }
  expect(results.groupCommit.speedup).toBeGreaterThan(0)
  expect(results.processes).toEqual([])
  expect(results.compare.contention).toEqual([])
  expect(results.floorTargets).toBeUndefined()
  expect(results.compare.rows.map((r: { scenario: string }) => r.scenario)).toEqual([
    'get, unchanged store of 1,000 entries',
  ])
  const scenarios = results.skipped.map((s: Skip) => s.scenario).join('\n')
  for (const expected of [/cold open/, /processes/, /durable/, /limits/]) {
    expect(scenarios).toMatch(expected)
  }
  expect(results.skipped.every((s: Skip) => s.reason.length > 0)).toBe(true)
  expect(chart).toMatch(/^<svg[^>]*>[\s\S]*<\/svg>\n$/)
})

// Without BENCH_REDIS_URL and with nothing on the default port, the suite starts a redis-server
// of its own (lib/redis-server.mjs) and stops it at the end. `--only redis` keeps it to the
// Redis comparison (bare node-redis, @keyv/redis, the increments), which no other backend runs.
it.skipIf(!redisTestsEnabled)(
  'on Redis, the suite compares anystore with bare node-redis and @keyv/redis on one server',
  () => {
    const { results } = smoke(['--backend', 'redis', '--only', 'redis'], 'latest-redis-partial.json')
    expect(results.backend).toBe('redis')
    const redis = results.redis
    expect(redis.server.version).toMatch(/^\d+\.\d+/)
    expect(['yes', 'no']).toContain(redis.server.appendonly)
    for (const row of redis.rows) {
      for (const kind of ['anystoreUs', 'bareUs', 'bareNoTimerUs', 'keyvUs']) expect(row[kind]).toBeGreaterThan(0)
      expect(row.anystoreToBare.rounds).toHaveLength(redis.rounds)
    }
    expect(redis.rows.map((r: { scenario: string }) => r.scenario)).toEqual([
      'get',
      'set',
      'set+get',
      'get',
      'set',
      'set+get',
    ])
    // One command per get: the entry and the store id in one HMGET.
    expect(redis.commandsPerCall.get).toEqual({ hmget: 1 })
    const increments = Object.fromEntries(
      redis.increments.map((c: { kind: string; lost: number }) => [c.kind, c.lost]),
    )
    expect(Object.keys(increments)).toEqual(['anystore', 'bare-cas', 'bare-watch', 'keyv'])
    for (const kind of ['anystore', 'bare-cas', 'bare-watch']) expect(increments[kind]).toBe(0)
    expect(redis.targets.every((t: { median: number }) => t.median > 0)).toBe(true)
  },
)
