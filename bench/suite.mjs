// The benchmark suite (started by run.mjs): `npm run bench` (full, under 15 minutes), `npm run bench -- --quick`
// (under 2 minutes). Prints tables, writes results/latest.json and results/chart.svg.
// Options: --quick, --smoke (seconds; used by the test suite), --out <dir>.
import { execFileSync } from 'node:child_process'
import { mkdirSync, renameSync, writeFileSync } from 'node:fs'
import { cpus, platform, release, totalmem } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { AnyStore } from '../dist/index.js'
import { renderChart } from './chart.mjs'
import { compare } from './compare.mjs'
import { contend, groupCommit } from './concurrency.mjs'
import { jsonStore, rawReader } from './lib/baselines.mjs'
import { check, freshDir, keyFor, removeDirs, valueFor } from './lib/data.mjs'
import { formatRatio, formatUs, measure, PROFILES, printTable } from './lib/harness.mjs'
import { populate, runConfiguration } from './scenarios.mjs'

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
    out: { type: 'string', default: fileURLToPath(new URL('./results', import.meta.url)) },
  },
})
const mode = args.smoke ? 'smoke' : args.quick ? 'quick' : 'full'
const profile = PROFILES[mode]
const plan = {
  full: {
    sizes: [1, 1000, 10_000, 100_000],
    syncs: ['always', 'never'],
    compress: [false, true],
    groupWrites: 1000,
    processes: [1, 2, 4, 8],
    increments: 250,
    warmUp: 100,
    coldSize: 100_000,
  },
  quick: {
    sizes: [1, 1000, 10_000, 100_000],
    syncs: ['always', 'never'],
    compress: [false],
    groupWrites: 1000,
    processes: [1, 2, 4, 8],
    increments: 60,
    warmUp: 100,
    coldSize: 100_000,
  },
  smoke: {
    sizes: [1, 100],
    syncs: ['never'],
    compress: [false],
    groupWrites: 20,
    processes: [1, 2],
    increments: 5,
    warmUp: 2,
    coldSize: 100,
  },
}[mode]

const started = Date.now()
const machine = {
  cpu: cpus()[0]?.model ?? 'unknown',
  cores: cpus().length,
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  os: `${platform()} ${release()}`,
  node: process.version,
  fileSystem: fileSystemOf(process.env.BENCH_DIR ?? '/tmp'),
}
console.log(`anystore benchmark (${mode}) — ${new Date(started).toISOString()}`)
console.log(
  `${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}, Node ${machine.node}, ${machine.fileSystem}`,
)

function fileSystemOf(path) {
  try {
    return execFileSync('stat', ['-f', '-c', '%T', path], { encoding: 'utf8' }).trim()
  } catch {
    return 'unknown'
  }
}

// 1. The operation matrix.
const configurations = []
for (const size of plan.sizes)
  for (const sync of plan.syncs)
    for (const compress of plan.compress) {
      const result = await runConfiguration(profile, { size, sync, compress })
      configurations.push(result)
      const { limits } = result
      printTable(
        `${size} entries, sync '${sync}', compress ${compress} — file ${limits.fileSize} bytes; stat ${formatUs(limits.statUs)}, raw durable write ${formatUs(limits.rawWriteUs)}, read + decrypt ${formatUs(limits.rawReadUs)}`,
        ['operation', 'keys', 'median', 'ratio', 'to'],
        result.results.map((r) => [
          r.operation,
          r.flavour,
          formatUs(r.medianUs),
          formatRatio(r.ratio),
          r.baseline,
        ]),
      )
      removeDirs()
    }

// 2. Group commit and multi-process transactions.
const group = await groupCommit(profile, plan.groupWrites)
printTable(
  `group commit: ${group.writes} set() calls, sync 'always'`,
  ['concurrent', 'sequential', 'speed-up'],
  [
    [
      `${group.concurrentMs.toFixed(1)} ms`,
      `${group.sequentialMs.toFixed(0)} ms`,
      formatRatio(group.speedup),
    ],
  ],
)
const processes = []
for (const n of plan.processes) {
  const result = await contend('anystore', n, plan.increments, plan.warmUp)
  check(result.lost === 0, `no lost updates with ${n} processes (lost ${result.lost})`)
  processes.push(result)
}
printTable(
  `run() increments, sync 'always', ${plan.increments} per process`,
  ['processes', 'transactions/s', 'lost updates'],
  processes.map((p) => [p.processes, p.opsPerSec.toFixed(0), p.lost]),
)
removeDirs()

// 3. Cold open against its floors, and its peak memory.
const cold = await coldOpen(plan.coldSize)
printTable(
  `cold open (open + first get), ${plan.coldSize} entries, file ${cold.fileSize} bytes`,
  ['anystore', 'read + decrypt', 'ratio', 'lock + JSON store', 'ratio', 'peak RSS / file'],
  [
    [
      formatUs(cold.anystoreUs),
      formatUs(cold.readDecryptUs),
      formatRatio(cold.anystoreUs / cold.readDecryptUs),
      formatUs(cold.jsonUs),
      formatRatio(cold.anystoreUs / cold.jsonUs),
      formatRatio(cold.peakRssAboveBaseline / cold.fileSize),
    ],
  ],
)
removeDirs()

async function coldOpen(size) {
  const dir = freshDir('cold')
  const file = join(dir, 'store.anystore')
  const store = await AnyStore.open({ file })
  await populate(store, size)
  await store.close()
  const { statSync } = await import('node:fs')
  const fileSize = statSync(file).size
  const last = keyFor(size - 1)
  const anystore = await measure(
    profile,
    async () => {
      const s = await AnyStore.open({ file })
      if ((await s.get(last)) !== valueFor(size - 1))
        throw new Error('cold open read the wrong value')
      await s.close()
    },
    { slow: true },
  )
  const readDecrypt = rawReader(dir, fileSize)
  const floor = await measure(profile, () => readDecrypt(), { slow: true })
  const json = jsonStore(
    dir,
    Array.from({ length: size }, (_, i) => [keyFor(i), valueFor(i)]),
  )
  const jsonFigure = await measure(
    profile,
    () => {
      if (json.openAndGet(last) !== valueFor(size - 1))
        throw new Error('JSON store read the wrong value')
    },
    { slow: true },
  )
  const rss = JSON.parse(
    execFileSync(
      process.execPath,
      [
        '--expose-gc',
        fileURLToPath(new URL('./fixtures/cold-open.mjs', import.meta.url)),
        file,
        last,
        'false',
      ],
      {
        encoding: 'utf8',
      },
    ),
  )
  return {
    size,
    fileSize,
    anystoreUs: anystore.medianUs,
    readDecryptUs: floor.medianUs,
    jsonUs: jsonFigure.medianUs,
    peakRssAboveBaseline: rss.peakRss - rss.baselineRss,
  }
}

// 4. Side by side with lmdb-js, conf and the Go original.
const side = await compare(profile, {
  incrementCount: plan.increments,
  warmUp: plan.warmUp,
  coldSize: plan.coldSize,
})
printTable(
  'side by side (median per operation; ratio = anystore ÷ other)',
  [
    'scenario',
    'anystore',
    'anystore ops/s',
    'lmdb-js',
    'conf',
    'Go original',
    'floor',
    '÷ lmdb',
    '÷ conf',
    '÷ Go',
  ],
  side.rows.map((r) => [
    r.scenario,
    formatUs(r.anystore),
    Math.round(1e6 / r.anystore).toLocaleString('en-US'),
    formatUs(r.lmdb),
    formatUs(r.conf),
    formatUs(r.go),
    formatUs(r.floor),
    formatRatio(r.anystore / r.lmdb),
    formatRatio(r.anystore / r.conf),
    formatRatio(r.go ? r.anystore / r.go : undefined),
  ]),
)
printTable(
  `4 processes × ${plan.increments} read-modify-write increments`,
  ['store', 'transactions/s', 'lost updates'],
  [
    ...side.contention.map((c) => [
      c.store,
      c.opsPerSec.toFixed(0),
      `${c.lost} of ${c.increments}`,
    ]),
    ['Go original (Run), measured here earlier', '-', `${side.goLostOf1000} of 1000`],
  ],
)
removeDirs()

// 5. The targets of the performance issue, each as a ratio.
const find = (operation, flavour, size, sync = 'never', compress = false) =>
  configurations
    .flatMap((c) => c.results)
    .find(
      (r) =>
        r.operation === operation &&
        r.flavour === flavour &&
        r.size === size &&
        r.sync === sync &&
        r.compress === compress,
    )
const readRatios = plan.sizes
  .map((s) => find('get', 'same key', s)?.ratio)
  .filter((r) => r !== undefined)
const smallest = find('get', 'same key', plan.sizes[0])
const largest = find('get', 'same key', plan.sizes.at(-1))
const lmdbGet = side.rows[0]
const headline = side.rows[1]
const four = side.contention
const rateOf = (store) => four.find((c) => c.store === store).opsPerSec
const commitAt = (size) => find('set', 'same key', size, plan.syncs[0])?.ratio
const anystoreFour = processes.find((p) => p.processes === 4) ?? four[0]
const targets = [
  ['read of an unchanged store ÷ statSync (worst size)', Math.max(...readRatios), '≤ 1.5'],
  ['read at largest ÷ read at 1 entry', largest.medianUs / smallest.medianUs, '≤ 1.25'],
  ['read ÷ lmdb-js get', lmdbGet.anystore / lmdbGet.lmdb, '≤ 1'],
  ['  floor (awaited call + 1-byte pread) ÷ lmdb-js get', lmdbGet.floor / lmdbGet.lmdb, 'context'],
  ['  anystore ÷ that floor', lmdbGet.anystore / lmdbGet.floor, 'context'],
  ['commit at 10k ÷ raw durable write', commitAt(10_000), '≤ 1.25'],
  ['commit at 100k ÷ raw durable write', commitAt(100_000), '≤ 1.25'],
  ['group commit speed-up', group.speedup, '≥ 100'],
  ['4-process run() rate ÷ lmdb-js', rateOf('anystore') / rateOf('lmdb'), '≥ 0.6'],
  ['  floor (lock + durable replace) ÷ lmdb-js', rateOf('floor') / rateOf('lmdb'), 'context'],
  ['  anystore ÷ floor', rateOf('anystore') / rateOf('floor'), 'context'],
  [
    '  anystore ÷ lmdb-js waiting for its flush',
    rateOf('anystore') / rateOf('lmdb-flushed'),
    'context',
  ],
  ['  floor ÷ lmdb-js waiting for its flush', rateOf('floor') / rateOf('lmdb-flushed'), 'context'],
  ['lost updates, 1–8 processes', processes.reduce((n, p) => n + p.lost, 0), '= 0'],
  ['set then get ÷ lmdb-js', headline.anystore / headline.lmdb, '≤ 1.2'],
  ['  raw durable replace of the same bytes ÷ lmdb-js', headline.floor / headline.lmdb, 'context'],
  ['cold open ÷ read + decrypt', cold.anystoreUs / cold.readDecryptUs, '≤ 2'],
  ['cold open ÷ lock + JSON store', cold.anystoreUs / cold.jsonUs, '≤ 0.35'],
  ['cold open peak RSS ÷ file size', cold.peakRssAboveBaseline / cold.fileSize, '≤ 2'],
].map(([name, value, goal]) => ({ name, value, goal, met: meets(value, goal) }))
function meets(value, goal) {
  if (value === undefined || Number.isNaN(value) || goal === 'context') return undefined
  const bound = Number(goal.replace(/[^0-9.]/g, ''))
  return goal.startsWith('≤')
    ? value <= bound
    : goal.startsWith('≥')
      ? value >= bound
      : value === bound
}
printTable(
  'targets',
  ['target', 'measured', 'goal', 'met'],
  targets.map((t) => [
    t.name,
    t.value === undefined ? '-' : Number(t.value.toFixed(2)),
    t.goal,
    t.met === undefined ? '-' : t.met ? 'yes' : 'NO',
  ]),
)

// 6. Results and chart.
const seconds = (Date.now() - started) / 1000
const results = {
  date: new Date(started).toISOString(),
  mode,
  command: mode === 'full' ? 'npm run bench' : `npm run bench -- --${mode}`,
  durationSeconds: Math.round(seconds),
  machine,
  note: 'medians in microseconds; each ratio is to a baseline measured in the same run',
  configurations,
  groupCommit: group,
  processes,
  coldOpen: cold,
  compare: side,
  targets,
  anystoreFourProcesses: anystoreFour,
}
mkdirSync(args.out, { recursive: true })
const json = join(args.out, 'latest.json')
writeFileSync(`${json}.tmp`, `${JSON.stringify(results, null, 2)}\n`)
renameSync(`${json}.tmp`, json)
const seriesOf = (operation, field) =>
  plan.sizes.map((size) => {
    const config = configurations.find(
      (c) => c.limits.size === size && c.limits.sync === plan.syncs[0] && !c.limits.compress,
    )
    if (field) return [size, config.limits[field]]
    return [
      size,
      config.results.find((r) => r.operation === operation && r.flavour === 'same key').medianUs,
    ]
  })
writeFileSync(
  join(args.out, 'chart.svg'),
  renderChart({
    title: 'anystore: commit and read cost against store size',
    subtitle: `sync '${plan.syncs[0]}', 100-byte values; ${machine.cpu.trim()}, ${machine.cores} cores, Node ${machine.node}; ${results.date.slice(0, 10)}`,
    series: [
      { label: 'commit: set() awaited', color: '#d62728', points: seriesOf('set') },
      {
        label: 'raw durable write, same bytes',
        color: '#d62728',
        dashed: true,
        points: seriesOf(null, 'rawWriteUs'),
      },
      { label: 'read: get() unchanged store', color: '#1f77b4', points: seriesOf('get') },
      { label: 'fs.statSync', color: '#1f77b4', dashed: true, points: seriesOf(null, 'statUs') },
    ],
  }),
)
console.log(`\nwrote ${json} and chart.svg in ${seconds.toFixed(0)} s`)
