// Prints the Markdown tables of docs/PERFORMANCE.md from a results file:
//   node bench/report.mjs [bench/results/latest.json]
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { formatRatio, formatUs } from './lib/harness.mjs'

const path = process.argv[2] ?? fileURLToPath(new URL('./results/latest.json', import.meta.url))
const r = JSON.parse(readFileSync(path, 'utf8'))
const m = r.machine
const row = (cells) => `| ${cells.join(' | ')} |`
const table = (header, rows) =>
  [row(header), row(header.map(() => '---')), ...rows.map(row)].join('\n')

console.log(
  `Machine: ${m.cpu.trim()}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}, ${m.fileSystem}. ` +
    `Backend: ${r.backend ?? 'file'}. Date: ${r.date.slice(0, 10)}. Command: \`${r.command}\` (${r.durationSeconds} s).\n`,
)
for (const { scenario, reason } of r.skipped ?? []) console.log(`- Skipped: ${scenario} (${reason}).`)
if (r.skipped?.length > 0) console.log('')

console.log('### Side by side\n')
console.log(
  table(
    ['scenario', 'anystore', 'lmdb-js 3.5', 'conf 15', 'Go original', 'floor'],
    r.compare.rows.map((x) => [
      x.scenario,
      formatUs(x.anystore),
      `${formatUs(x.lmdb)} (${formatRatio(x.anystore / x.lmdb)})`,
      `${formatUs(x.conf)} (${formatRatio(x.anystore / x.conf)})`,
      x.go ? `${formatUs(x.go)} (${formatRatio(x.anystore / x.go)})` : '-',
      formatUs(x.floor),
    ]),
  ),
)
console.log(
  '\nIn brackets: anystore ÷ that store (below 1: anystore is faster). Floor: for the read, an ' +
    'awaited async call that preads one byte and returns a value it holds; for the writes, a raw ' +
    'durable replace of as many bytes as the store file (encrypt, write, fsync, rename, directory fsync).\n',
)
const storeLabels = {
  lmdb: 'lmdb (transactionSync, which returns before its fdatasync)',
  'lmdb-flushed': 'lmdb, each increment also awaiting `db.flushed` (durable when done, like `run()`)',
  floor: 'floor: flock + read + durable replace, nothing else',
}
if (r.compare.contention.length > 0) {
  console.log(
    table(
      ['4 processes, read-modify-write increments', 'transactions/s', 'lost updates'],
      [
        ...r.compare.contention.map((c) => [
          storeLabels[c.store] ?? c.store,
          c.opsPerSec.toFixed(0),
          `${c.lost} of ${c.increments}`,
        ]),
        [
          'Go original `Run` (measured earlier on this machine)',
          '-',
          `${r.compare.goLostOf1000} of 1000`,
        ],
      ],
    ),
  )
}

if (r.floorTargets?.length > 0) {
  console.log('\n### Targets against their floors\n')
  console.log(
    'Alternating rounds; the ratio is the median of the per-round ratios (anystore ÷ floor).\n',
  )
  const figure = (value, unit) => (unit === 'µs' ? formatUs(value) : value.toFixed(0))
  console.log(
    table(
      ['target', 'anystore', 'floor', 'ratio', 'min–max', 'IQR', 'rounds', 'goal', 'met'],
      r.floorTargets.map((t) => [
        t.name,
        figure(t.anystore, t.unit),
        figure(t.floor, t.unit),
        formatRatio(t.ratio),
        `${t.min.toFixed(2)}–${t.max.toFixed(2)}`,
        `${t.q1.toFixed(2)}–${t.q3.toFixed(2)}`,
        t.rounds,
        t.goal,
        t.met ? 'yes' : '**no**',
      ]),
    ),
  )
}

console.log('\n### Targets\n')
console.log(
  table(
    ['target', 'measured', 'goal', 'met'],
    r.targets.map((t) => [
      t.name.trim(),
      t.value === undefined || t.value === null ? '-' : Number(t.value.toFixed(2)),
      t.goal,
      t.met === undefined || t.met === null ? '' : t.met ? 'yes' : '**no**',
    ]),
  ),
)

console.log(
  '\n### Every operation (sync always, compress off; ratio to the limit of the same run)\n',
)
const sizes = [...new Set(r.configurations.map((c) => c.limits.size))]
const pick = (size, sync, compress) =>
  r.configurations.find(
    (c) => c.limits.size === size && c.limits.sync === sync && c.limits.compress === compress,
  )
for (const [sync, compress] of [
  ['always', false],
  ['never', false],
  ['always', true],
  ['never', true],
  [null, null],
]) {
  const configs = sizes.map((s) => pick(s, sync, compress)).filter(Boolean)
  if (configs.length === 0) continue
  console.log(
    sync === null
      ? '\n#### sync and compress n/a\n'
      : `\n#### sync '${sync}', compress ${compress}\n`,
  )
  const ops = configs[0].results.map((x) => [x.operation, x.flavour])
  console.log(
    table(
      ['operation', 'keys', ...configs.map((c) => `${c.limits.size.toLocaleString('en')} entries`)],
      [
        ...ops.map(([op, flavour]) => [
          op,
          flavour,
          ...configs.map((c) => {
            const x = c.results.find((y) => y.operation === op && y.flavour === flavour)
            return x.ratio === undefined
              ? formatUs(x.medianUs)
              : `${formatUs(x.medianUs)} (${formatRatio(x.ratio)})`
          }),
        ]),
        ...(configs[0].limits.fileSize === undefined ? [] : fileRows(configs)),
      ],
    ),
  )
}

/** The limits and file sizes under a table of a backend that keeps a file. */
function fileRows(configs) {
  return [
    [
      '*limits*',
      'stat / durable write / read + decrypt',
      ...configs.map(
        (c) =>
          `${formatUs(c.limits.statUs)} / ${formatUs(c.limits.rawWriteUs)} / ${formatUs(c.limits.rawReadUs)}`,
      ),
    ],
    ['*file size*', '', ...configs.map((c) => `${(c.limits.fileSize / 1024).toFixed(0)} KiB`)],
  ]
}

const g = r.groupCommit
if (g) {
  console.log(
    `\nGroup commit: ${g.writes} concurrent \`set()\`s take ${g.concurrentMs.toFixed(1)} ms, ` +
      `${g.writes} sequential awaited ones ${g.sequentialMs.toFixed(0)} ms: ${formatRatio(g.speedup)} faster.\n`,
  )
}
if (r.processes.length > 0) {
  console.log(
    table(
      ['processes doing run() increments (sync always)', 'transactions/s', 'lost updates'],
      r.processes.map((p) => [p.processes, p.opsPerSec.toFixed(0), `${p.lost} of ${p.increments}`]),
    ),
  )
}
const c = r.coldOpen
if (c) {
  console.log(
    `\nCold open (open + first get) of ${c.size.toLocaleString('en')} entries (${(c.fileSize / 2 ** 20).toFixed(1)} MiB): ` +
      `${formatUs(c.anystoreUs)}; read + decrypt of the same bytes ${formatUs(c.readDecryptUs)} ` +
      `(${formatRatio(c.anystoreUs / c.readDecryptUs)}); lock + JSON store ${formatUs(c.jsonUs)} ` +
      `(${formatRatio(c.anystoreUs / c.jsonUs)}); peak RSS above the process's baseline ` +
      `${(c.peakRssAboveBaseline / 2 ** 20).toFixed(1)} MiB (${formatRatio(c.peakRssAboveBaseline / c.fileSize)} the file).`,
  )
}
