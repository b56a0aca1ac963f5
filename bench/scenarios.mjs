import { statSync } from 'node:fs'
import { join } from 'node:path'
import { backendInfo, openStore } from './lib/backends.mjs'
import { rawReader, rawWriter } from './lib/baselines.mjs'
import { check, drawIndexes, freshDir, keyFor, valueFor } from './lib/data.mjs'
import { measure } from './lib/harness.mjs'

/**
 * Fills a store with `size` entries in one transaction (one commit); on Redis in one per 10,000
 * entries: node-redis spreads a script's arguments into one function call, and a commit of
 * more than about 20,000 entries overflows the stack there (docs/PERFORMANCE.md, "Redis").
 */
export async function populate(store, size) {
  const chunk = store.backendKind === 'redis' ? 10_000 : Math.max(size, 1)
  for (let at = 0; at < size; at += chunk) {
    await store.run(async (tx) => {
      for (let i = at; i < Math.min(size, at + chunk); i++) await tx.set(keyFor(i), valueFor(i))
    })
  }
}

/**
 * Every operation, in two flavours (the same key each time; a key drawn from a set of 1,000),
 * on a store of `size` entries on `backend` with the given sync and compression (null where
 * the backend has no such option), plus that configuration's limits (stat, raw durable write
 * and read + decrypt of the file's bytes) when the backend keeps a file. Each configuration
 * starts from a clean store of its own. What the backend cannot run is listed in `skipped`.
 */
export async function runConfiguration(profile, { size, sync, compress, backend = 'file' }) {
  const info = backendInfo(backend)
  const label = `${backend}-${size}-${sync ?? 'na'}-${compress ? 'z' : 'raw'}`
  const dir = freshDir(label)
  const file = join(dir, 'store.anystore')
  const open = () =>
    openStore(backend, {
      location: file,
      sync: sync ?? undefined,
      compress: compress ?? undefined,
    })
  const store = await open()
  await populate(store, size)
  const fileSize = info.file ? statSync(file).size : undefined
  const batch = profile.batch
  const drawSet = Math.min(size, 1000)
  const drawn = Array.from(drawIndexes(4096, drawSet), keyFor)
  let cursor = 0
  const nextDrawn = () => drawn[cursor++ & 4095]
  const same = keyFor(0)
  /** The value each key must hold now: checked after the write scenarios. */
  const expected = new Map()
  const results = []
  const skipped = []
  const limits = {}
  const baselines = {
    statUs: 'statSync',
    rawWriteUs: 'raw durable write',
    rawReadUs: 'read + decrypt',
  }
  /** Records a figure, with its ratio to `limit` (a key of `limits`) when that was measured. */
  const record = (operation, flavour, kind, figure, limit) => {
    const against =
      limits[limit] === undefined
        ? {}
        : { ratio: figure.medianUs / limits[limit], baseline: baselines[limit] }
    results.push({ operation, flavour, kind, size, sync, compress, fileSize, ...figure, ...against })
  }

  // The limits for this file, measured now so they share the machine's current state.
  if (info.file) {
    const stat = await measure(
      profile,
      () => {
        for (let i = 0; i < batch; i++) statSync(file)
      },
      { ops: batch },
    )
    const writer = rawWriter(dir, fileSize, sync === 'always')
    const rawWrite = await measure(profile, () => writer.write(), { slow: true })
    writer.close()
    const readDecrypt = rawReader(dir, fileSize)
    const rawRead = await measure(profile, () => readDecrypt(), { slow: true })
    limits.statUs = stat.medianUs
    limits.rawWriteUs = rawWrite.medianUs
    limits.rawReadUs = rawRead.medianUs
  } else {
    skipped.push({
      scenario: 'limits (statSync, raw durable write, read + decrypt) and ratios to them',
      reason: `they are measured on the store file, and the ${backend} backend keeps none`,
    })
  }

  // Reads of an unchanged store.
  for (const op of ['get', 'has']) {
    const figureSame = await measure(
      profile,
      async () => {
        for (let i = 0; i < batch; i++) await store[op](same)
      },
      { ops: batch },
    )
    record(op, 'same key', 'read', figureSame, 'statUs')
    const figureDrawn = await measure(
      profile,
      async () => {
        for (let i = 0; i < batch; i++) await store[op](nextDrawn())
      },
      { ops: batch },
    )
    record(op, '1 of 1,000 keys', 'read', figureDrawn, 'statUs')
  }
  check((await store.get(same)) === valueFor(0), `get(${same}) returns the stored value`)
  check((await store.has(nextDrawn())) === true, 'has() finds a stored key')

  // Whole-store reads: cheap on small stores, so batched there.
  const wholeBatch = size >= 10_000 ? 1 : batch
  for (const op of ['keys', 'size', 'entries']) {
    const figure = await measure(
      profile,
      async () => {
        for (let i = 0; i < wholeBatch; i++) await store[op]()
      },
      { ops: wholeBatch, slow: size >= 10_000 },
    )
    record(op, 'whole store', 'read', figure, 'statUs')
  }
  check((await store.size()) === size, `size() is ${size}`)
  check((await store.keys()).length === size, `keys() lists ${size} keys`)

  // Writes: each awaited set() is one commit of the whole map.
  let round = 1
  const setKey = async (key) => {
    const value = valueFor(-1, round++)
    await store.set(key, value)
    expected.set(key, value)
  }
  for (const [flavour, pick] of [
    ['same key', () => same],
    ['1 of 1,000 keys', nextDrawn],
  ]) {
    const figure = await measure(profile, () => setKey(pick()), { slow: true })
    record('set', flavour, 'commit', figure, 'rawWriteUs')
  }

  // Deleted keys are kept apart from the drawn ones, which later scenarios read.
  for (const [flavour, pick] of [
    ['same key', () => 'deleted'],
    ['1 of 1,000 keys', () => `deleted-${nextDrawn()}`],
  ]) {
    let key
    let deleted = 0
    let attempts = 0
    const figure = await measure(
      profile,
      async () => {
        attempts++
        if (await store.delete(key)) deleted++
        expected.delete(key)
      },
      {
        slow: true,
        beforeEach: async () => {
          key = pick()
          await setKey(key)
        },
      },
    )
    check(
      deleted === attempts,
      `every delete() of a present key reports true (${deleted}/${attempts})`,
    )
    record('delete', flavour, 'commit', figure, 'rawWriteUs')
  }

  // run(): read-modify-write under the cross-process lock.
  await store.set('counter', 0)
  let increments = 0
  const runSame = await measure(
    profile,
    async () => {
      await store.run(async (tx) => {
        await tx.set('counter', (await tx.get('counter')) + 1)
      })
      increments++
    },
    { slow: true },
  )
  record('run', 'same key', 'commit', runSame, 'rawWriteUs')
  check((await store.get('counter')) === increments, `run() increments all counted (${increments})`)
  const runDrawn = await measure(
    profile,
    async () => {
      const key = nextDrawn()
      const value = valueFor(-2, round++)
      await store.run(async (tx) => {
        check(typeof (await tx.get(key)) === 'string', 'run() reads the current value')
        await tx.set(key, value)
      })
      expected.set(key, value)
    },
    { slow: true },
  )
  record('run', '1 of 1,000 keys', 'commit', runDrawn, 'rawWriteUs')

  // A read right after another instance's commit: on a file, one reload of it.
  const other = await open()
  let foreignRound = 0
  const reload = await measure(
    profile,
    async () => {
      check((await store.get('foreign')) === foreignRound, 'the reader sees the other commit')
    },
    {
      slow: true,
      beforeEach: async () => {
        await other.set('foreign', ++foreignRound)
      },
    },
  )
  record('get after a commit by another instance', 'same key', 'reload', reload, 'rawReadUs')
  await other.close()

  // Cold open: open + first get + close of a new instance.
  if (info.coldOpen) {
    const coldKey = keyFor(size - 1)
    const cold = await measure(
      profile,
      async () => {
        const s = await open()
        await s.get(coldKey)
        await s.close()
      },
      { slow: true },
    )
    record('cold open (open + first get)', 'last key', 'cold', cold, 'rawReadUs')
  } else {
    skipped.push({
      scenario: 'cold open (open + first get)',
      reason: `a new instance on the ${backend} backend has nothing to read or connect to`,
    })
  }

  // Everything written must be there for a new reader.
  const expectedSize = await store.size()
  await store.close()
  const reader = await open()
  check((await reader.size()) === expectedSize, 'a new instance sees every committed entry')
  for (const [key, value] of expected) {
    check((await reader.get(key)) === value, `a new instance reads the last value of ${key}`)
  }
  check((await reader.get('counter')) === increments, 'a new instance reads the counter')
  await reader.close()
  return { limits: { size, sync, compress, fileSize, ...limits }, results, skipped }
}
