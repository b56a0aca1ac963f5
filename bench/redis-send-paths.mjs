// node bench/redis-send-paths.mjs <redis URL> [rounds]
// What node-redis's typed command methods cost over sendCommand() on a client of one server:
// the same EVALSHA (of a script that returns at once, with the argument shape of a lone set:
// 6 keys, 8 arguments, two of them Buffers) and the same HMGET (a store's get: the id and a
// 16-byte field), each sent both ways, in turns, 3,000 awaited calls a turn after 200
// unmeasured ones, with the store's command options (Buffers for bulk strings, no per-command
// timer). Prints each way's median wall and CPU time per call (CPU: this process) and the
// median of the rounds' wall ratios to the typed method.
import { createHash, randomBytes } from 'node:crypto'
import { createClient } from 'redis'

const [url, roundsText] = process.argv.slice(2)
if (!url) {
  console.error('usage: node bench/redis-send-paths.mjs <redis URL> [rounds]')
  process.exit(1)
}
const rounds = Number(roundsText ?? 11)
const CALLS = 3000
const WARM_UP = 200
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

const client = createClient({ url })
await client.connect()
const view = client.withCommandOptions({ typeMapping: { 36: Buffer }, timeout: 0 })
const script = "return {'ok', ''}"
await client.scriptLoad(script)
const sha = createHash('sha1').update(script).digest('hex')
const prefix = `bench:send-paths:{${randomBytes(4).toString('hex')}}:`
const keys = ['meta', 'entries', 'order', 'commits', 'commits-2', 'expiry'].map((name) => prefix + name)
const field = randomBytes(16)
const sealed = randomBytes(150)
const args = () => ['store id', randomBytes(16).toString('base64url'), String(Date.now()), '', '', 's', field, sealed]

const ways = {
  'EVALSHA, typed evalSha()': () => view.evalSha(sha, { keys, arguments: args() }),
  'EVALSHA, sendCommand()': () => view.sendCommand(['EVALSHA', sha, String(keys.length), ...keys, ...args()]),
  'HMGET, typed hmGet()': () => view.hmGet(keys[1], ['id', field]),
  'HMGET, sendCommand()': () => view.sendCommand(['HMGET', keys[1], 'id', field]),
}
const results = Object.fromEntries(Object.keys(ways).map((name) => [name, []]))
const names = Object.keys(ways)
for (let round = 0; round < rounds; round++) {
  for (const name of round % 2 === 0 ? names : [...names].reverse()) {
    const call = ways[name]
    for (let i = 0; i < WARM_UP; i++) await call()
    const cpu = process.cpuUsage()
    const start = performance.now()
    for (let i = 0; i < CALLS; i++) await call()
    const wallUs = ((performance.now() - start) * 1000) / CALLS
    const used = process.cpuUsage(cpu)
    results[name].push({ wallUs, cpuUs: (used.user + used.system) / CALLS })
  }
}
console.log(`${rounds} rounds of ${CALLS} calls; medians, µs per call`)
for (const [i, name] of names.entries()) {
  const typed = names[i - (i % 2)]
  const ratio = median(results[name].map((r, round) => r.wallUs / results[typed][round].wallUs))
  const wall = median(results[name].map((r) => r.wallUs)).toFixed(1)
  const cpu = median(results[name].map((r) => r.cpuUs)).toFixed(1)
  console.log(`${name.padEnd(26)} wall ${wall}  cpu ${cpu}  wall ÷ typed ${ratio.toFixed(3)}`)
}
client.destroy()
