// node bench/ab-no-ttl.mjs [dist/index.js of a build] : what reads of a 100,000-key store that
// uses no expiry cost: median ns of get() of a key, has() and size(), ms of keys() and of a cold
// open (CPU time, not wall time), for a file store and an in-memory one (mem*: without the
// file's per-read freshness check, which would hide a few ns). Run it for two builds in turn to
// see whether expiry support slowed down stores that do not use it.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { openStore } from './lib/backends.mjs'

const build = await import(
  process.argv[2] ? pathToFileURL(resolve(process.argv[2])).href : '../dist/index.js'
)
const COUNT = 100_000
const dir = mkdtempSync(join(tmpdir(), 'anystore-ab-no-ttl-'))
const file = join(dir, 'store')
const encryptionKey = build.newKey()
const openFile = () => openStore('file', { location: file, encryptionKey, sync: 'never', build })
const seeded = await openFile()
await seeded.run(async (tx) => {
  for (let i = 0; i < COUNT; i++) await tx.set(`key-${i}`, `value ${i}`)
})
await seeded.close()

/**
 * The median over 9 rounds of the CPU time (user + system) per call, in ns: on a machine busy
 * with other work, wall time measures the scheduler more than the code.
 */
async function median(fn, n) {
  for (let i = 0; i < Math.min(n, 20_000); i++) await fn(i)
  const rounds = []
  for (let r = 0; r < 9; r++) {
    const before = process.cpuUsage()
    for (let i = 0; i < n / 9; i++) await fn(i)
    const used = process.cpuUsage(before)
    rounds.push(((used.user + used.system) * 1000) / (n / 9))
  }
  return rounds.sort((a, b) => a - b)[4]
}

const cpu0 = process.cpuUsage()
const store = await openFile()
const opened = process.cpuUsage(cpu0)
const openMs = (opened.user + opened.system) / 1000
const keys = Array.from({ length: 4096 }, (_, i) => `key-${(i * 7919) % COUNT}`)
const out = {
  openMs: Math.round(openMs * 10) / 10,
  getNs: Math.round(await median((i) => store.get(keys[i & 4095]), 180_000)),
  hasNs: Math.round(await median((i) => store.has(keys[i & 4095]), 180_000)),
  sizeNs: Math.round(await median(() => store.size(), 180_000)),
  keysMs: Math.round((await median(() => store.keys(), 45)) / 1e4) / 100,
}
const memory = await openStore('memory', { location: join(dir, 'memory'), build })
await memory.run(async (tx) => {
  for (let i = 0; i < COUNT; i++) await tx.set(`key-${i}`, `value ${i}`)
})
out.memGetNs = Math.round(await median((i) => memory.get(keys[i & 4095]), 900_000))
out.memHasNs = Math.round(await median((i) => memory.has(keys[i & 4095]), 900_000))
out.memSizeNs = Math.round(await median(() => memory.size(), 900_000))
console.log(JSON.stringify(out))
await memory.close()
await store.close()
rmSync(dir, { recursive: true, force: true })
