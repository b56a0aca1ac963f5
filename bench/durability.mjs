// What each `sync` policy costs a writer: set() latency and throughput under 'always', 'never'
// and { everyMs: 100 }, against the suite's baseline for a commit (a raw durable replace of a
// file of the store's size: encrypt, write, fsync, rename, fsync the directory). Under a
// minute: `npm run build && node bench/durability.mjs` (--quick: about 20 s; --smoke: a few
// seconds, for the test suite; --json <file>: the figures as JSON).
import { writeFileSync } from 'node:fs'
import { cpus, platform, release } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { readFileHeader } from '../dist/index.js'
import { openStore } from './lib/backends.mjs'
import { rawWriter } from './lib/baselines.mjs'
import { check, freshDir, keyFor, removeDirs, valueFor } from './lib/data.mjs'
import { formatRatio, formatUs, measure, PROFILES, printTable } from './lib/harness.mjs'

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
})
const mode = args.smoke ? 'smoke' : args.quick ? 'quick' : 'full'
const profile = PROFILES[mode]
const plan = {
  full: { entries: 1000, rounds: 5, throughputMs: 1000, burst: 1000 },
  quick: { entries: 1000, rounds: 3, throughputMs: 400, burst: 1000 },
  smoke: { entries: 50, rounds: 1, throughputMs: 30, burst: 20 },
}[mode]

const EVERY_MS = 100
const POLICIES = [
  ['always', 'always'],
  ['never', 'never'],
  [`{ everyMs: ${EVERY_MS} }`, { everyMs: EVERY_MS }],
]

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
const commits = (file) => Number(readFileHeader(file).header.counter)

/** One store per policy, each filled with `entries` entries in one commit. */
async function openStores() {
  const stores = []
  for (const [name, sync] of POLICIES) {
    const file = join(freshDir(`durability-${name.replace(/\W+/g, '')}`), 'store.anystore')
    const store = await openStore('file', { location: file, sync })
    await store.run(async (tx) => {
      for (let i = 0; i < plan.entries; i++) await tx.set(keyFor(i), valueFor(i))
    })
    stores.push({ name, sync, file, store, rounds: [] })
  }
  return stores
}

let round = 0
/** set() of one of the store's keys, with a value it has not held: every call changes the store. */
function nextWrite() {
  round++
  return [keyFor(round % plan.entries), valueFor(round % plan.entries, round)]
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve))

/**
 * One round of one policy. Latency: the median of one awaited set(), as tinybench times it.
 * Throughput: awaited set() calls one after another for throughputMs, each in a turn of the
 * event loop of its own (as in a program that does other work between writes: without that,
 * a loop of awaited calls that resolve at once never lets write-behind's timer fire), then
 * flush(): for write-behind the time includes committing what the calls left pending. Burst:
 * `burst` set() calls issued at once (they share group commits), then flush().
 */
async function measureRound({ store, file }) {
  const latency = await measure(profile, () => store.set(...nextWrite()), { slow: true })
  const commitsBefore = commits(file)
  let calls = 0
  const started = performance.now()
  while (performance.now() - started < plan.throughputMs) {
    await store.set(...nextWrite())
    calls++
    await nextTurn()
  }
  await store.flush()
  const throughputMs = performance.now() - started
  const commitsMade = commits(file) - commitsBefore
  const burstStarted = performance.now()
  await Promise.all(Array.from({ length: plan.burst }, () => store.set(...nextWrite())))
  await store.flush()
  const burstMs = performance.now() - burstStarted
  return {
    latencyUs: latency.medianUs,
    setsPerSecond: (calls / throughputMs) * 1000,
    setsPerCommit: calls / Math.max(1, commitsMade),
    burstMs,
  }
}

const machine = `${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} cores, ${platform()} ${release()}, Node ${process.version}`
console.log(`anystore durability policies (${mode}) — ${new Date().toISOString()}`)
console.log(machine)
const begun = performance.now()

const stores = await openStores()
const fileSize = (await import('node:fs')).statSync(stores[0].file).size
const baselineDir = freshDir('durability-raw')
const baselines = { durable: [], notSynced: [] }
for (let r = 0; r < plan.rounds; r++) {
  // In turns, rotating the order: the machine's fsync cost drifts within a minute, and
  // measuring one policy after the other would fold that drift into the ratios.
  const order = stores.map((_, i) => stores[(i + r) % stores.length])
  for (const entry of order) entry.rounds.push(await measureRound(entry))
  for (const [kind, sync] of [['durable', true], ['notSynced', false]]) {
    const writer = rawWriter(baselineDir, fileSize, sync)
    baselines[kind].push((await measure(profile, () => writer.write(), { slow: true })).medianUs)
    writer.close()
  }
}

// Everything each policy acknowledged is in the file for a new reader.
for (const { file, store } of stores) {
  const expected = await store.entries()
  await store.close()
  const reader = await openStore('file', { location: file })
  check(JSON.stringify(await reader.entries()) === JSON.stringify(expected), `${file} holds every write`)
  await reader.close()
}

const rawDurableUs = median(baselines.durable)
const rawNotSyncedUs = median(baselines.notSynced)
const results = stores.map(({ name, rounds }) => ({
  policy: name,
  latencyUs: median(rounds.map((r) => r.latencyUs)),
  setsPerSecond: median(rounds.map((r) => r.setsPerSecond)),
  setsPerCommit: median(rounds.map((r) => r.setsPerCommit)),
  burstMs: median(rounds.map((r) => r.burstMs)),
}))
const always = results[0]
printTable(
  `set() on a store of ${plan.entries} entries (file ${fileSize} bytes); raw durable replace ${formatUs(rawDurableUs)}, without fsync ${formatUs(rawNotSyncedUs)}; medians of ${plan.rounds} rounds`,
  [
    'policy',
    'set() latency',
    'vs always',
    'vs raw durable',
    'sets/s (sequential, flushed)',
    'vs always',
    'sets per commit',
    `${plan.burst} concurrent + flush`,
  ],
  results.map((r) => [
    r.policy,
    formatUs(r.latencyUs),
    formatRatio(r.latencyUs / always.latencyUs),
    formatRatio(r.latencyUs / rawDurableUs),
    r.setsPerSecond.toFixed(0),
    formatRatio(r.setsPerSecond / always.setsPerSecond),
    r.setsPerCommit.toFixed(r.setsPerCommit < 10 ? 2 : 0),
    `${r.burstMs.toFixed(1)} ms`,
  ]),
)
const seconds = (performance.now() - begun) / 1000
console.log(`\n${seconds.toFixed(0)} s`)
removeDirs()
if (args.json !== undefined) {
  writeFileSync(
    args.json,
    `${JSON.stringify({ mode, machine, date: new Date().toISOString(), seconds, fileSize, entries: plan.entries, everyMs: EVERY_MS, rawDurableUs, rawNotSyncedUs, results }, null, 2)}\n`,
  )
}
