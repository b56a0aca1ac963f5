// The performance targets stated against their floors, each measured in alternating rounds:
// anystore, then its floor, then the floor, then anystore (the order swaps every round), and
// the ratio of each round's pair is one figure. A ratio of two medians measured minutes apart
// on this shared machine moves by ±15 %; the median of the per-round ratios, printed with
// their spread, is the figure the targets are judged by.
//
// Used by suite.mjs (section `targets`); also runs alone, e.g. to compare two builds in
// alternating runs:
//   node bench/targets.mjs [--quick|--smoke] [--build <dist/index.js>] [--rounds N]
import { closeSync, openSync, readSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { contend } from './concurrency.mjs'
import { backendInfo, openStore, removeStores } from './lib/backends.mjs'
import { rawWriter } from './lib/baselines.mjs'
import { check, freshDir, keyFor, valueFor } from './lib/data.mjs'
import { formatRatio, formatUs, printTable } from './lib/harness.mjs'
import { populate } from './scenarios.mjs'

/** Rounds and sizes per suite mode. `samples`: timed calls (or batches) per turn. */
export const TARGET_PLANS = {
  full: { rounds: 9, getBatch: 200, getSamples: 25, commitSamples: 25, contentionRounds: 7, steadyRounds: 5, steadyWarmUp: 1500 },
  quick: { rounds: 5, getBatch: 100, getSamples: 15, commitSamples: 15, contentionRounds: 3, steadyRounds: 3, steadyWarmUp: 1000 },
  smoke: { rounds: 2, getBatch: 2, getSamples: 2, commitSamples: 2, contentionRounds: 1, steadyRounds: 1, steadyWarmUp: 4 },
}

const median = (values) => quantile(values, 0.5)

/** The `q` quantile of `values`, interpolated between the two nearest ranks. */
function quantile(values, q) {
  const sorted = [...values].sort((a, b) => a - b)
  if (sorted.length === 0) return undefined
  const at = (sorted.length - 1) * q
  const low = Math.floor(at)
  const high = Math.ceil(at)
  return sorted[low] + (sorted[high] - sorted[low]) * (at - low)
}

/** Median µs per operation of `samples` timed calls of `fn` (each doing `ops` operations), after two untimed ones. */
async function turn(fn, samples, ops = 1) {
  await fn()
  await fn()
  const times = []
  for (let i = 0; i < samples; i++) {
    const start = performance.now()
    await fn()
    times.push(((performance.now() - start) * 1000) / ops)
  }
  return median(times)
}

/**
 * Runs `a` and `b` (each returns one figure) `rounds` times, a before b in even rounds and b
 * before a in odd ones. Returns both series in round order.
 */
async function alternate(rounds, a, b) {
  const as = []
  const bs = []
  for (let round = 0; round < rounds; round++) {
    if (round % 2 === 0) {
      as.push(await a())
      bs.push(await b())
    } else {
      bs.push(await b())
      as.push(await a())
    }
  }
  return { as, bs }
}

/**
 * One target row from the per-round figures of anystore and of its floor. `higherIsBetter`:
 * the figures are rates, so the ratio is anystore ÷ floor either way, and the goal a minimum.
 */
function row(name, unit, goal, as, bs, extra = {}) {
  const ratios = as.map((a, i) => a / bs[i])
  const ratio = median(ratios)
  const bound = Number(goal.replace(/[^0-9.]/g, ''))
  return {
    name,
    unit,
    goal,
    anystore: median(as),
    floor: median(bs),
    ratio,
    min: Math.min(...ratios),
    max: Math.max(...ratios),
    q1: quantile(ratios, 0.25),
    q3: quantile(ratios, 0.75),
    rounds: ratios.length,
    ratios: ratios.map((r) => Number(r.toFixed(3))),
    met: goal.startsWith('≤') ? ratio <= bound : ratio >= bound,
    ...extra,
  }
}

/**
 * The least a read can cost in a store whose get() returns a promise and checks the file with
 * one system call: an awaited async call that preads one byte of an open file and returns a
 * value it already holds.
 */
function readFloor(file) {
  const fd = openSync(file, 'r')
  const byte = Buffer.alloc(1)
  const held = valueFor(7)
  return {
    read: async () => {
      readSync(fd, byte, 0, 1, 0)
      return held
    },
    close: () => closeSync(fd),
  }
}

/** `get` of an unchanged 1,000-entry store against the read floor. */
async function getTarget(plan) {
  const dir = freshDir('target-get')
  const store = await openStore('file', { location: join(dir, 'store.anystore'), sync: 'never' })
  await populate(store, 1000)
  const key = keyFor(7)
  check((await store.get(key)) === valueFor(7), 'get reads the value set')
  const floor = readFloor(store.file)
  const batch = plan.getBatch
  const { as, bs } = await alternate(
    plan.rounds,
    () =>
      turn(
        async () => {
          for (let i = 0; i < batch; i++) await store.get(key)
        },
        plan.getSamples,
        batch,
      ),
    () =>
      turn(
        async () => {
          for (let i = 0; i < batch; i++) await floor.read()
        },
        plan.getSamples,
        batch,
      ),
  )
  floor.close()
  await store.close()
  return row(
    'get of an unchanged store ÷ awaited call + 1-byte pread',
    'µs',
    '≤ 1.1',
    as,
    bs,
  )
}

/**
 * Set then get of one key, sync 'always', on an empty store, against a raw durable replace of
 * as many bytes as the store file (write a temp, fsync, rename, fsync the directory) followed
 * by the read floor's awaited 1-byte pread.
 */
async function setThenGetTarget(plan) {
  const dir = freshDir('target-set')
  const store = await openStore('file', { location: join(dir, 'store.anystore'), sync: 'always' })
  let round = 0
  const setThenGet = async () => {
    const value = valueFor(1, ++round)
    await store.set('one', value)
    if ((await store.get('one')) !== value) throw new Error('anystore lost a write')
  }
  await setThenGet()
  const writer = rawWriter(dir, statSync(store.file).size, true)
  writer.write()
  // Preads the first version written: a pread costs the same on a replaced inode.
  const floor = readFloor(join(dir, 'raw.bin'))
  const replaceThenRead = async () => {
    writer.write()
    await floor.read()
  }
  await replaceThenRead()
  const { as, bs } = await alternate(
    plan.rounds,
    () => turn(setThenGet, plan.commitSamples),
    () => turn(replaceThenRead, plan.commitSamples),
  )
  floor.close()
  writer.close()
  await store.close()
  return row(
    "set then get of one key, sync 'always' ÷ raw durable replace + read",
    'µs',
    '≤ 1.1',
    as,
    bs,
  )
}

/**
 * 4 processes doing run() increments of one counter against the floor contender (flock,
 * read, durable replace; its waiters block in flock), in alternating runs. Lost updates: the
 * most any of anystore's runs lost.
 */
async function contentionTarget(plan, { increments, warmUp, steady = false }) {
  const runs = []
  const { as, bs } = await alternate(
    steady ? plan.steadyRounds : plan.contentionRounds,
    async () => {
      const run = await contend('anystore', 4, increments, warmUp, 'file')
      check(run.lost === 0, `no lost updates with 4 processes (lost ${run.lost})`)
      runs.push(run)
      return run.opsPerSec
    },
    async () => (await contend('floor', 4, increments, warmUp, 'file')).opsPerSec,
  )
  return row(
    "4-process run() increments, sync 'always' ÷ flock + read + durable replace" +
      (steady ? `, steady state (${warmUp} increments of warm-up per process)` : ''),
    'transactions/s',
    '≥ 0.8',
    as,
    bs,
    { lost: Math.max(...runs.map((r) => r.lost)), increments: 4 * increments },
  )
}

/**
 * Measures every target against its floor on the file backend. Returns the rows (see row());
 * `skipped` names the reason when the backend has no file to measure the floors on.
 */
export async function measureTargets(mode, { backend = 'file', increments, warmUp }) {
  if (!backendInfo(backend).file) {
    return {
      rows: [],
      skipped: `the floors are measured on the store file, and the ${backend} backend keeps none`,
    }
  }
  const plan = TARGET_PLANS[mode]
  const rows = [
    await getTarget(plan),
    await setThenGetTarget(plan),
    await contentionTarget(plan, { increments, warmUp }),
    // The commit path is compiled by V8 over thousands of commits (docs/PERFORMANCE.md, "Where
    // the user-space CPU of a run() commit goes"): the same target once both contenders are warm,
    // as a long-running process is.
    await contentionTarget(plan, { increments, warmUp: plan.steadyWarmUp, steady: true }),
  ]
  return { rows, plan }
}

const formatFigure = (value, unit) => (unit === 'µs' ? formatUs(value) : value.toFixed(0))

/** Prints the target table: medians of the per-round figures, the ratio's median and spread. */
export function printTargets({ rows }) {
  printTable(
    'targets against their floors (alternating rounds; ratio = median of the per-round ratios)',
    ['target', 'anystore', 'floor', 'ratio', 'min–max', 'IQR', 'rounds', 'goal', 'met'],
    rows.map((r) => [
      r.name,
      formatFigure(r.anystore, r.unit),
      formatFigure(r.floor, r.unit),
      formatRatio(r.ratio),
      `${r.min.toFixed(2)}–${r.max.toFixed(2)}`,
      `${r.q1.toFixed(2)}–${r.q3.toFixed(2)}`,
      r.rounds,
      r.goal,
      r.met ? 'yes' : 'NO',
    ]),
  )
  const contention = rows.find((r) => r.lost !== undefined)
  if (contention !== undefined) {
    console.log(`lost updates in the 4-process runs: ${contention.lost} of ${contention.increments}`)
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values: args } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      smoke: { type: 'boolean', default: false },
      build: { type: 'string' },
      rounds: { type: 'string' },
    },
  })
  if (args.build !== undefined) process.env.BENCH_BUILD = resolve(args.build)
  const mode = args.smoke ? 'smoke' : args.quick ? 'quick' : 'full'
  if (args.rounds !== undefined) {
    const rounds = Number(args.rounds)
    TARGET_PLANS[mode] = { ...TARGET_PLANS[mode], rounds, contentionRounds: rounds, steadyRounds: rounds }
  }
  const increments = { full: 250, quick: 60, smoke: 5 }[mode]
  const warmUp = { full: 100, quick: 100, smoke: 2 }[mode]
  const started = performance.now()
  const result = await measureTargets(mode, { increments, warmUp })
  printTargets(result)
  console.log(
    `${JSON.stringify({ build: process.env.BENCH_BUILD ?? 'dist', mode, rows: result.rows })}`,
  )
  console.log(`(${((performance.now() - started) / 1000).toFixed(0)} s)`)
  removeStores()
}
