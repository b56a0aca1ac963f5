import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, expect, test } from 'vitest'
import type { AnyStoreOptions } from '../src/index.js'
import { budgetFor, report } from './budget.js'
import { requireBuild } from './dist-check.js'
import { checkHistory } from './linearizability.js'
import {
  checkOutcome,
  clientsOf,
  execute,
  newFigures,
  preload,
  type Workload,
  workloadArb,
} from './multiprocess-harness.js'

/**
 * N real processes (2..8), each running 1..3 concurrent clients, hammer one store file with
 * fast-check-generated workloads (fuzz/multiprocess-harness.ts). The merged history must be
 * linearizable, and counters incremented through run() must equal the number of acknowledged
 * increments (no lost updates). fuzz/multiprocess-redis.test.ts runs the same on Redis.
 */

type FileOptions = Pick<AnyStoreOptions, 'sync' | 'compress' | 'lock'>

const fileWorkloads = (maxOps: number): fc.Arbitrary<Workload<FileOptions>> =>
  workloadArb(maxOps, {
    maxProcesses: 8,
    // Start from a file that already holds 1,500 filler entries (large-map commit paths).
    preloads: [0, 0, 1500],
    options: fc.record({
      sync: fc.constantFrom('always' as const, 'never' as const),
      compress: fc.boolean(),
      lock: fc.constantFrom('flock' as const, 'flock' as const, 'proper-lockfile' as const),
    }),
  })

const root = mkdtempSync(join(tmpdir(), 'anystore-lin-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

const figures = newFigures()

async function runWorkload(workload: Workload<FileOptions>, index: number): Promise<void> {
  const file = join(root, `history-${index}`, 'shared.db')
  await preload({ ...workload.options, file }, workload.preload)
  const outcome = await execute(workload.processes, { ...workload.options, file }, clientsOf(workload))
  checkOutcome(outcome, workload.processes, figures)
  expect(readdirSync(join(file, '..')).filter((n) => n.endsWith('.tmp'))).toStrictEqual([])
}

test('concurrent processes produce linearizable histories and lose no updates', async () => {
  requireBuild()
  const budget = budgetFor(
    'multiprocess',
    { runs: 6, seconds: 30 },
    { runs: 100_000, seconds: 180 },
  )
  const maxOps = Number(process.env.FUZZ_OPS ?? 30)
  let index = 0
  await fc.assert(
    fc.asyncProperty(fileWorkloads(maxOps), async (workload) => {
      await runWorkload(workload, index++)
    }),
    {
      seed: budget.seed,
      numRuns: budget.runs,
      interruptAfterTimeLimit: budget.seconds * 1000,
      markInterruptAsFailure: false,
      // Re-running real processes to shrink is slow and not deterministic: report the first failure.
      endOnFailure: true,
    },
  )
  report('multiprocess', { seed: budget.seed, ...figures })
  expect(figures.histories).toBeGreaterThan(0)
  expect(figures.lost).toBe(0)
})

test('negative control: read-then-write increments outside run() are caught', async () => {
  requireBuild()
  // The same harness, but each increment is a get() followed by a separate set(): under
  // contention some are lost, and both the counter and the checker must say so. Contention
  // is overwhelmingly likely with 4 processes x 40 increments; three attempts rule out a fluke.
  for (let attempt = 0; attempt < 3; attempt++) {
    const file = join(root, `control-${attempt}`, 'shared.db')
    const ops = Array.from({ length: 40 }, () => ({ kind: 'unsafe-increment', key: 'c0' }))
    const { history, acknowledged, stored } = await execute(4, { sync: 'never', file }, () => [ops])
    const result = checkHistory(history)
    if (stored.c0! < acknowledged.c0!) {
      expect(result.linearizable).toBe(false)
      expect(result.report).toContain('c0')
      console.log(
        `negative control: ${acknowledged.c0! - stored.c0!} of ${acknowledged.c0} increments lost; checker rejected the history:\n${result.report.split('\n').slice(0, 12).join('\n')}`,
      )
      return
    }
  }
  throw new Error(
    'three contended runs lost no read-then-write increment: the harness is not producing contention',
  )
})
