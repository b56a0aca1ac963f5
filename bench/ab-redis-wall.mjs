// node bench/ab-redis-wall.mjs <redis URL> <dist/index.js of build A> <dist/index.js of build B> [rounds] [get|set]
// The wall time of two builds of anystore and of a bare node-redis client on one Redis server,
// in one process, in turns: `set` (or `get`) of 100-byte values on a 1,000-entry store each,
// 2,000 awaited calls a turn after 200 unmeasured ones, the order of the three rotating from
// round to round. Prints each one's median wall and CPU time per call, each build's median
// ratio to the bare client of the same round (the Redis target's ratio), and the median of the
// rounds' ratios B ÷ A. Where bench/ab-redis.mjs compares what the client spends, this compares
// what a caller waits, which is what the targets measure; on a shared machine one ratio moves
// by several per cent between runs, so run it more than once.
import { randomBytes } from 'node:crypto'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { createClient } from 'redis'

const [url, pathA, pathB, roundsText, opText] = process.argv.slice(2)
if (!url || !pathA || !pathB) {
  console.error('usage: node bench/ab-redis-wall.mjs <redis URL> <build A dist/index.js> <build B dist/index.js> [rounds] [get|set]')
  process.exit(1)
}
const op = opText ?? 'set'
if (op !== 'get' && op !== 'set') throw new Error(`unknown operation ${op}: get or set`)
const rounds = Number(roundsText ?? 11)
const CALLS = 2000
const WARM_UP = 200
const ENTRIES = 1000
const value = 'x'.repeat(100)
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

async function openStore(path) {
  const build = await import(pathToFileURL(resolve(path)).href)
  const store = await build.AnyStore.open({
    redis: { url, name: `bench:ab-wall:${randomBytes(6).toString('hex')}` },
    encryptionKey: build.newKey(),
  })
  for (let i = 0; i < ENTRIES; i++) await store.set(`key:${i}`, value)
  return store
}

const bare = createClient({ url })
await bare.connect()
const prefix = `bench:ab-wall:bare:${randomBytes(6).toString('hex')}:`
for (let i = 0; i < ENTRIES; i++) await bare.set(`${prefix}${i}`, value)
const stores = { A: await openStore(pathA), B: await openStore(pathB) }

const calls = {
  bare: op === 'set' ? (i) => bare.set(`${prefix}${i % ENTRIES}`, value) : (i) => bare.get(`${prefix}${i % ENTRIES}`),
  A: op === 'set' ? (i) => stores.A.set(`key:${i % ENTRIES}`, value) : (i) => stores.A.get(`key:${i % ENTRIES}`),
  B: op === 'set' ? (i) => stores.B.set(`key:${i % ENTRIES}`, value) : (i) => stores.B.get(`key:${i % ENTRIES}`),
}
const results = { bare: [], A: [], B: [] }
const names = Object.keys(calls)
for (let round = 0; round < rounds; round++) {
  const order = names.map((_, i) => names[(i + round) % names.length])
  for (const name of order) {
    const call = calls[name]
    for (let i = 0; i < WARM_UP; i++) await call(i)
    const cpu = process.cpuUsage()
    const start = performance.now()
    for (let i = 0; i < CALLS; i++) await call(i)
    const wallUs = ((performance.now() - start) * 1000) / CALLS
    const used = process.cpuUsage(cpu)
    results[name].push({ wallUs, cpuUs: (used.user + used.system) / CALLS })
  }
}

const ratios = (of, to) => results[of].map((r, i) => r.wallUs / results[to][i].wallUs)
console.log(`${op}, ${rounds} rounds of ${CALLS} calls; medians; wall and CPU µs per call (CPU: this process)`)
for (const name of names) {
  const wall = median(results[name].map((r) => r.wallUs)).toFixed(1)
  const cpu = median(results[name].map((r) => r.cpuUs)).toFixed(1)
  const toBare = name === 'bare' ? '' : `  ÷ bare ${median(ratios(name, 'bare')).toFixed(3)}`
  console.log(`${name.padEnd(4)}  wall ${wall}  cpu ${cpu}${toBare}`)
}
const ba = ratios('B', 'A')
console.log(`B ÷ A wall ${median(ba).toFixed(3)} (${Math.min(...ba).toFixed(2)}–${Math.max(...ba).toFixed(2)})`)

await stores.A.close()
await stores.B.close()
await bare.del(Array.from({ length: ENTRIES }, (_, i) => `${prefix}${i}`))
bare.destroy()
