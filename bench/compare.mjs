import { closeSync, openSync, readSync, statSync } from 'node:fs'
import { join } from 'node:path'
import Conf from 'conf'
import { open as openLmdb } from 'lmdb'
import { contend } from './concurrency.mjs'
import { backendInfo, openStore } from './lib/backends.mjs'
import { rawWriter } from './lib/baselines.mjs'
import { check, freshDir, keyFor, valueFor } from './lib/data.mjs'
import { measure } from './lib/harness.mjs'
import { populate } from './scenarios.mjs'

/**
 * The same scenarios against what users would pick instead: lmdb-js (durable, multi-process,
 * memory-mapped) and conf (a JSON file written atomically, no cross-process lock), plus the Go
 * original's figures measured on this kind of machine (docs/PERFORMANCE.md gives the source).
 */
export const GO_ORIGINAL = {
  'set then get of one key (durable)': 700,
  'get, unchanged store of 1,000 entries': 1800,
  'set, store of 10,000 entries (durable)': 54_000,
  'cold open + first get, 100,000 entries': 224_000,
  lostOf1000: 745,
}

const storeKinds = ['anystore', 'lmdb', 'conf']

async function openContenders(dir, size, backend) {
  const anystore = await openStore(backend, {
    location: join(dir, 'store.anystore'),
    sync: 'always',
  })
  await populate(anystore, size)
  const lmdb = openLmdb({ path: join(dir, 'lmdb') })
  await lmdb.transaction(() => {
    for (let i = 0; i < size; i++) lmdb.put(keyFor(i), valueFor(i))
  })
  const conf = new Conf({ cwd: join(dir, 'conf'), projectName: 'bench', configName: 'store' })
  if (size > 0)
    conf.store = Object.fromEntries(
      Array.from({ length: size }, (_, i) => [keyFor(i), valueFor(i)]),
    )
  return { anystore, lmdb, conf }
}

async function closeContenders({ anystore, lmdb }) {
  await anystore.close()
  await lmdb.close()
}

/**
 * The least a read can cost in a store whose get() returns a promise and checks the file with
 * one system call: an awaited async call that preads one byte of an open file and returns a
 * value it already holds. No lookup, no decoding.
 */
function readFloor(file, batch) {
  const fd = openSync(file, 'r')
  const byte = Buffer.alloc(1)
  const held = valueFor(7)
  const checkedRead = async () => {
    readSync(fd, byte, 0, 1, 0)
    return held
  }
  return {
    ops: batch,
    slow: false,
    fn: async () => {
      for (let i = 0; i < batch; i++) await checkedRead()
    },
    close: () => closeSync(fd),
  }
}

/**
 * Per store: the median in µs of one operation. With `floor: 'durable replace'`, also a raw
 * durable replace of as many bytes as anystore's file (the least a commit of this design
 * costs); with `floor: 'read'`, readFloor.
 *
 * The contenders are measured in turns, `profile.rounds` times each in a rotating order, and
 * each figure is the median of its rounds: the cost of a system call on this shared machine
 * moves within a minute while an in-process call does not, so measuring one store after the
 * other would fold that drift into the ratio between them.
 */
async function side(profile, name, size, operations, { floor, backend }) {
  const dir = freshDir(`compare-${size}`)
  const stores = await openContenders(dir, size, backend)
  const contenders = storeKinds.map((kind) => ({ kind, ...operations[kind](stores[kind], dir) }))
  if (floor === 'durable replace') {
    // Once first, so that the file (created by the first commit) has the size it has while
    // anystore is measured.
    await contenders.find((c) => c.kind === 'anystore').fn()
    const writer = rawWriter(dir, statSync(stores.anystore.file).size, true)
    contenders.push({ kind: 'floor', fn: () => writer.write(), close: () => writer.close() })
  }
  if (floor === 'read') {
    contenders.push({ kind: 'floor', ...readFloor(stores.anystore.file, profile.batch) })
  }
  const rounds = profile.rounds ?? 1
  const turn = { ...profile, time: profile.time / rounds, warmupTime: profile.warmupTime / rounds }
  const figures = await inTurns(
    contenders,
    rounds,
    async ({ fn, ops = 1, slow = true }) => (await measure(turn, fn, { ops, slow })).medianUs,
  )
  const row = { scenario: name, size, rounds }
  for (const [i, c] of contenders.entries()) {
    row[c.kind] = middle(figures[i], (us) => us)
    if (c.verify) await c.verify()
    c.close?.()
  }
  await closeContenders(stores)
  row.go = GO_ORIGINAL[name]
  return row
}

/**
 * Runs `measureOne` on every item `rounds` times, one turn each per round, starting each round
 * one item further on. Returns, per item, its figures in round order.
 */
async function inTurns(items, rounds, measureOne) {
  const figures = items.map(() => [])
  for (let round = 0; round < rounds; round++) {
    for (let turn = 0; turn < items.length; turn++) {
      const i = (round + turn) % items.length
      figures[i].push(await measureOne(items[i]))
    }
  }
  return figures
}

/** The middle one of `values` by `score` (the upper one of the two middles when even). */
function middle(values, score) {
  return [...values].sort((a, b) => score(a) - score(b))[Math.floor(values.length / 2)]
}

/**
 * The side-by-side rows: get, set then get, set on 10,000 entries, cold open, with anystore on
 * `backend`. Rows and floors the backend cannot run are listed in `skipped`.
 */
export async function compareOperations(profile, { coldSize, backend = 'file' }) {
  const info = backendInfo(backend)
  const rows = []
  const skipped = []
  const batch = profile.batch
  const key = keyFor(7)
  if (!info.file) {
    skipped.push({
      scenario: 'side by side: the read floor (awaited call + 1-byte pread of the store file)',
      reason: `the ${backend} backend keeps no file to pread`,
    })
  }

  rows.push(
    await side(profile, 'get, unchanged store of 1,000 entries', 1000, {
      anystore: (s) => ({
        ops: batch,
        slow: false,
        fn: async () => {
          for (let i = 0; i < batch; i++) await s.get(key)
        },
        verify: async () => check((await s.get(key)) === valueFor(7), 'anystore get'),
      }),
      lmdb: (db) => ({
        ops: batch,
        slow: false,
        fn: () => {
          for (let i = 0; i < batch; i++) db.get(key)
        },
        verify: () => check(db.get(key) === valueFor(7), 'lmdb get'),
      }),
      conf: (c) => ({
        ops: Math.max(1, batch / 20),
        fn: () => {
          for (let i = 0; i < Math.max(1, batch / 20); i++) c.get(key)
        },
        verify: () => check(c.get(key) === valueFor(7), 'conf get'),
      }),
    }, { floor: info.file ? 'read' : undefined, backend }),
  )

  let round = 0
  const setThenGet = (size, name) =>
    side(
      profile,
      name,
      size,
      {
        anystore: (s) => ({
          fn: async () => {
            const value = valueFor(1, ++round)
            await s.set('one', value)
            if ((await s.get('one')) !== value) throw new Error('anystore lost a write')
          },
        }),
        lmdb: (db) => ({
          fn: async () => {
            const value = valueFor(1, ++round)
            await db.put('one', value)
            await db.flushed
            if (db.get('one') !== value) throw new Error('lmdb lost a write')
          },
        }),
        conf: (c) => ({
          fn: () => {
            const value = valueFor(1, ++round)
            c.set('one', value)
            if (c.get('one') !== value) throw new Error('conf lost a write')
          },
        }),
      },
      { floor: info.file ? 'durable replace' : undefined, backend },
    )
  for (const [size, name] of [
    [0, 'set then get of one key (durable)'],
    [10_000, 'set, store of 10,000 entries (durable)'],
  ]) {
    if (info.durable) rows.push(await setThenGet(size, name))
    else
      skipped.push({
        scenario: `side by side: ${name}`,
        reason: `the ${backend} backend's commits are not durable, the other stores' are`,
      })
  }

  // Cold open: a new handle on an existing store, then its first read.
  if (!info.coldOpen) {
    skipped.push({
      scenario: 'side by side: cold open + first get',
      reason: `a new instance on the ${backend} backend has nothing to read or connect to`,
    })
  } else {
    const dir = freshDir(`compare-cold-${coldSize}`)
    const stores = await openContenders(dir, coldSize, backend)
    await closeContenders(stores)
    const last = keyFor(coldSize - 1)
    const row = { scenario: 'cold open + first get, 100,000 entries', size: coldSize }
    row.anystore = (
      await measure(
        profile,
        async () => {
          const s = await openStore(backend, { location: join(dir, 'store.anystore') })
          if ((await s.get(last)) !== valueFor(coldSize - 1)) throw new Error('anystore cold get')
          await s.close()
        },
        { slow: true },
      )
    ).medianUs
    row.lmdb = (
      await measure(
        profile,
        async () => {
          const db = openLmdb({ path: join(dir, 'lmdb') })
          if (db.get(last) !== valueFor(coldSize - 1)) throw new Error('lmdb cold get')
          await db.close()
        },
        { slow: true },
      )
    ).medianUs
    row.conf = (
      await measure(
        profile,
        () => {
          const c = new Conf({ cwd: join(dir, 'conf'), projectName: 'bench', configName: 'store' })
          if (c.get(last) !== valueFor(coldSize - 1)) throw new Error('conf cold get')
        },
        { slow: true },
      )
    ).medianUs
    row.go = coldSize === 100_000 ? GO_ORIGINAL[row.scenario] : undefined
    rows.push(row)
  }
  return { rows, skipped }
}

/**
 * 4 processes incrementing one counter in each store, anystore on `backend` (one that other
 * processes can open). In turns too: each store's figures are those of its middle round by
 * rate, and its lost updates the most any round lost.
 */
export async function compareContention(profile, { incrementCount, warmUp, backend = 'file' }) {
  const kinds = ['anystore', 'lmdb', 'lmdb-flushed', 'conf', 'floor']
  const runs = await inTurns(kinds, profile.rounds ?? 1, (kind) =>
    contend(kind, 4, incrementCount, warmUp, backend),
  )
  const contention = runs.map((all) => ({
    ...middle(all, (run) => run.opsPerSec),
    rounds: all.map((run) => Math.round(run.opsPerSec)),
    lost: Math.max(...all.map((run) => run.lost)),
  }))
  return { contention, goLostOf1000: GO_ORIGINAL.lostOf1000 }
}
