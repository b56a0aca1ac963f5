// node bench/redis-phases.mjs <redis URL> [dist/index.js of a build]...
// Where the time of one awaited `get` and one `set` goes on the client: each build's store is
// given a node-redis client whose command methods are timed, so that every call splits into
// the time before its command is handed to node-redis (encoding, sealing, building arguments;
// the typed methods and sendCommand() are timed, whichever the build calls),
// the command itself (node-redis, the network and the server, up to its reply), and the time
// after the reply until the call resolves (opening the entry, decoding). 100-byte values on a
// 1,000-entry store, 5,000 calls per turn after 500 unmeasured ones, 4 turns per build and
// operation, the builds in turns; medians in µs. Builds default to this checkout's dist/.
import { randomBytes } from 'node:crypto'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { createClient } from 'redis'

const [url, ...paths] = process.argv.slice(2)
if (!url) {
  console.error('usage: node bench/redis-phases.mjs <redis URL> [build dist/index.js]...')
  process.exit(1)
}
const builds = paths.length > 0 ? paths : ['dist/index.js']
const CALLS = 5000
const WARM_UP = 500
const TURNS = 4
const ENTRIES = 1000
const value = 'x'.repeat(100)
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

/** The time the last timed command was handed over, and the time its reply came. */
const command = { sent: 0, answered: 0 }
const TIMED = new Set(['hmGet', 'evalSha', 'eval', 'sendCommand'])

function timed(commands) {
  return new Proxy(commands, {
    get(target, property) {
      const value = target[property]
      if (typeof value !== 'function') return value
      if (!TIMED.has(property)) return value.bind(target)
      return (...args) => {
        command.sent = performance.now()
        return value.apply(target, args).then((reply) => {
          command.answered = performance.now()
          return reply
        })
      }
    },
  })
}

async function openStore(path) {
  const client = createClient({ url })
  await client.connect()
  // The store sends its commands through withCommandOptions(): its views are timed.
  const wrapped = new Proxy(client, {
    get(target, property) {
      if (property === 'withCommandOptions') return (options) => timed(target.withCommandOptions(options))
      const value = target[property]
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
  const build = await import(pathToFileURL(resolve(path)).href)
  const store = await build.AnyStore.open({
    redis: { client: wrapped, name: `bench:phases:${randomBytes(6).toString('hex')}` },
    encryptionKey: build.newKey(),
  })
  for (let i = 0; i < ENTRIES; i++) await store.set(`key:${i}`, value)
  return { store, client }
}

const opened = []
for (const path of builds) opened.push({ path, ...(await openStore(path)) })
const phases = new Map()
for (let turn = 0; turn < TURNS; turn++) {
  for (const { path, store } of turn % 2 === 0 ? opened : [...opened].reverse()) {
    for (const op of ['get', 'set']) {
      const call = op === 'get' ? (i) => store.get(`key:${i % ENTRIES}`) : (i) => store.set(`key:${i % ENTRIES}`, value)
      for (let i = 0; i < WARM_UP; i++) await call(i)
      const key = `${path} ${op}`
      const split = phases.get(key) ?? { before: [], command: [], after: [] }
      phases.set(key, split)
      for (let i = 0; i < CALLS; i++) {
        command.sent = 0
        const start = performance.now()
        await call(i)
        const end = performance.now()
        if (command.sent < start) continue // a call that sent no timed command
        split.before.push((command.sent - start) * 1000)
        split.command.push((command.answered - command.sent) * 1000)
        split.after.push((end - command.answered) * 1000)
      }
    }
  }
}
console.log('build / operation: median µs before the command | the command | after its reply')
for (const [key, split] of phases) {
  const fixed = (values) => median(values).toFixed(1)
  console.log(`${key}: ${fixed(split.before)} | ${fixed(split.command)} | ${fixed(split.after)}  (${split.before.length} calls)`)
}
for (const { store, client } of opened) {
  await store.close()
  client.destroy()
}
