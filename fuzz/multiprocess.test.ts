import { type ChildProcess, fork } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, expect, test } from 'vitest'
import { AnyStore, type AnyStoreOptions } from '../src/index.js'
import { budgetFor, report } from './budget.js'
import { fixture, requireBuild } from './dist-check.js'
import { checkHistory, type HistoryEntry, type Operation, type Value } from './linearizability.js'

/**
 * N real processes (2..8), each running 1..3 concurrent clients, hammer one store file with
 * fast-check-generated workloads. Every client records when each operation was invoked and
 * answered (CLOCK_MONOTONIC, shared by all processes on Linux), what it asked and what it got.
 * The merged history must be linearizable, and counters incremented through run() must equal
 * the number of acknowledged increments (no lost updates).
 */

/** Keys come in groups; a transaction stays within one group, so groups are checked apart. */
const GROUPS = [['k0', 'k1'], ['k2', 'k3'], ['k4']]
const COUNTERS = ['c0', 'c1']

type Planned =
  | { kind: 'set'; key: string }
  | { kind: 'get' | 'has' | 'delete'; key: string }
  | { kind: 'txn'; group: number; reads: string[]; writes: { key: string; remove: boolean }[] }
  | { kind: 'increment'; key: string }
  | { kind: 'snapshot' }

const anyKey = fc.constantFrom(...GROUPS.flat())
const basicOps: fc.WeightedArbitrary<Planned>[] = [
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('set' as const), key: anyKey }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('get' as const), key: anyKey }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('has' as const), key: anyKey }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), key: anyKey }) },
  {
    weight: 2,
    arbitrary: fc.integer({ min: 0, max: GROUPS.length - 1 }).chain((group) =>
      fc.record({
        kind: fc.constant('txn' as const),
        group: fc.constant(group),
        reads: fc.subarray(GROUPS[group]!),
        writes: fc.array(
          fc.record({ key: fc.constantFrom(...GROUPS[group]!), remove: fc.boolean() }),
          {
            maxLength: 2,
          },
        ),
      }),
    ),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('increment' as const),
      key: fc.constantFrom(...COUNTERS),
    }),
  },
]
/** Some workloads also take whole-store snapshots with entries(), which ties every key together. */
const withSnapshots: fc.WeightedArbitrary<Planned>[] = [
  ...basicOps,
  { weight: 1, arbitrary: fc.constant({ kind: 'snapshot' as const }) },
]

interface Workload {
  processes: number
  clients: number
  snapshots: boolean
  /** Start from a file that already holds this many filler entries (large-map commit paths). */
  preload: number
  options: Pick<AnyStoreOptions, 'sync' | 'compress' | 'lock'>
  plans: Planned[][]
}

function workloadArb(maxOps: number): fc.Arbitrary<Workload> {
  return fc
    .record({
      processes: fc.integer({ min: 2, max: 8 }),
      clients: fc.integer({ min: 1, max: 3 }),
      snapshots: fc.boolean(),
      preload: fc.constantFrom(0, 0, 1500),
      options: fc.record({
        sync: fc.constantFrom('always' as const, 'never' as const),
        compress: fc.boolean(),
        lock: fc.constantFrom('flock' as const, 'flock' as const, 'proper-lockfile' as const),
      }),
    })
    .chain((shape) =>
      fc.record({
        processes: fc.constant(shape.processes),
        clients: fc.constant(shape.clients),
        snapshots: fc.constant(shape.snapshots),
        preload: fc.constant(shape.preload),
        options: fc.constant(shape.options),
        plans: fc.array(
          fc.array(fc.oneof(...(shape.snapshots ? withSnapshots : basicOps)), { minLength: Math.ceil(maxOps / 2), maxLength: maxOps }),
          {
            minLength: shape.processes * shape.clients,
            maxLength: shape.processes * shape.clients,
          },
        ),
      }),
    )
}

/** Turns a plan into concrete operations; every written value is unique, so reads name their write. */
function concrete(plan: Planned[], client: string) {
  return plan.map((p, i) => {
    const tag = `${client}#${i}`
    switch (p.kind) {
      case 'set':
        return { kind: 'set', key: p.key, value: tag }
      case 'snapshot':
        return { kind: 'snapshot', keys: [...GROUPS.flat(), ...COUNTERS] }
      case 'txn':
        return {
          kind: 'txn',
          reads: p.reads,
          writes: p.writes.map((w, j) => ({ key: w.key, value: w.remove ? null : `${tag}.${j}` })),
        }
      default:
        return p
    }
  })
}

const fromWire = (v: Value | null): Value | undefined => (v === null ? undefined : v)

/**
 * A snapshot (entries()) becomes one read-only transaction per key group and one read per
 * counter, all with the snapshot's interval. Checked as one transaction over every key, the
 * whole history would be one component, and the search grows exponentially with 20+ clients;
 * split, each group still sees the snapshot as atomic.
 */
function decodeOps(op: Record<string, unknown>): Operation[] {
  if (op.kind !== 'snapshot') return [decodeOp(op)]
  const reads = op.reads as Record<string, Value | null>
  const parts = [...GROUPS, ...COUNTERS.map((c) => [c])]
  return parts.map((keys) => ({
    kind: 'txn',
    reads: Object.fromEntries(keys.map((k) => [k, fromWire(reads[k] ?? null)])),
    writes: {},
  }))
}

function decodeOp(op: Record<string, unknown>): Operation {
  const mapValues = (o: Record<string, Value | null>) =>
    Object.fromEntries(Object.entries(o).map(([k, v]) => [k, fromWire(v)]))
  switch (op.kind) {
    case 'get':
      return { kind: 'get', key: op.key as string, result: fromWire(op.result as Value | null) }
    case 'txn':
      return {
        kind: 'txn',
        reads: mapValues(op.reads as Record<string, Value | null>),
        writes: mapValues(op.writes as Record<string, Value | null>),
      }
    default:
      return op as Operation
  }
}

interface ChildResult {
  history: HistoryEntry[]
  increments: Record<string, number>
}

function waitFor(child: ChildProcess, type: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: Record<string, unknown>) => {
      if (message.type === type) {
        cleanup()
        resolve(message)
      } else if (message.type === 'error') {
        cleanup()
        reject(new Error(`child failed: ${String(message.code)} ${String(message.message)}`))
      }
    }
    const onExit = (code: number | null, signal: string | null) => {
      cleanup()
      reject(new Error(`child exited (${code ?? signal}) before sending ${type}`))
    }
    const cleanup = () => {
      child.off('message', onMessage)
      child.off('exit', onExit)
    }
    child.on('message', onMessage)
    child.on('exit', onExit)
  })
}

const root = mkdtempSync(join(tmpdir(), 'anystore-lin-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

const figures = {
  histories: 0,
  operations: 0,
  maxOperations: 0,
  maxProcesses: 0,
  increments: 0,
  lost: 0,
  searchSteps: 0,
}

interface Outcome {
  history: HistoryEntry[]
  acknowledged: Record<string, number>
  stored: Record<string, number>
}

/** Runs one workload in real processes; returns the merged history (final reads included) and counters. */
async function execute(
  processes: number,
  options: AnyStoreOptions,
  clientsOf: (process: number) => unknown[][],
  file: string,
): Promise<Outcome> {
  const children: ChildProcess[] = []
  try {
    for (let p = 0; p < processes; p++) {
      const child = fork(fixture('workload.mjs'), [], {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      })
      children.push(child)
      child.send({ file, options, name: `p${p}`, clients: clientsOf(p) })
    }
    await Promise.all(children.map((c) => waitFor(c, 'ready')))
    const done = children.map((c) => waitFor(c, 'done'))
    for (const child of children) child.send('go')
    const results = (await Promise.all(done)) as unknown as ChildResult[]
    const history: HistoryEntry[] = results.flatMap((r) =>
      r.history.flatMap((e) =>
        decodeOps(e.op as unknown as Record<string, unknown>).map((op) => ({
          process: e.process,
          call: BigInt(e.call as unknown as string),
          ret: BigInt(e.ret as unknown as string),
          op,
        })),
      ),
    )
    const acknowledged: Record<string, number> = {}
    for (const r of results) {
      for (const [key, n] of Object.entries(r.increments))
        acknowledged[key] = (acknowledged[key] ?? 0) + n
    }
    // The final state, read after every process finished, joins the history.
    const stored: Record<string, number> = {}
    const store = await AnyStore.open({ ...options, file })
    try {
      for (const key of [...GROUPS.flat(), ...COUNTERS]) {
        const call = process.hrtime.bigint()
        const value = (await store.get(key)) as Value | undefined
        history.push({
          process: 'final',
          call,
          ret: process.hrtime.bigint(),
          op: { kind: 'get', key, result: value },
        })
        if (COUNTERS.includes(key)) stored[key] = (value as number | undefined) ?? 0
      }
    } finally {
      await store.close()
    }
    return { history, acknowledged, stored }
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
  }
}

async function runWorkload(workload: Workload, index: number): Promise<void> {
  const file = join(root, `history-${index}`, 'shared.db')
  if (workload.preload > 0) {
    const seed = await AnyStore.open({ ...workload.options, file })
    await seed.run(async (tx) => {
      for (let i = 0; i < workload.preload; i++) await tx.set(`filler-${i}`, `filler value ${i}`)
    })
    await seed.close()
  }
  const { history, acknowledged, stored } = await execute(
    workload.processes,
    workload.options,
    (p) =>
      workload.plans
        .slice(p * workload.clients, (p + 1) * workload.clients)
        .map((plan, c) => concrete(plan, `p${p}.${c}`)),
    file,
  )
  for (const key of COUNTERS) {
    figures.increments += acknowledged[key] ?? 0
    figures.lost += (acknowledged[key] ?? 0) - (stored[key] ?? 0)
    expect(stored[key], `counter ${key}: stored count vs acknowledged increments`).toBe(
      acknowledged[key] ?? 0,
    )
  }
  const result = checkHistory(history)
  if (!result.linearizable) console.log(result.report)
  expect(result.linearizable, result.report).toBe(true)
  expect(readdirSync(join(file, '..')).filter((n) => n.endsWith('.tmp'))).toStrictEqual([])
  figures.histories++
  figures.operations += history.length
  figures.maxOperations = Math.max(figures.maxOperations, history.length)
  figures.maxProcesses = Math.max(figures.maxProcesses, workload.processes)
  figures.searchSteps += result.components.reduce((n, c) => n + c.steps, 0)
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
    fc.asyncProperty(workloadArb(maxOps), async (workload) => {
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
    const { history, acknowledged, stored } = await execute(4, { sync: 'never' }, () => [ops], file)
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
