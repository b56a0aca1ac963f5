import { randomBytes } from 'node:crypto'
import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import { type AnyStoreOptions, newKey } from '../src/index.js'
import {
  type RedisServer,
  redisTestsEnabled,
  SKIP_MESSAGE,
  startRedis,
} from '../test/backends/redis/server.js'
import { budgetFor, report } from './budget.js'
import { requireBuild } from './dist-check.js'
import { checkHistory, type HistoryEntry } from './linearizability.js'
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
 * The multi-process linearizability check of fuzz/multiprocess.test.ts on Redis: real
 * processes, each with its own connection to a real redis-server, run random get, set, delete,
 * has, run() transactions, increments and entries() snapshots on one store; the merged history
 * must be linearizable and no increment lost. A broken variant, whose reads come from a cache
 * that other processes' writes never reach, shows that the check fails when reads are stale.
 */

const server: RedisServer | undefined = redisTestsEnabled ? await startRedis() : undefined
afterAll(async () => {
  await server?.stop()
})

const storeOptions = (url: string): AnyStoreOptions => ({
  redis: { url, name: `lin:${randomBytes(6).toString('hex')}` },
  encryptionKey: newKey(),
  // Up to 18 clients incrementing two counters: a run() may lose the race many times in a row,
  // and one TransactionConflictError would end its process (a liveness matter, not checked here).
  maxRunAttempts: 1000,
})

const redisWorkloads = (maxOps: number): fc.Arbitrary<Workload<null>> =>
  workloadArb(maxOps, {
    maxProcesses: 6,
    // 100 filler entries keep a listing within one page of 128, which is one state: a listing
    // of several pages outside run() is not a snapshot (docs/DESIGN.md, "The Redis backend").
    preloads: [0, 0, 100],
    options: fc.constant(null),
  })

/**
 * Proof, independent of the checker, that a reader served a stale value: a get by the reader
 * returned v, then (strictly after it) the writer set another value, then (strictly after
 * that) a get by the reader returned v again. Every written value is unique and nothing is
 * deleted, so no order of the operations explains the second get.
 */
function staleWitness(history: HistoryEntry[]): string | undefined {
  const sets = history.filter((e) => e.process.startsWith('writer') && e.op.kind === 'set')
  const gets = history.filter((e) => e.process.startsWith('reader') && e.op.kind === 'get')
  for (const first of gets) {
    if (first.op.kind !== 'get') continue
    const seen = first.op.result
    for (const set of sets) {
      if (set.op.kind !== 'set' || set.call <= first.ret || set.op.value === seen) continue
      const again = gets.find((g) => g.call > set.ret && g.op.kind === 'get' && g.op.result === seen)
      if (again !== undefined) {
        return `get -> ${JSON.stringify(seen)}, then set(k0, ${JSON.stringify(set.op.value)}) acknowledged, then get -> ${JSON.stringify(seen)} again`
      }
    }
  }
  return undefined
}

if (server === undefined) {
  describe('multi-process linearizability on Redis', () => {
    it.skip(SKIP_MESSAGE, () => {})
  })
} else {
  const url = server.url
  describe('multi-process linearizability on Redis', () => {
    it('concurrent processes produce linearizable histories and lose no updates', async () => {
      requireBuild()
      const budget = budgetFor(
        'multiprocess-redis',
        { runs: 3, seconds: 10 },
        { runs: 100_000, seconds: 180 },
      )
      const maxOps = Number(process.env.FUZZ_OPS ?? 30)
      const figures = newFigures()
      await fc.assert(
        fc.asyncProperty(redisWorkloads(maxOps), async (workload) => {
          const options = storeOptions(url)
          await preload(options, workload.preload)
          const outcome = await execute(workload.processes, options, clientsOf(workload))
          checkOutcome(outcome, workload.processes, figures)
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
      report('multiprocess-redis', { seed: budget.seed, ...figures })
      expect(figures.histories).toBeGreaterThan(0)
      expect(figures.lost).toBe(0)
    })

    it('broken variant: reads served from a cache that misses other processes\' writes are caught', async () => {
      requireBuild()
      // A writer sets k0 to a new value 60 times while a reader gets k0 60 times. Read through
      // the store, the history is linearizable; read through the stale client (see
      // fuzz/fixtures/workload.mjs), the reader keeps returning its first value. Whether the
      // two overlap in time depends on the scheduler: three attempts rule out a fluke.
      const plans = [
        Array.from({ length: 60 }, (_, i) => ({ kind: 'set', key: 'k0', value: `w#${i}` })),
        Array.from({ length: 60 }, () => ({ kind: 'get', key: 'k0' })),
      ]
      const names = ['writer', 'reader']
      const run = (staleReads: boolean) =>
        execute(2, storeOptions(url), (p) => [plans[p]!], (p) => ({
          staleReads: staleReads && p === 1,
          name: names[p],
        }))

      const sound = await run(false)
      expect(checkHistory(sound.history).linearizable).toBe(true)

      for (let attempt = 0; attempt < 3; attempt++) {
        const { history } = await run(true)
        const witness = staleWitness(history)
        if (witness === undefined) continue
        const result = checkHistory(history)
        expect(result.linearizable, witness).toBe(false)
        expect(result.report).toContain('k0')
        console.log(
          `broken variant: ${witness}; the checker rejected the history:\n${result.report.split('\n').slice(0, 8).join('\n')}`,
        )
        return
      }
      throw new Error('three runs had no stale read to catch: the writer and the reader never overlapped')
    })
  })
}
