// node bench/ab-builds.mjs <dist/index.js of build B> [dist/index.js of build A] [rounds]
// Two builds of anystore on the file backend in one process, in turns, each figure beside its
// floor measured in the same turn: set then get of one key on an empty store and set of one
// key on a 10,000-entry store (floor: a raw durable replace of as many bytes as that build's
// file, as in bench/compare.mjs), and a cold open + first get of 100,000 entries (floor: read
// + decrypt of as many bytes). Build A defaults to this checkout's dist/. Prints, per build and
// row, the median over the rounds of each turn's median in µs and of its ratio to the floor.
//
// Separate runs of the suite on a shared machine can differ by more than two builds do (fsync
// latency moves several-fold within minutes); short turns with the order rotated each round
// expose both builds to the same minutes.
import { statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { openStore, removeStores } from './lib/backends.mjs'
import { rawReader, rawWriter } from './lib/baselines.mjs'
import { freshDir, keyFor, valueFor } from './lib/data.mjs'
import { populate } from './scenarios.mjs'

const [pathB, pathA, roundsText] = process.argv.slice(2)
if (!pathB) {
  console.error('usage: node bench/ab-builds.mjs <build B dist/index.js> [build A] [rounds]')
  process.exit(1)
}
const load = (path) => import(pathToFileURL(resolve(path)).href)
const builds = {
  A: await (pathA ? load(pathA) : import('../dist/index.js')),
  B: await load(pathB),
}
const rounds = Number(roundsText ?? 7)

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

/** Median µs of `count` calls of `fn`, after two unmeasured ones. */
async function turn(fn, count) {
  await fn()
  await fn()
  const times = []
  for (let i = 0; i < count; i++) {
    const start = performance.now()
    await fn()
    times.push((performance.now() - start) * 1000)
  }
  return median(times)
}

let round = 0
async function commitRow(build, size) {
  const dir = freshDir(`ab-commit-${size}`)
  const location = join(dir, 'store.anystore')
  const store = await openStore('file', { location, sync: 'always', build })
  await populate(store, size)
  const fn = async () => {
    const value = valueFor(1, ++round)
    await store.set('one', value)
    if (size === 0 && (await store.get('one')) !== value) throw new Error('lost a write')
  }
  await fn()
  const writer = rawWriter(dir, statSync(location).size, true)
  return {
    fn,
    floor: () => writer.write(),
    count: 30,
    close: async () => {
      await store.close()
      writer.close()
    },
  }
}

async function coldRow(build, size) {
  const dir = freshDir(`ab-cold-${size}`)
  const location = join(dir, 'store.anystore')
  const store = await openStore('file', { location, sync: 'always', build })
  await populate(store, size)
  await store.close()
  const last = keyFor(size - 1)
  const readDecrypt = rawReader(dir, statSync(location).size)
  return {
    fn: async () => {
      const s = await openStore('file', { location, build })
      if ((await s.get(last)) !== valueFor(size - 1)) throw new Error('cold open read wrong')
      await s.close()
    },
    floor: () => readDecrypt(),
    count: 9,
    close: () => {},
  }
}

const contenders = []
for (const [name, build] of Object.entries(builds)) {
  contenders.push({ name, row: 'set then get, empty store', ...(await commitRow(build, 0)) })
  contenders.push({ name, row: 'set, 10,000 entries', ...(await commitRow(build, 10_000)) })
  contenders.push({
    name,
    row: 'cold open + first get, 100,000 entries',
    ...(await coldRow(build, 100_000)),
  })
}

const figures = contenders.map(() => ({ us: [], ratio: [] }))
for (let r = 0; r < rounds; r++) {
  for (let k = 0; k < contenders.length; k++) {
    const i = (r + k) % contenders.length
    const c = contenders[i]
    const us = await turn(c.fn, c.count)
    const floor = await turn(c.floor, c.count)
    figures[i].us.push(us)
    figures[i].ratio.push(us / floor)
  }
}
for (const [i, c] of contenders.entries()) {
  console.log(
    JSON.stringify({
      build: c.name,
      row: c.row,
      medianUs: Math.round(median(figures[i].us)),
      ratioToFloor: Number(median(figures[i].ratio).toFixed(2)),
      ratios: figures[i].ratio.map((x) => Number(x.toFixed(2))),
    }),
  )
  await c.close()
}
removeStores()
