// What a command-line user feels: whole processes, timed from outside, in alternating pairs.
//   - `node -e 0` against `node -e "import('anystore-kv')"`: the cost of importing the package;
//   - `node -e 0` against `anystore get FILE KEY`: the CLI's one-key read as a ratio.
// The package measured is the one `npm pack` makes from this checkout's dist/ (the suite's
// caller builds it), laid out in a temporary project as `npm install` lays out a tarball. Its
// dependencies are linked from this checkout's node_modules, so no compiler or network is
// needed; what ships, and only that, is what these processes load from anystore-kv.
// `node bench/startup.mjs [--quick|--smoke]` runs this section alone.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { printTable } from './lib/harness.mjs'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const ROUNDS = { full: 40, quick: 15, smoke: 1 }
const TIME = '/usr/bin/time'

/** Lays the packed package out in a temporary project; returns what the timed commands need. */
function installPacked(work) {
  const out = join(work, 'pack')
  mkdirSync(out)
  // --ignore-scripts: prepack would rebuild; the dist/ on disk is the build under measurement.
  const [report] = JSON.parse(
    execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', out, '--loglevel=error'], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  )
  const project = join(work, 'project')
  const target = join(project, 'node_modules', 'anystore-kv')
  mkdirSync(target, { recursive: true })
  writeFileSync(join(project, 'package.json'), '{"name":"startup","private":true,"type":"module"}\n')
  execFileSync('tar', ['-xzf', join(out, report.filename), '-C', target, '--strip-components=1'])
  const pkg = JSON.parse(readFileSync(join(target, 'package.json'), 'utf8'))
  for (const name of [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.optionalDependencies ?? {})]) {
    const from = join(ROOT, 'node_modules', name)
    if (!existsSync(from)) continue
    const to = join(project, 'node_modules', name)
    mkdirSync(join(to, '..'), { recursive: true })
    symlinkSync(from, to)
  }
  // The floor of any import of an encrypted file store: an ES module that loads just the
  // built-ins such a store cannot do without.
  const floor = join(project, 'node_modules', 'startup-floor')
  mkdirSync(floor)
  writeFileSync(join(floor, 'package.json'), '{"name":"startup-floor","type":"module","exports":"./index.js"}\n')
  writeFileSync(join(floor, 'index.js'), "import 'node:crypto'\nimport 'node:fs'\n")
  return { project, bin: join(target, pkg.bin.anystore) }
}

/**
 * One whole process: wall milliseconds, and CPU milliseconds (user + system) where
 * /usr/bin/time can tell them, since on a loaded machine a process's wall time says more about
 * its neighbours than about it. Throws if the process fails.
 */
function timed(command, args, options) {
  const report = join(options.cwd, '.time')
  const viaTime = existsSync(TIME)
  const [file, argv] = viaTime ? [TIME, ['-o', report, '-f', '%U %S', command, ...args]] : [command, args]
  const start = process.hrtime.bigint()
  const result = spawnSync(file, argv, { ...options, stdio: ['ignore', 'pipe', 'pipe'] })
  const ms = Number(process.hrtime.bigint() - start) / 1e6
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited ${result.status}: ${result.stderr}`)
  }
  const cpuMs = viaTime
    ? readFileSync(report, 'utf8').trim().split(/\s+/).slice(-2).reduce((sum, s) => sum + Number(s) * 1000, 0)
    : undefined
  return { ms, cpuMs, stdout: result.stdout.toString() }
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}
const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.round(q * (sorted.length - 1)))]
}

/** Runs `a` and `b` in turn, `rounds` times after a warm-up pair; both figures of each pair. */
function pairs(rounds, a, b) {
  if (rounds > 1) {
    a()
    b()
  }
  const rows = []
  for (let i = 0; i < rounds; i++) {
    // Alternate which goes first, so neither always runs on a cache the other just warmed.
    if (i % 2 === 0) {
      const x = a()
      rows.push({ a: x, b: b() })
    } else {
      const y = b()
      rows.push({ a: a(), b: y })
    }
  }
  return { wall: summary(rows, 'ms'), cpu: rows[0].a.cpuMs === undefined ? undefined : summary(rows, 'cpuMs') }
}

/** Medians of one figure over the pairs, the median per-pair difference and ratio, and its quartiles. */
function summary(rows, field) {
  const ratios = rows.map((r) => r.b[field] / r.a[field])
  return {
    aMs: median(rows.map((r) => r.a[field])),
    bMs: median(rows.map((r) => r.b[field])),
    diffMs: median(rows.map((r) => r.b[field] - r.a[field])),
    ratio: median(ratios),
    spread: [quantile(ratios, 0.25), quantile(ratios, 0.75)],
  }
}

/**
 * Measures the package's startup costs; prints a table and returns the figures:
 * importMs (median of per-pair differences) and cliRatio (median of per-pair ratios), with the
 * quartiles of each pair's ratio as the spread.
 */
export function measureStartup(mode = 'full') {
  const rounds = ROUNDS[mode]
  const work = mkdtempSync(join(tmpdir(), 'anystore-startup-'))
  try {
    const { project, bin } = installPacked(work)
    const env = { ...process.env, ANYSTORE_KEY: undefined, NODE_OPTIONS: undefined }
    const key = timed(process.execPath, [bin, 'newkey'], { cwd: project, env }).stdout.trim()
    const withKey = { ...env, ANYSTORE_KEY: key }
    const file = join(project, 'startup.db')
    timed(process.execPath, [bin, 'set', file, 'greeting', 'hello'], { cwd: project, env: withKey })
    const node = () => timed(process.execPath, ['-e', '0'], { cwd: project, env })
    const load = () => timed(process.execPath, ['-e', "import('anystore-kv')"], { cwd: project, env })
    const floor = () => timed(process.execPath, ['-e', "import('startup-floor')"], { cwd: project, env })
    const get = () => {
      const run = timed(process.execPath, [bin, 'get', file, 'greeting'], { cwd: project, env: withKey })
      if (run.stdout !== '"hello"\n') throw new Error(`anystore get printed ${JSON.stringify(run.stdout)}`)
      return run
    }
    const imported = pairs(rounds, node, load)
    const floored = pairs(rounds, node, floor)
    const cli = pairs(rounds, node, get)
    const row = (name, figure, s) => [
      name,
      figure,
      s.aMs.toFixed(1),
      s.bMs.toFixed(1),
      s.diffMs.toFixed(1),
      s.ratio.toFixed(2),
      `${s.spread[0].toFixed(2)}–${s.spread[1].toFixed(2)}`,
    ]
    const rows = []
    for (const [name, p] of [
      [`node -e "import('anystore-kv')"`, imported],
      ['  floor: import of node:crypto, node:fs', floored],
      ['anystore get FILE KEY', cli],
    ]) {
      rows.push(row(name, 'wall', p.wall))
      if (p.cpu !== undefined) rows.push(row('', 'cpu', p.cpu))
    }
    printTable(
      `startup: whole processes against node -e 0, ${rounds} alternating pairs (medians; spread: quartiles of the pairs' ratios)`,
      ['process', 'time', 'node -e 0 ms', 'process ms', 'difference ms', 'ratio', 'spread'],
      rows,
    )
    return {
      rounds,
      import: imported,
      floor: floored,
      cliGet: cli,
      importMs: imported.wall.diffMs,
      cliRatio: cli.wall.ratio,
    }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const mode = process.argv.includes('--smoke') ? 'smoke' : process.argv.includes('--quick') ? 'quick' : 'full'
  measureStartup(mode)
}
