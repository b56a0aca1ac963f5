import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createKeyv } from '@keyv/redis'
import { createClient } from 'redis'
import { openStore, redisUrl } from './lib/backends.mjs'
import { clientOptions, REDIS_BENCH_KEY } from './lib/redis-server.mjs'
import { check, drawIndexes, freshDir, keyFor, valueFor } from './lib/data.mjs'
import { formatRatio, formatUs, printTable } from './lib/harness.mjs'
import { releaseTogether, startLineChild } from './lib/line-child.mjs'
import { populate } from './scenarios.mjs'

/**
 * anystore on Redis side by side with what a user would write instead, on the same server in
 * the same run: bare node-redis GET and SET (the floor: one command, one round trip, no
 * encryption) and keyv with @keyv/redis. Every figure is an awaited call at a time, 100-byte
 * values, stores of 1,000 and 100,000 entries. Each ratio is taken within one round, where the
 * contenders are measured one right after the other in an order that rotates from round to
 * round, and reported as the median of the rounds' ratios with their range: on this shared
 * machine one ratio moves by ±15 % from one measurement to the next. Each measurement also
 * records the CPU time per call of this process and of the server, which waiting for a core
 * on a loaded machine does not inflate.
 */

const INCREMENTER = fileURLToPath(new URL('./fixtures/redis-increment.mjs', import.meta.url))

export const PLANS = {
  full: { sizes: [1000, 100_000], rounds: 11, time: 200, batch: 50, processes: 4, increments: 250, warmUp: 100 },
  quick: { sizes: [1000, 100_000], rounds: 7, time: 100, batch: 50, processes: 4, increments: 60, warmUp: 50 },
  // Proves that everything runs and checks its results, in seconds: its increment runs of the
  // four contenders go side by side (starting a process takes seconds on a loaded machine).
  smoke: { sizes: [10, 100], rounds: 2, time: 5, batch: 2, processes: 2, increments: 5, warmUp: 2, together: true },
}

/**
 * bare: node-redis with the options anystore gives its own client, and node-redis's own timer
 * on each command (its default, 5 s): the floor of the targets. bareNoTimer: the same client
 * with that timer off (`commandOptions: { timeout: 0 }`), as anystore sends its commands (it
 * keeps one deadline per connection instead): a stricter floor, shown beside it.
 */
const KINDS = ['anystore', 'bare', 'bareNoTimer', 'keyv']

/** The four stores of one size, each filled with the same `size` entries. */
async function openContenders(size) {
  const location = join(freshDir(`redis-side-${size}`), 'store.anystore')
  const anystore = await openStore('redis', { location, encryptionKey: REDIS_BENCH_KEY })
  await populate(anystore, size)
  const prefix = `anystore-bench-bare:${location}:`
  const bare = createClient(clientOptions(redisUrl()))
  await bare.connect()
  const bareNoTimer = createClient({ ...clientOptions(redisUrl()), commandOptions: { timeout: 0 } })
  await bareNoTimer.connect()
  // Each bare client has keys of its own, filled alike.
  const noTimerPrefix = `anystore-bench-bare-no-timer:${location}:`
  for (const [client, own] of [[bare, prefix], [bareNoTimer, noTimerPrefix]]) {
    for (let at = 0; at < size; at += 1000) {
      const pairs = []
      for (let i = at; i < Math.min(size, at + 1000); i++) pairs.push(own + keyFor(i), valueFor(i))
      await client.mSet(pairs)
    }
  }
  const keyv = createKeyv(redisUrl(), { namespace: `anystore-bench-keyv:${location}`, throwOnErrors: true })
  for (let at = 0; at < size; at += 1000) {
    const entries = []
    for (let i = at; i < Math.min(size, at + 1000); i++) entries.push({ key: keyFor(i), value: valueFor(i) })
    await keyv.setMany(entries)
  }
  return {
    size,
    get: {
      anystore: (key) => anystore.get(key),
      bare: (key) => bare.get(prefix + key),
      bareNoTimer: (key) => bareNoTimer.get(noTimerPrefix + key),
      keyv: (key) => keyv.get(key),
    },
    set: {
      anystore: (key, value) => anystore.set(key, value),
      bare: (key, value) => bare.set(prefix + key, value),
      bareNoTimer: (key, value) => bareNoTimer.set(noTimerPrefix + key, value),
      keyv: (key, value) => keyv.set(key, value),
    },
    async close() {
      await anystore.close()
      bare.destroy()
      bareNoTimer.destroy()
      await keyv.disconnect()
    },
    anystore,
    bare,
  }
}

/**
 * The timed loops of one scenario for one store: `batch` awaited calls on keys drawn from the
 * first 1,000 entries, the same keys in the same order for every store. Writes overwrite
 * existing entries with new values made before the timed part; `last` keeps what each key
 * should hold now, for the checks.
 */
function scenarioOf(name, stores, kind, batch, last) {
  const drawn = Array.from(drawIndexes(4096, Math.min(stores.size, 1000), 7), keyFor)
  const values = Array.from({ length: 4096 }, (_, i) => valueFor(i, 1 + (i % 7)))
  const get = stores.get[kind]
  const set = stores.set[kind]
  let cursor = 0
  const next = () => (cursor = (cursor + 1) & 4095)
  switch (name) {
    case 'get':
      return async () => {
        for (let i = 0; i < batch; i++) {
          const value = await get(drawn[next()])
          if (typeof value !== 'string') throw new Error(`${kind}: get found no value`)
        }
      }
    case 'set':
      return async () => {
        for (let i = 0; i < batch; i++) {
          const at = next()
          await set(drawn[at], values[at])
          last.set(drawn[at], values[at])
        }
      }
    case 'set+get':
      return async () => {
        for (let i = 0; i < batch; i++) {
          const at = next()
          await set(drawn[at], values[at])
          if ((await get(drawn[at])) !== values[at]) throw new Error(`${kind} lost a write`)
          last.set(drawn[at], values[at])
        }
      }
  }
  throw new Error(`unknown scenario ${name}`)
}

/** The server's CPU time so far (user + system), in µs, from INFO cpu. */
async function serverCpuUs(client) {
  const text = await client.info('cpu')
  const field = (name) => Number(new RegExp(`${name}:([0-9.]+)`).exec(text)?.[1] ?? Number.NaN)
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1e6
}

/**
 * Runs `fn` (`ops` awaited calls) for `timeMs` after one warm-up call: per call, the median
 * wall time of its runs, and the CPU time this process and the server spent, in µs. On a
 * machine shared with other work, wall time includes waiting for a core; CPU time does not.
 */
async function sample(fn, ops, timeMs, server) {
  await fn()
  const walls = []
  const cpuBefore = process.cpuUsage()
  const serverBefore = await serverCpuUs(server)
  const start = performance.now()
  while (walls.length < 3 || performance.now() - start < timeMs) {
    const at = performance.now()
    await fn()
    walls.push(((performance.now() - at) * 1000) / ops)
  }
  const cpu = process.cpuUsage(cpuBefore)
  const serverUs = (await serverCpuUs(server)) - serverBefore
  const calls = walls.length * ops
  return {
    wallUs: spread(walls).median,
    clientCpuUs: (cpu.user + cpu.system) / calls,
    serverCpuUs: serverUs / calls,
  }
}

/** The middle value (the upper of the two middles), the range and the quartiles of `values`. */
function spread(values) {
  const sorted = [...values].sort((a, b) => a - b)
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
  return {
    median: at(0.5),
    min: sorted[0],
    max: sorted.at(-1),
    q1: at(0.25),
    q3: at(0.75),
    rounds: values,
  }
}

const formatSpread = (s) =>
  s === undefined ? '-' : `${formatRatio(s.median)} (${s.min.toFixed(2)}–${s.max.toFixed(2)})`

/**
 * Commands the server ran per anystore call, from INFO commandstats around `count` calls:
 * how many round trips and scripts a get and a set cost.
 */
async function commandsPerCall(stores, count) {
  const stats = async () => {
    const text = await stores.bare.info('commandstats')
    const calls = {}
    for (const [, name, n] of text.matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g)) calls[name] = Number(n)
    return calls
  }
  const per = async (fn) => {
    const before = await stats()
    for (let i = 0; i < count; i++) await fn(i)
    const after = await stats()
    const out = {}
    for (const [name, n] of Object.entries(after)) {
      // info itself runs once between the two readings
      const delta = n - (before[name] ?? 0) - (name === 'info' ? 1 : 0)
      if (delta > 0) out[name] = Number((delta / count).toFixed(2))
    }
    return out
  }
  return {
    get: await per((i) => stores.anystore.get(keyFor(i % Math.min(stores.size, 1000)))),
    set: await per((i) => stores.anystore.set(keyFor(i % Math.min(stores.size, 1000)), valueFor(i, 9))),
  }
}

function startIncrementer(kind, name, count, warmUp) {
  return startLineChild(INCREMENTER, [kind, name, String(count), String(warmUp)], `${kind} incrementer`)
}

/** The counter's value after a run of `kind` under `name`, read by the parent. */
async function readCounter(kind, name) {
  if (kind === 'anystore') {
    const store = await openStore('redis', { location: name, encryptionKey: REDIS_BENCH_KEY })
    const value = await store.get('counter')
    await store.close()
    return value ?? 0
  }
  if (kind === 'keyv') {
    const keyv = createKeyv(redisUrl(), { namespace: name, throwOnErrors: true })
    const value = await keyv.get('counter')
    await keyv.disconnect()
    return value ?? 0
  }
  const client = createClient(clientOptions(redisUrl()))
  await client.connect()
  const value = await client.get(`${name}:counter`)
  client.destroy()
  return Number(value ?? 0)
}

/**
 * `processes` processes × `count` increments of one counter by `kind`, released together once
 * each has connected and done `warmUp` increments of a counter of its own: the rate, the
 * attempts it took and the increments lost.
 */
async function contendCounted(kind, processes, count, warmUp) {
  const name = `anystore-bench-inc:${freshDir(`redis-contend-${kind}`)}`
  const children = Array.from({ length: processes }, () => startIncrementer(kind, name, count, warmUp))
  const { reports, wallMs } = await releaseTogether(children, `${kind} incrementer`)
  const total = processes * count
  const final = await readCounter(kind, name)
  return {
    total,
    wallMs,
    opsPerSec: (total / wallMs) * 1000,
    attempts: reports.reduce((n, r) => n + r.attempts, 0),
    final,
    lost: total - final,
  }
}

/**
 * Runs the side-by-side comparison and the 4-process increments, prints their tables and the
 * targets, and returns the figures for the results file.
 */
export async function redisSideBySide(mode, server) {
  const plan = PLANS[mode]
  const scenarios = ['get', 'set', 'set+get']
  const bySize = []
  for (const size of plan.sizes) bySize.push(await openContenders(size))
  const last = new Map(KINDS.map((kind) => [kind, new Map(plan.sizes.map((s) => [s, new Map()]))]))
  /** figures[size][scenario][kind]: one sample per round (see sample()). */
  const figures = {}
  for (const stores of bySize) {
    figures[stores.size] = {}
    for (const scenario of scenarios) {
      figures[stores.size][scenario] = {}
      for (const kind of KINDS) figures[stores.size][scenario][kind] = []
    }
  }
  const ops = (scenario) => (scenario === 'set+get' ? Math.max(1, plan.batch / 2) : plan.batch)
  for (let round = 0; round < plan.rounds; round++) {
    for (const stores of bySize) {
      for (const scenario of scenarios) {
        const batch = ops(scenario)
        for (let t = 0; t < KINDS.length; t++) {
          const kind = KINDS[(round + t) % KINDS.length]
          const fn = scenarioOf(scenario, stores, kind, batch, last.get(kind).get(stores.size))
          figures[stores.size][scenario][kind].push(await sample(fn, batch, plan.time, stores.bare))
        }
      }
    }
  }
  // Every write is where it should be, in every store.
  for (const stores of bySize) {
    for (const kind of KINDS) {
      for (const [key, value] of last.get(kind).get(stores.size)) {
        check((await stores.get[kind](key)) === value, `${kind} holds the last value of ${key}`)
      }
    }
  }
  const commands = await commandsPerCall(bySize[0], 200)
  for (const stores of bySize) await stores.close()

  const wall = (samples) => samples.map((x) => x.wallUs)
  const cpu = (samples) => samples.map((x) => x.clientCpuUs + x.serverCpuUs)
  const ratiosOf = (a, b, of) => spread(of(a).map((x, i) => x / of(b)[i]))
  const rows = []
  for (const size of plan.sizes) {
    for (const scenario of scenarios) {
      const f = figures[size][scenario]
      const us = (kind) => spread(wall(f[kind])).median
      const cpuUs = (kind, side) => spread(f[kind].map((x) => x[side])).median
      rows.push({
        size,
        scenario,
        anystoreUs: us('anystore'),
        bareUs: us('bare'),
        bareNoTimerUs: us('bareNoTimer'),
        keyvUs: us('keyv'),
        cpuUs: Object.fromEntries(
          KINDS.map((k) => [k, { client: cpuUs(k, 'clientCpuUs'), server: cpuUs(k, 'serverCpuUs') }]),
        ),
        anystoreToBare: ratiosOf(f.anystore, f.bare, wall),
        anystoreToBareCpu: ratiosOf(f.anystore, f.bare, cpu),
        anystoreToBareNoTimer: ratiosOf(f.anystore, f.bareNoTimer, wall),
        anystoreToBareNoTimerCpu: ratiosOf(f.anystore, f.bareNoTimer, cpu),
        keyvToBare: ratiosOf(f.keyv, f.bare, wall),
        anystoreToKeyv: ratiosOf(f.anystore, f.keyv, wall),
        anystoreToKeyvCpu: ratiosOf(f.anystore, f.keyv, cpu),
      })
    }
  }
  const [small, large] = plan.sizes
  const flat = (scenario, kind, of) =>
    ratiosOf(figures[large][scenario][kind], figures[small][scenario][kind], of)
  const sized = (n) => n.toLocaleString('en-US')
  const cpuText = ({ client, server }) => `${client.toFixed(1)} + ${server.toFixed(1)}`
  printTable(
    `Redis side by side: awaited calls, 100-byte values, median of ${plan.rounds} alternating rounds; ratios are the median of the rounds' ratios, their range in brackets; CPU µs per call: this process + the server`,
    [
      'entries',
      'scenario',
      'anystore',
      'bare node-redis',
      'bare, no timer',
      '@keyv/redis',
      'anystore ÷ bare',
      'anystore ÷ bare, no timer',
      '@keyv/redis ÷ bare',
      'CPU anystore',
      'CPU bare',
      'CPU keyv',
      'CPU anystore ÷ bare',
    ],
    rows.map((r) => [
      sized(r.size),
      r.scenario,
      formatUs(r.anystoreUs),
      formatUs(r.bareUs),
      formatUs(r.bareNoTimerUs),
      formatUs(r.keyvUs),
      formatSpread(r.anystoreToBare),
      formatSpread(r.anystoreToBareNoTimer),
      formatSpread(r.keyvToBare),
      cpuText(r.cpuUs.anystore),
      cpuText(r.cpuUs.bare),
      cpuText(r.cpuUs.keyv),
      formatSpread(r.anystoreToBareCpu),
    ]),
  )
  console.log(
    `commands per anystore call (INFO commandstats over 200 calls, ${sized(small)} entries; a script's own calls included): ` +
      `get ${JSON.stringify(commands.get)}, set ${JSON.stringify(commands.set)}`,
  )

  // 4 processes incrementing one counter, in turns.
  const incrementKinds = ['anystore', 'bare-cas', 'bare-watch', 'keyv']
  const runsOf = Object.fromEntries(incrementKinds.map((k) => [k, []]))
  const incrementRounds = Math.max(1, Math.ceil(plan.rounds / 3))
  const run = (kind) => contendCounted(kind, plan.processes, plan.increments, plan.warmUp)
  for (let round = 0; round < incrementRounds; round++) {
    if (plan.together) {
      const runs = await Promise.all(incrementKinds.map(run))
      for (const [i, kind] of incrementKinds.entries()) runsOf[kind].push(runs[i])
      continue
    }
    for (let t = 0; t < incrementKinds.length; t++) {
      const kind = incrementKinds[(round + t) % incrementKinds.length]
      runsOf[kind].push(await run(kind))
    }
  }
  for (const kind of ['anystore', 'bare-cas', 'bare-watch']) {
    for (const run of runsOf[kind]) check(run.lost === 0, `${kind}: no lost increments (lost ${run.lost})`)
  }
  const increments = incrementKinds.map((kind) => ({
    kind,
    opsPerSec: spread(runsOf[kind].map((r) => r.opsPerSec)).median,
    lost: Math.max(...runsOf[kind].map((r) => r.lost)),
    attemptsPerIncrement: spread(runsOf[kind].map((r) => r.attempts / r.total)).median,
    increments: runsOf[kind][0].total,
  }))
  const rateRatio = (kind) =>
    spread(runsOf.anystore.map((r, i) => r.opsPerSec / runsOf[kind][i].opsPerSec))
  const what = {
    anystore: 'run(): HMGET of the entry, then COMMIT script (compare-and-set of what it read), retried with backoff',
    'bare-cas': 'GET, then a Lua compare-and-set (EVALSHA) of that value, retried at once',
    'bare-watch': 'WATCH, GET, MULTI/SET/EXEC, retried at once on WatchError',
    keyv: 'get() then set(): keyv has no transaction or compare-and-set',
  }
  printTable(
    `Redis: ${plan.processes} processes × ${plan.increments} read-modify-write increments of one counter (median of ${incrementRounds} rounds)`,
    ['contender', 'increments/s', 'attempts per increment', 'lost updates', 'what it does'],
    increments.map((c) => [
      c.kind,
      c.opsPerSec.toFixed(0),
      c.attemptsPerIncrement.toFixed(2),
      `${c.lost} of ${c.increments}`,
      what[c.kind],
    ]),
  )

  const row = (size, scenario) => rows.find((r) => r.size === size && r.scenario === scenario)
  const none = { median: Number.NaN }
  const targets = [
    [`get ÷ bare GET, ${sized(small)} entries`, row(small, 'get').anystoreToBare, row(small, 'get').anystoreToBareCpu, '≤ 1.3'],
    [`get ÷ bare GET, ${sized(large)} entries`, row(large, 'get').anystoreToBare, row(large, 'get').anystoreToBareCpu, '≤ 1.3'],
    [`set ÷ bare SET, ${sized(small)} entries`, row(small, 'set').anystoreToBare, row(small, 'set').anystoreToBareCpu, '≤ 1.5'],
    [`set ÷ bare SET, ${sized(large)} entries`, row(large, 'set').anystoreToBare, row(large, 'set').anystoreToBareCpu, '≤ 1.5'],
    [`get at ${sized(large)} ÷ get at ${sized(small)}`, flat('get', 'anystore', wall), flat('get', 'anystore', cpu), '≤ 1.25'],
    [`set at ${sized(large)} ÷ set at ${sized(small)}`, flat('set', 'anystore', wall), flat('set', 'anystore', cpu), '≤ 1.25'],
    [`get ÷ bare GET without node-redis's command timer, ${sized(small)} entries`, row(small, 'get').anystoreToBareNoTimer, row(small, 'get').anystoreToBareNoTimerCpu, 'context'],
    [`get ÷ bare GET without node-redis's command timer, ${sized(large)} entries`, row(large, 'get').anystoreToBareNoTimer, row(large, 'get').anystoreToBareNoTimerCpu, 'context'],
    [`set ÷ bare SET without node-redis's command timer, ${sized(small)} entries`, row(small, 'set').anystoreToBareNoTimer, row(small, 'set').anystoreToBareNoTimerCpu, 'context'],
    [`set ÷ bare SET without node-redis's command timer, ${sized(large)} entries`, row(large, 'set').anystoreToBareNoTimer, row(large, 'set').anystoreToBareNoTimerCpu, 'context'],
    [`  bare GET at ${sized(large)} ÷ at ${sized(small)}`, flat('get', 'bare', wall), flat('get', 'bare', cpu), 'context'],
    [`  bare SET at ${sized(large)} ÷ at ${sized(small)}`, flat('set', 'bare', wall), flat('set', 'bare', cpu), 'context'],
    [`set+get ÷ bare SET+GET, ${sized(small)} entries`, row(small, 'set+get').anystoreToBare, row(small, 'set+get').anystoreToBareCpu, 'context'],
    [`get ÷ @keyv/redis get, ${sized(small)} entries`, row(small, 'get').anystoreToKeyv, row(small, 'get').anystoreToKeyvCpu, 'context'],
    [`set ÷ @keyv/redis set, ${sized(small)} entries`, row(small, 'set').anystoreToKeyv, row(small, 'set').anystoreToKeyvCpu, 'context'],
    [`${plan.processes}-process increments: anystore ÷ bare compare-and-set (rate)`, rateRatio('bare-cas'), none, 'context'],
    [`${plan.processes}-process increments: anystore ÷ bare WATCH/MULTI (rate)`, rateRatio('bare-watch'), none, 'context'],
  ].map(([name, ratio, cpuRatio, goal]) => {
    const bound = Number(goal.replace(/[^0-9.]/g, ''))
    return {
      name,
      ...ratio,
      cpu: cpuRatio,
      goal,
      met: goal === 'context' ? undefined : ratio.median <= bound,
      metByCpu: goal === 'context' ? undefined : cpuRatio.median <= bound,
    }
  })
  const yes = (met) => (met === undefined ? '-' : met ? 'yes' : 'NO')
  printTable(
    'Redis targets (median of the per-round ratios; range over the rounds; quartiles; the same ratio of CPU time, this process + the server)',
    ['target', 'median', 'range', 'quartiles', 'goal', 'met', 'CPU ratio', 'CPU range', 'met by CPU'],
    targets.map((t) => [
      t.name,
      t.median.toFixed(2),
      `${t.min.toFixed(2)}–${t.max.toFixed(2)}`,
      `${t.q1.toFixed(2)}–${t.q3.toFixed(2)}`,
      t.goal,
      yes(t.met),
      Number.isNaN(t.cpu.median) ? '-' : t.cpu.median.toFixed(2),
      Number.isNaN(t.cpu.median) ? '-' : `${t.cpu.min.toFixed(2)}–${t.cpu.max.toFixed(2)}`,
      yes(t.metByCpu),
    ]),
  )
  return {
    server: server && {
      url: server.url,
      version: server.version,
      startedBySuite: server.startedBySuite,
      appendonly: server.appendonly,
      appendfsync: server.appendfsync,
    },
    clients: {
      bare: 'node-redis createClient() with the options anystore gives its own client; GET/SET of plain string keys',
      bareNoTimer: 'the same, with commandOptions { timeout: 0 }: no timer of node-redis on each command, as anystore sends its own commands',
      keyv: 'createKeyv(url, { namespace }) of @keyv/redis (its own @redis/client)',
    },
    rounds: plan.rounds,
    batch: plan.batch,
    sizes: plan.sizes,
    figures,
    rows,
    commandsPerCall: commands,
    increments,
    incrementRuns: runsOf,
    targets,
  }
}
