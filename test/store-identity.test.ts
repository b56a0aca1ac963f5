import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  AnyStore,
  newKey,
  readFileHeader,
  restore,
  RollbackError,
  StoreReplacedError,
} from '../src/index.js'
import { requireBuild } from './cli-support.js'
import { rejection, tempDir } from './helpers.js'

requireBuild()

const WRITER = fileURLToPath(new URL('./fixtures/set-value.mjs', import.meta.url))

/** Sets `key` from another process; returns once that process's set() has resolved. */
function setElsewhere(file: string, key: string, value: unknown): void {
  execFileSync(process.execPath, [WRITER, file, key, JSON.stringify(value)], { stdio: 'inherit' })
}

/** Longer than FULL_CHECK_EVERY_MS (100 ms): a read then checks the path fully. */
const afterFullCheckInterval = () => new Promise((resolve) => setTimeout(resolve, 150))

let dir: string
let file: string
const stores: AnyStore[] = []

beforeEach(() => {
  dir = fs.realpathSync(tempDir())
  file = join(dir, 'store.anystore')
})

afterEach(async () => {
  for (const store of stores.splice(0)) await store.close()
})

async function openStore(path = file): Promise<AnyStore> {
  const store = await AnyStore.open({ file: path })
  stores.push(store)
  return store
}

const ROLLBACK = 'ERR_ANYSTORE_ROLLBACK'
const REPLACED = 'ERR_ANYSTORE_STORE_REPLACED'

/** Every read and write of `store` fails with `code`, and the file stays as it is. */
async function expectStuck(store: AnyStore, code: string): Promise<void> {
  const before = fs.readFileSync(file)
  for (let round = 0; round < 2; round++) {
    expect((await rejection(store.get('n'))).code).toBe(code)
    expect((await rejection(store.keys())).code).toBe(code)
    expect((await rejection(store.set('n', 3))).code).toBe(code)
    expect((await rejection(store.run(async (tx) => tx.set('n', 4)))).code).toBe(code)
    expect((await rejection(store.delete('n'))).code).toBe(code)
  }
  expect(fs.readFileSync(file).equals(before)).toBe(true)
}

describe('an open store refuses an older copy of itself put in the file', () => {
  /** A store that has loaded n = 2, and a copy of the version with n = 1 renamed over it since. */
  async function rolledBackUnderAnOpenStore(): Promise<AnyStore> {
    setElsewhere(file, 'n', 1)
    const copy = join(dir, 'copy.anystore')
    fs.copyFileSync(file, copy)
    setElsewhere(file, 'n', 2)
    const store = await openStore()
    expect(await store.get('n')).toBe(2)
    fs.renameSync(copy, file)
    return store
  }

  it('a reader: RollbackError at its next full check, then on every read and write until reopened', async () => {
    const reader = await rolledBackUnderAnOpenStore()
    await afterFullCheckInterval()
    const error = await rejection(reader.get('n'))
    expect(error).toBeInstanceOf(RollbackError)
    expect(error).toMatchObject({ code: ROLLBACK, file, seenCounter: 2n, foundCounter: 1n })
    await expectStuck(reader, ROLLBACK)
    // A fresh open has seen nothing newer: it reads the copy, as it would any store.
    const reopened = await openStore()
    expect(await reopened.get('n')).toBe(1)
  })

  it('a writer: at once, because a commit checks fully under the lock', async () => {
    const writer = await rolledBackUnderAnOpenStore()
    const error = await rejection(writer.run(async (tx) => tx.set('m', await tx.get('n'))))
    expect(error.code).toBe(ROLLBACK)
    await expectStuck(writer, ROLLBACK)
  })

  it('its own commit counts as seen: a copy from before it is refused', async () => {
    setElsewhere(file, 'n', 1)
    const copy = join(dir, 'copy.anystore')
    fs.copyFileSync(file, copy)
    const writer = await openStore()
    await writer.set('n', 2)
    fs.renameSync(copy, file)
    expect((await rejection(writer.set('n', 3))).code).toBe(ROLLBACK)
  })

  it('a version 2 file after a version 3 one (it has no counter to prove it newer)', async () => {
    const v2 = join(dir, 'v2.anystore')
    const old = await AnyStore.open({ file: v2, formatVersion: 2 })
    await old.set('n', 1)
    await old.close()
    expect(readFileHeader(v2).header.version).toBe(2)
    setElsewhere(file, 'n', 2)
    const reader = await openStore()
    expect(await reader.get('n')).toBe(2)
    fs.renameSync(v2, file)
    const error = await rejection(reader.set('n', 3))
    expect(error).toMatchObject({ code: ROLLBACK, seenCounter: 1n, foundCounter: undefined })
  })
})

describe('an open store refuses another store put in the file', () => {
  it('written under the same key: StoreReplacedError, on every read and write until reopened', async () => {
    setElsewhere(file, 'n', 1)
    const other = join(dir, 'other.anystore')
    // More commits than the store has: a higher counter does not make another store acceptable.
    for (let i = 0; i < 3; i++) setElsewhere(other, 'n', 100 + i)
    const reader = await openStore()
    expect(await reader.get('n')).toBe(1)
    const ids = { expected: readFileHeader(file).header.storeId, found: readFileHeader(other).header.storeId }
    fs.renameSync(other, file)
    await afterFullCheckInterval()
    const error = await rejection(reader.get('n'))
    expect(error).toBeInstanceOf(StoreReplacedError)
    expect(error).toMatchObject({
      code: REPLACED,
      expectedStoreId: ids.expected?.toString('hex'),
      foundStoreId: ids.found?.toString('hex'),
    })
    await expectStuck(reader, REPLACED)
    expect(await (await openStore()).get('n')).toBe(102)
  })
})

describe('a deleted store file reads as empty, and the store is still remembered', () => {
  it('an old copy put back after a delete is still a rollback', async () => {
    setElsewhere(file, 'n', 1)
    const old = fs.readFileSync(file)
    setElsewhere(file, 'n', 2)
    const store = await openStore()
    expect(await store.get('n')).toBe(2)
    fs.unlinkSync(file)
    await afterFullCheckInterval()
    expect(await store.size()).toBe(0)
    fs.writeFileSync(file, old)
    await afterFullCheckInterval()
    expect((await rejection(store.get('n'))).code).toBe(ROLLBACK)
    await expectStuck(store, ROLLBACK)
  })

  it('another store that appears after a delete is a replacement', async () => {
    setElsewhere(file, 'n', 1)
    const store = await openStore()
    expect(await store.get('n')).toBe(1)
    fs.unlinkSync(file)
    await afterFullCheckInterval()
    expect(await store.size()).toBe(0)
    const other = join(dir, 'other.anystore')
    setElsewhere(other, 'n', 7)
    fs.renameSync(other, file)
    await afterFullCheckInterval()
    expect((await rejection(store.get('n'))).code).toBe(REPLACED)
    await expectStuck(store, REPLACED)
    // A fresh open has seen neither: it accepts the file as it is.
    expect(await (await openStore()).get('n')).toBe(7)
  })

  it('a commit after the delete continues the store: same id, next counter', async () => {
    setElsewhere(file, 'n', 1)
    const before = readFileHeader(file).header
    const store = await openStore()
    expect(await store.get('n')).toBe(1)
    fs.unlinkSync(file)
    await store.set('n', 2)
    const { header } = readFileHeader(file)
    expect(header.storeId?.equals(before.storeId!)).toBe(true)
    expect(header.counter).toBe(before.counter + 1n)
    expect(await store.entries()).toEqual([['n', 2]])
  })
})

describe('commits keep the store id and count up', () => {
  it('across processes, in every commit, from 1', async () => {
    setElsewhere(file, 'a', 1)
    const first = readFileHeader(file).header
    expect(first.version).toBe(3)
    expect(first.counter).toBe(1n)
    expect(first.storeId).toHaveLength(16)
    const store = await openStore()
    await store.set('b', 2)
    setElsewhere(file, 'c', 3)
    await store.run(async (tx) => tx.set('d', await tx.get('c')))
    const last = readFileHeader(file).header
    expect(last.storeId?.equals(first.storeId!)).toBe(true)
    expect(last.counter).toBe(4n)
    expect(await store.entries()).toEqual([
      ['a', 1],
      ['b', 2],
      ['c', 3],
      ['d', 3],
    ])
  })
})

describe('restore()', () => {
  it('commits a backup as the newest version: same store id, next counter, other keys deleted; open stores see an ordinary commit', async () => {
    const key = newKey()
    const backup = join(dir, 'backup.anystore')
    const writer = await AnyStore.open({ file, encryptionKey: key })
    stores.push(writer)
    await writer.set('n', 1)
    await writer.set('kept', 'yes')
    fs.copyFileSync(file, backup)
    await writer.set('n', 2)
    await writer.set('later', true)
    const reader = await AnyStore.open({ file, encryptionKey: key })
    stores.push(reader)
    expect(await reader.get('n')).toBe(2)
    const before = readFileHeader(file).header

    expect(await restore({ file, from: backup, encryptionKey: key })).toEqual({ entries: 2 })

    const after = readFileHeader(file).header
    expect(after.storeId?.equals(before.storeId!)).toBe(true)
    expect(after.counter).toBe(before.counter + 1n)
    for (const store of [reader, writer]) {
      expect(await store.entries()).toEqual([
        ['n', 1],
        ['kept', 'yes'],
      ])
    }
    await writer.set('n', 3)
    expect(await reader.get('n')).toBe(3)
  })

  it('copies another store (its own key given by fromEncryptionKey) into this one', async () => {
    const key = newKey()
    const otherKey = newKey()
    const other = join(dir, 'other.anystore')
    const source = await AnyStore.open({ file: other, encryptionKey: otherKey, compress: true })
    await source.set('x', new Map([[1, 2]]))
    await source.close()
    const target = await AnyStore.open({ file, encryptionKey: key })
    stores.push(target)
    await target.set('y', 1)
    const id = readFileHeader(file).header.storeId
    await restore({ file, from: other, encryptionKey: key, fromEncryptionKey: otherKey })
    expect(await target.entries()).toEqual([['x', new Map([[1, 2]])]])
    expect(readFileHeader(file).header.storeId?.equals(id!)).toBe(true)
    // The target's compression is kept (it had none).
    expect(readFileHeader(file).header.flags).toBe(0)
  })

  it('leaves the store untouched when the backup cannot be read', async () => {
    setElsewhere(file, 'n', 1)
    const before = fs.readFileSync(file)
    const backup = join(dir, 'backup.anystore')
    const stranger = await AnyStore.open({ file: backup, encryptionKey: newKey() })
    await stranger.set('n', 2)
    await stranger.close()
    expect(await rejection(restore({ file, from: backup }))).toMatchObject({
      code: 'ERR_ANYSTORE_WRONG_KEY',
    })
    expect(
      await rejection(restore({ file, from: join(dir, 'missing.anystore') })),
    ).toMatchObject({ code: 'ERR_ANYSTORE_FILE_NOT_FOUND' })
    expect(fs.readFileSync(file).equals(before)).toBe(true)
  })
})
