// The benchmark suite (started by run.mjs): `npm run bench` (full, under 15 minutes), `npm run bench -- --quick`
// (under 2 minutes). Prints tables, writes results/latest.json and results/chart.svg.
// Options:
//   --quick, --smoke (seconds; used by the test suite), --out <dir>
//   --backend file|memory|redis   the backend anystore runs on (default file; see lib/backends.mjs).
//       Scenarios the backend cannot run are skipped with the reason printed and recorded.
//       Results of a backend other than file go to latest-<backend>.json and chart-<backend>.svg.
//   --redis-url <url>   the server of the redis backend (default: BENCH_REDIS_URL, or localhost)
//   --build <path>   the dist/index.js of another anystore build to measure (default: ../dist)
//   --only <sections>   a comma-separated subset of: matrix, group, processes, cold, side,
//       contention, targets, redis (to rerun a scenario alone; the targets then lack what was not
//       run). Results
//       go to latest-partial.json (latest-<backend>-partial.json), so latest.json stays whole.
import { execFileSync } from 'node:child_process'
import { mkdirSync, renameSync, writeFileSync } from 'node:fs'
import { cpus, platform, release, totalmem } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { renderChart } from './chart.mjs'
import { compareContention, compareOperations, GO_ORIGINAL } from './compare.mjs'
import { contend, groupCommit } from './concurrency.mjs'
import {
  BACKEND_NAMES,
  backendInfo,
  openStore,
  redisUrl,
  removeStores,
} from './lib/backends.mjs'
import { jsonStore, rawReader } from './lib/baselines.mjs'
import { check, freshDir, keyFor, valueFor } from './lib/data.mjs'
import { formatRatio, formatUs, measure, PROFILES, printTable } from './lib/harness.mjs'
import { populate, runConfiguration } from './scenarios.mjs'
import { measureTargets, printTargets } from './targets.mjs'

const SECTIONS = ['matrix', 'group', 'processes', 'cold', 'side', 'contention', 'targets', 'redis']
const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
    out: { type: 'string', default: fileURLToPath(new URL('./results', import.meta.url)) },
    backend: { type: 'string', default: 'file' },
    'redis-url': { type: 'string' },
    build: { type: 'string' },
    only: { type: 'string' },
  },
})
const mode = args.smoke ? 'smoke' : args.quick ? 'quick' : 'full'
const backend = args.backend
if (!BACKEND_NAMES.includes(backend)) {
  fail(`unknown backend '${backend}': expected one of ${BACKEND_NAMES.join(', ')}`)
}
const info = backendInfo(backend)
// Through the environment, so that the contenders started as child processes use them too;
// read by lib/backends.mjs when it first opens a store.
if (args['redis-url'] !== undefined) process.env.BENCH_REDIS_URL = args['redis-url']
if (args.build !== undefined) process.env.BENCH_BUILD = resolve(args.build)
// Found, or started for this run (and stopped at its end) when none answers; loaded only for
// Redis, so that other backends do not load node-redis.
const redisTools = backend === 'redis' ? await import('./lib/redis-server.mjs') : undefined
const redisServer = await redisTools?.ensureRedisServer()
const only = args.only?.split(',').map((s) => s.trim())
const unknownSection = only?.find((s) => !SECTIONS.includes(s))
if (unknownSection !== undefined) {
  fail(`unknown section '${unknownSection}' in --only: expected some of ${SECTIONS.join(', ')}`)
}
const runs = (section) => only === undefined || only.includes(section)

function fail(message) {
  console.error(`anystore benchmark: ${message}`)
  process.exit(1)
}

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
console.log(
  `anystore benchmark (${mode}), backend ${backend}${backend === 'redis' ? ` at ${redisUrl()}` : ''}` +
    `${only ? `, only ${only.join(', ')}` : ''}${args.build ? `, build ${process.env.BENCH_BUILD}` : ''}` +
    ` — ${new Date(started).toISOString()}`,
)
console.log(
  `${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}, Node ${machine.node}, ${machine.fileSystem}`,
)
if (redisServer) console.log(redisTools.describeRedis(redisServer))

// A backend that cannot open (a build without the redis option, a server that is down) stops
// the run here, before minutes of other scenarios.
try {
  const probe = await openStore(backend, { location: join(freshDir('probe'), 'store.anystore') })
  await probe.close()
} catch (error) {
  removeStores()
  fail(error.message)
}
removeStores()

/** Scenarios not run on this backend, each printed once with its reason. */
const skipped = []
function skip(scenario, reason) {
  if (skipped.some((s) => s.scenario === scenario && s.reason === reason)) return
  skipped.push({ scenario, reason })
  console.log(`\n## skipped: ${scenario} — ${reason}`)
}

function fileSystemOf(path) {
  try {
    return execFileSync('stat', ['-f', '-c', '%T', path], { encoding: 'utf8' }).trim()
  } catch {
    return 'unknown'
  }
}

// 1. The operation matrix; sync and compress vary only where the backend has them (null: n/a).
const configurations = []
if (runs('matrix')) {
  for (const size of plan.sizes)
    for (const sync of info.sync ? plan.syncs : [null])
      for (const compress of info.compress ? plan.compress : [null]) {
        const result = await runConfiguration(profile, { size, sync, compress, backend })
        configurations.push(result)
        const { limits } = result
        const setting =
          `sync ${sync === null ? 'n/a' : `'${sync}'`}, ` +
          `compress ${compress === null ? 'n/a' : compress}`
        const measured = info.file
          ? `file ${limits.fileSize} bytes; stat ${formatUs(limits.statUs)}, raw durable write ${formatUs(limits.rawWriteUs)}, read + decrypt ${formatUs(limits.rawReadUs)}`
          : `${backend} backend, no file: no limits`
        printTable(
          `${size} entries, ${setting} — ${measured}`,
          ['operation', 'keys', 'median', 'ratio', 'to'],
          result.results.map((r) => [
            r.operation,
            r.flavour,
            formatUs(r.medianUs),
            formatRatio(r.ratio),
            r.baseline ?? '-',
          ]),
        )
        for (const { scenario, reason } of result.skipped) skip(scenario, reason)
        removeStores()
      }
}

// 2. Group commit and multi-process transactions.
let group
if (runs('group')) {
  group = await groupCommit(profile, plan.groupWrites, backend)
  printTable(
    `group commit: ${group.writes} set() calls, ${info.sync ? "sync 'always'" : `${backend} backend`}`,
    ['concurrent', 'sequential', 'speed-up'],
    [
      [
        `${group.concurrentMs.toFixed(1)} ms`,
        `${group.sequentialMs.toFixed(0)} ms`,
        formatRatio(group.speedup),
      ],
    ],
  )
  removeStores()
}
const processes = []
if (runs('processes')) {
  if (!info.crossProcess) {
    skip(
      'run() increments from 1, 2, 4 and 8 processes',
      `other processes cannot open a store on the ${backend} backend`,
    )
  } else {
    for (const n of plan.processes) {
      const result = await contend('anystore', n, plan.increments, plan.warmUp, backend)
      check(result.lost === 0, `no lost updates with ${n} processes (lost ${result.lost})`)
      processes.push(result)
    }
    printTable(
      `run() increments, ${info.sync ? "sync 'always'" : `${backend} backend`}, ${plan.increments} per process`,
      ['processes', 'transactions/s', 'lost updates'],
      processes.map((p) => [p.processes, p.opsPerSec.toFixed(0), p.lost]),
    )
    removeStores()
  }
}

// 3. Cold open against its floors, and its peak memory.
let cold
if (runs('cold')) {
  if (!info.file) {
    skip(
      `cold open of ${plan.coldSize} entries against read + decrypt, a JSON store and its peak memory`,
      `its floors and its memory are measured against the store file, and the ${backend} backend keeps none`,
    )
  } else {
    cold = await coldOpen(plan.coldSize)
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
    removeStores()
  }
}

async function coldOpen(size) {
  const dir = freshDir('cold')
  const file = join(dir, 'store.anystore')
  const store = await openStore('file', { location: file })
  await populate(store, size)
  await store.close()
  const { statSync } = await import('node:fs')
  const fileSize = statSync(file).size
  const last = keyFor(size - 1)
  const anystore = await measure(
    profile,
    async () => {
      const s = await openStore('file', { location: file })
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
const side = { rows: [], contention: [], goLostOf1000: GO_ORIGINAL.lostOf1000 }
if (runs('side')) {
  const operations = await compareOperations(profile, { coldSize: plan.coldSize, backend })
  side.rows = operations.rows
  for (const { scenario, reason } of operations.skipped) skip(scenario, reason)
  printSideRows()
  removeStores()
}
if (runs('contention')) {
  if (!info.crossProcess) {
    skip(
      'side by side: 4 processes incrementing one counter',
      `other processes cannot open a store on the ${backend} backend`,
    )
  } else {
    side.contention = (
      await compareContention(profile, {
        incrementCount: plan.increments,
        warmUp: plan.warmUp,
        backend,
      })
    ).contention
    printContention()
    removeStores()
  }
}

// On Redis: against bare node-redis and @keyv/redis on the same server, with its own targets.
const redisSide =
  backend === 'redis' && runs('redis')
    ? await (await import('./redis-floor.mjs')).redisSideBySide(mode, redisServer)
    : undefined

function printSideRows() {
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
}

function printContention() {
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
}

// 5. The targets against their floors, in alternating rounds (bench/targets.mjs), then the
// older targets against lmdb-js and the other limits, each as a ratio; undefined where a scenario it needs
// was skipped or not run.
let floorTargets
if (runs('targets')) {
  const measured = await measureTargets(mode, {
    backend,
    increments: plan.increments,
    warmUp: plan.warmUp,
  })
  if (measured.skipped !== undefined) {
    skip('targets against their floors', measured.skipped)
  } else {
    floorTargets = measured.rows
    printTargets(measured)
  }
  removeStores()
}
const readSync = info.sync ? 'never' : null
const writeSync = info.sync ? plan.syncs[0] : null
const plain = info.compress ? false : null
const find = (operation, flavour, size, sync = readSync) =>
  configurations
    .flatMap((c) => c.results)
    .find(
      (r) =>
        r.operation === operation &&
        r.flavour === flavour &&
        r.size === size &&
        r.sync === sync &&
        r.compress === plain,
    )
const over = (a, b) => (a === undefined || b === undefined ? undefined : a / b)
const readRatios = plan.sizes
  .map((s) => find('get', 'same key', s)?.ratio)
  .filter((r) => r !== undefined)
const smallest = find('get', 'same key', plan.sizes[0])
const largest = find('get', 'same key', plan.sizes.at(-1))
const sideRow = (scenario) => side.rows.find((r) => r.scenario === scenario) ?? {}
const lmdbGet = sideRow('get, unchanged store of 1,000 entries')
const headline = sideRow('set then get of one key (durable)')
const rateOf = (store) => side.contention.find((c) => c.store === store)?.opsPerSec
const commitAt = (size) => find('set', 'same key', size, writeSync)?.ratio
const anystoreFour = processes.find((p) => p.processes === 4) ?? side.contention[0]
const targets = [
  [
    'read of an unchanged store ÷ statSync (worst size)',
    readRatios.length > 0 ? Math.max(...readRatios) : undefined,
    '≤ 1.5',
  ],
  ['read at largest ÷ read at 1 entry', over(largest?.medianUs, smallest?.medianUs), '≤ 1.25'],
  ['read ÷ lmdb-js get', over(lmdbGet.anystore, lmdbGet.lmdb), '≤ 1'],
  [
    '  floor (awaited call + 1-byte pread) ÷ lmdb-js get',
    over(lmdbGet.floor, lmdbGet.lmdb),
    'context',
  ],
  ['  anystore ÷ that floor', over(lmdbGet.anystore, lmdbGet.floor), 'context'],
  ['commit at 10k ÷ raw durable write', commitAt(10_000), '≤ 1.25'],
  ['commit at 100k ÷ raw durable write', commitAt(100_000), '≤ 1.25'],
  // Against sequential commits that each wait for an fsync; without one there is little to share.
  ['group commit speed-up', group?.speedup, info.durable ? '≥ 100' : 'context'],
  ['4-process run() rate ÷ lmdb-js', over(rateOf('anystore'), rateOf('lmdb')), '≥ 0.6'],
  ['  floor (lock + durable replace) ÷ lmdb-js', over(rateOf('floor'), rateOf('lmdb')), 'context'],
  ['  anystore ÷ floor', over(rateOf('anystore'), rateOf('floor')), 'context'],
  [
    '  anystore ÷ lmdb-js waiting for its flush',
    over(rateOf('anystore'), rateOf('lmdb-flushed')),
    'context',
  ],
  [
    '  floor ÷ lmdb-js waiting for its flush',
    over(rateOf('floor'), rateOf('lmdb-flushed')),
    'context',
  ],
  [
    'lost updates, 1–8 processes',
    processes.length > 0 ? processes.reduce((n, p) => n + p.lost, 0) : undefined,
    '= 0',
  ],
  ['set then get ÷ lmdb-js', over(headline.anystore, headline.lmdb), '≤ 1.2'],
  [
    '  raw durable replace of the same bytes ÷ lmdb-js',
    over(headline.floor, headline.lmdb),
    'context',
  ],
  ['cold open ÷ read + decrypt', over(cold?.anystoreUs, cold?.readDecryptUs), '≤ 2'],
  ['cold open ÷ lock + JSON store', over(cold?.anystoreUs, cold?.jsonUs), '≤ 0.35'],
  [
    'cold open peak RSS ÷ file size',
    over(cold?.peakRssAboveBaseline, cold?.fileSize),
    '≤ 2',
  ],
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
  'other targets (one median each; lmdb-js as context)',
  ['target', 'measured', 'goal', 'met'],
  targets.map((t) => [
    t.name,
    t.value === undefined ? '-' : Number(t.value.toFixed(2)),
    t.goal,
    t.met === undefined ? '-' : t.met ? 'yes' : 'NO',
  ]),
)
if (targets.some((t) => t.value === undefined)) {
  console.log('(a target without a figure: a scenario it needs was skipped above or not run)')
}

// 6. Results and chart.
const seconds = (Date.now() - started) / 1000
const flags = [
  mode === 'full' ? undefined : `--${mode}`,
  backend === 'file' ? undefined : `--backend ${backend}`,
  only === undefined ? undefined : `--only ${only.join(',')}`,
  args.build === undefined ? undefined : `--build ${args.build}`,
].filter(Boolean)
const results = {
  date: new Date(started).toISOString(),
  mode,
  backend,
  ...(only === undefined ? {} : { only }),
  ...(args.build === undefined ? {} : { build: process.env.BENCH_BUILD }),
  command: ['npm run bench', ...(flags.length > 0 ? ['--', ...flags] : [])].join(' '),
  durationSeconds: Math.round(seconds),
  machine,
  note: 'medians in microseconds; each ratio is to a baseline measured in the same run',
  skipped,
  configurations,
  groupCommit: group,
  processes,
  coldOpen: cold,
  compare: side,
  floorTargets,
  targets,
  anystoreFourProcesses: anystoreFour,
  ...(redisSide === undefined ? {} : { redis: redisSide }),
}
// Only a whole run on the file backend replaces latest.json and chart.svg, the figures the
// docs quote; other backends and partial reruns are kept beside them.
const suffix = [backend === 'file' ? undefined : backend, only === undefined ? undefined : 'partial']
  .filter(Boolean)
  .map((part) => `-${part}`)
  .join('')
mkdirSync(args.out, { recursive: true })
const json = join(args.out, `latest${suffix}.json`)
writeFileSync(`${json}.tmp`, `${JSON.stringify(results, null, 2)}\n`)
renameSync(`${json}.tmp`, json)
let chart = ''
if (configurations.length > 0) {
  const seriesOf = (operation, field) =>
    plan.sizes.map((size) => {
      const config = configurations.find(
        (c) => c.limits.size === size && c.limits.sync === writeSync && !c.limits.compress,
      )
      if (field) return [size, config.limits[field]]
      return [
        size,
        config.results.find((r) => r.operation === operation && r.flavour === 'same key').medianUs,
      ]
    })
  const series = [
    { label: 'commit: set() awaited', color: '#d62728', points: seriesOf('set') },
    { label: 'read: get() unchanged store', color: '#1f77b4', points: seriesOf('get') },
  ]
  if (info.file) {
    series.splice(1, 0, {
      label: 'raw durable write, same bytes',
      color: '#d62728',
      dashed: true,
      points: seriesOf(null, 'rawWriteUs'),
    })
    series.push({
      label: 'fs.statSync',
      color: '#1f77b4',
      dashed: true,
      points: seriesOf(null, 'statUs'),
    })
  }
  chart = `chart${suffix}.svg`
  writeFileSync(
    join(args.out, chart),
    renderChart({
      title: `anystore: commit and read cost against store size${backend === 'file' ? '' : ` (${backend} backend)`}`,
      subtitle: `${writeSync === null ? '' : `sync '${writeSync}', `}100-byte values; ${machine.cpu.trim()}, ${machine.cores} cores, Node ${machine.node}; ${results.date.slice(0, 10)}`,
      series,
    }),
  )
}
console.log(`\nwrote ${json}${chart ? ` and ${chart}` : ''} in ${seconds.toFixed(0)} s`)
redisServer?.stop()
