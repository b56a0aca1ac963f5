import { type ChildProcess, fork } from 'node:child_process'
import fc from 'fast-check'
import { expect } from 'vitest'
import { AnyStore, type AnyStoreOptions } from '../src/index.js'
import { fixture } from './dist-check.js'
import { checkHistory, type HistoryEntry, type Operation, type Value } from './linearizability.js'

/**
 * The multi-process history harness shared by the file and Redis runs: N real processes
 * (fuzz/fixtures/workload.mjs), each running 1..3 concurrent clients, on one store. Every client
 * records when each operation was invoked and answered (CLOCK_MONOTONIC, shared by all
 * processes on Linux), what it asked and what it got. The merged history must be linearizable,
 * and counters incremented through run() must equal the number of acknowledged increments.
 */

/** Keys come in groups; a transaction stays within one group, so groups are checked apart. */
export const GROUPS = [['k0', 'k1'], ['k2', 'k3'], ['k4']]
export const COUNTERS = ['c0', 'c1']

export type Planned =
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

/** A workload: how many processes and clients, their plans, and the store's options. */
export interface Workload<O> {
  processes: number
  clients: number
  snapshots: boolean
  /** Start from a store that already holds this many filler entries. */
  preload: number
  options: O
  plans: Planned[][]
}

/** Workloads of 2..`maxProcesses` processes × 1..3 clients, each client `maxOps / 2`..`maxOps` operations. */
export function workloadArb<O>(
  maxOps: number,
  shape: { maxProcesses: number; preloads: number[]; options: fc.Arbitrary<O> },
): fc.Arbitrary<Workload<O>> {
  return fc
    .record({
      processes: fc.integer({ min: 2, max: shape.maxProcesses }),
      clients: fc.integer({ min: 1, max: 3 }),
      snapshots: fc.boolean(),
      preload: fc.constantFrom(...shape.preloads),
      options: shape.options,
    })
    .chain((s) =>
      fc.record({
        processes: fc.constant(s.processes),
        clients: fc.constant(s.clients),
        snapshots: fc.constant(s.snapshots),
        preload: fc.constant(s.preload),
        options: fc.constant(s.options),
        plans: fc.array(
          fc.array(fc.oneof(...(s.snapshots ? withSnapshots : basicOps)), { minLength: Math.ceil(maxOps / 2), maxLength: maxOps }),
          {
            minLength: s.processes * s.clients,
            maxLength: s.processes * s.clients,
          },
        ),
      }),
    )
}

/** What a child gets besides its options: see fuzz/fixtures/workload.mjs. */
export interface ChildOptions {
  /**
   * Redis only, the broken variant: the child reads through a client that caches every entry it
   * fetched and never learns of other processes' writes (its own commits empty the cache).
   */
  staleReads: boolean
  /** The process's name in the history (default `p<index>`). */
  name: string
}

/** Turns a plan into concrete operations; every written value is unique, so reads name their write. */
export function concrete(plan: Planned[], client: string) {
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

export interface ChildResult {
  history: HistoryEntry[]
  increments: Record<string, number>
}

export function waitFor(child: ChildProcess, type: string): Promise<Record<string, unknown>> {
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

export function newFigures() {
  return {
    histories: 0,
    operations: 0,
    maxOperations: 0,
    maxProcesses: 0,
    increments: 0,
    lost: 0,
    searchSteps: 0,
  }
}
export type Figures = ReturnType<typeof newFigures>

export interface Outcome {
  history: HistoryEntry[]
  acknowledged: Record<string, number>
  stored: Record<string, number>
}

/**
 * Runs one workload in real processes on the store `options` open (with `file` or `redis`, as
 * sent to each child, so plain data only); returns the merged history (final reads included) and counters. */
export async function execute(
  processes: number,
  options: AnyStoreOptions,
  clientsOf: (process: number) => unknown[][],
  childOptions: (process: number) => Partial<ChildOptions> = () => ({}),
): Promise<Outcome> {
  const children: ChildProcess[] = []
  try {
    for (let p = 0; p < processes; p++) {
      const child = fork(fixture('workload.mjs'), [], {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      })
      children.push(child)
      child.send({ options, name: `p${p}`, clients: clientsOf(p), ...childOptions(p) })
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
    const store = await AnyStore.open(options)
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

/**
 * Checks one workload's outcome: counters equal their acknowledged increments, the history is
 * linearizable; adds it to `figures`.
 */
export function checkOutcome(outcome: Outcome, processes: number, figures: Figures): void {
  const { history, acknowledged, stored } = outcome
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
  figures.histories++
  figures.operations += history.length
  figures.maxOperations = Math.max(figures.maxOperations, history.length)
  figures.maxProcesses = Math.max(figures.maxProcesses, processes)
  figures.searchSteps += result.components.reduce((n, c) => n + c.steps, 0)
}

/** The plans of a workload, split among its processes and made concrete. */
export function clientsOf<O>(workload: Workload<O>): (process: number) => unknown[][] {
  return (p) =>
    workload.plans
      .slice(p * workload.clients, (p + 1) * workload.clients)
      .map((plan, c) => concrete(plan, `p${p}.${c}`))
}

/** Fills a new store with `count` filler entries in one run(). */
export async function preload(options: AnyStoreOptions, count: number): Promise<void> {
  if (count === 0) return
  const seed = await AnyStore.open(options)
  await seed.run(async (tx) => {
    for (let i = 0; i < count; i++) await tx.set(`filler-${i}`, `filler value ${i}`)
  })
  await seed.close()
}
