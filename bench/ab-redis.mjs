// node bench/ab-redis.mjs <redis URL> <dist/index.js of build B> [dist/index.js of build A] [rounds]
// Two builds of anystore on one Redis server, in one process, in turns: `get` and `set` of
// 100-byte values on a 1,000-entry store each, 10,000 awaited calls a turn, the order of the
// builds alternating from round to round. Prints, per operation, each build's median CPU time
// per call of this process (process.cpuUsage: what the client spends, which waiting for a core
// does not inflate) and the median of the rounds' ratios B ÷ A, with their range. Build A
// defaults to this checkout's dist/.
import { randomBytes } from 'node:crypto'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

const [url, pathB, pathA, roundsText] = process.argv.slice(2)
if (!url || !pathB) {
  console.error('usage: node bench/ab-redis.mjs <redis URL> <build B dist/index.js> [build A] [rounds]')
  process.exit(1)
}
const load = (path) => import(pathToFileURL(resolve(path)).href)
const builds = {
  A: await (pathA ? load(pathA) : import('../dist/index.js')),
  B: await load(pathB),
}
const rounds = Number(roundsText ?? 7)
const CALLS = 10_000
const ENTRIES = 1000
const value = 'x'.repeat(100)
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

const stores = {}
for (const [name, build] of Object.entries(builds)) {
  const store = await build.AnyStore.open({
    redis: { url, name: `bench:ab:${randomBytes(6).toString('hex')}` },
    encryptionKey: build.newKey(),
  })
  await store.run(async (tx) => {
    for (let i = 0; i < ENTRIES; i++) await tx.set(`key:${i}`, value)
  })
  stores[name] = store
}

const ops = {
  get: (store, i) => store.get(`key:${i % ENTRIES}`),
  set: (store, i) => store.set(`key:${i % ENTRIES}`, value),
}

/** CPU µs per call of `CALLS` calls of `op`, after a warm-up. */
async function turn(store, op) {
  for (let i = 0; i < 1000; i++) await op(store, i)
  const start = process.cpuUsage()
  for (let i = 0; i < CALLS; i++) await op(store, i)
  const used = process.cpuUsage(start)
  return (used.user + used.system) / CALLS
}

for (const [opName, op] of Object.entries(ops)) {
  const cpu = { A: [], B: [] }
  const ratios = []
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? ['A', 'B'] : ['B', 'A']
    const got = {}
    for (const name of order) got[name] = await turn(stores[name], op)
    cpu.A.push(got.A)
    cpu.B.push(got.B)
    ratios.push(got.B / got.A)
  }
  const sorted = [...ratios].sort((a, b) => a - b)
  console.log(
    `${opName}: A ${median(cpu.A).toFixed(0)} µs, B ${median(cpu.B).toFixed(0)} µs CPU per call; ` +
      `B ÷ A ${median(ratios).toFixed(2)} (${sorted[0].toFixed(2)}–${sorted.at(-1).toFixed(2)}) over ${rounds} rounds`,
  )
}
for (const store of Object.values(stores)) await store.close()
