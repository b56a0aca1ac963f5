import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createStorage, type Driver, prefixStorage, restoreSnapshot, type Storage } from 'unstorage'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import anystoreDriver from '../../src/adapters/unstorage.js'
import { AnyStore, newKey } from '../../src/index.js'

// Shared by whole describe blocks, so not the per-test directories of ../helpers.js. A fresh
// directory, and so fresh files, each run.
const dir = mkdtempSync(join(tmpdir(), 'anystore-unstorage-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const encryptionKey = newKey()

const sorted = (keys: string[]) => [...keys].sort()

/**
 * The checks unstorage runs on each of its own drivers (its repository's shared driver suite,
 * which is not published), through a storage made with createStorage() on the driver.
 */
function driverChecks(makeDriver: () => Driver) {
  let storage: Storage

  beforeAll(() => {
    storage = createStorage({ driver: makeDriver() })
  })
  afterAll(() => storage.dispose())
  afterEach(() => storage.clear())

  it('takes a snapshot in', async () => {
    await restoreSnapshot(storage, { first: 'loaded' })
    expect(await storage.getItem('first')).toBe('loaded')
  })

  it('starts empty', async () => {
    expect(await storage.hasItem('p:q')).toBe(false)
    expect(await storage.getItem('r:q')).toBeNull()
    expect(await storage.getKeys()).toEqual([])
  })

  it('sets items, dropping a query string from keys', async () => {
    await storage.setItem('p:q', 'text')
    await storage.setItem('r:q', 'text')
    await storage.setItem('t:q?v=1', 'text')
    expect(await storage.hasItem('p:q')).toBe(true)
    expect(await storage.getItem('p:q')).toBe('text')
    expect(await storage.getItem('t:q?v=2')).toBe('text')
  })

  it('lists keys, all or under a base', async () => {
    await storage.setItem('p:q', 'text')
    await storage.setItem('r:q', 'text')
    await storage.setItem('t:q?v=1', 'text')
    expect(sorted(await storage.getKeys())).toEqual(['p:q', 'r:q', 't:q'])
    expect(await storage.getKeys('p')).toEqual(['p:q'])
  })

  it('lists keys to a maximum depth', async () => {
    await storage.setItem('top', 'text')
    await storage.setItem('one:two:leaf0', 'text')
    await storage.setItem('one:two:leaf1', 'text')
    await storage.setItem('one:leaf0', 'text')
    await storage.setItem('one:leaf1', 'text')
    expect(await storage.getKeys(undefined, { maxDepth: 0 })).toEqual(['top'])
    expect(sorted(await storage.getKeys(undefined, { maxDepth: 1 }))).toEqual([
      'one:leaf0',
      'one:leaf1',
      'top',
    ])
    expect(sorted(await storage.getKeys(undefined, { maxDepth: 2 }))).toEqual([
      'one:leaf0',
      'one:leaf1',
      'one:two:leaf0',
      'one:two:leaf1',
      'top',
    ])
  })

  it('round-trips an object and a primitive, under path-like keys', async () => {
    await storage.setItem('/files/a.json', { kind: 'object' })
    await storage.setItem('/files/flag.json', true)
    expect(await storage.getItem('/files/a.json')).toEqual({ kind: 'object' })
    expect(await storage.getItem('/files/flag.json')).toBe(true)
    expect(sorted(await storage.getKeys('files'))).toEqual(['files:a.json', 'files:flag.json'])
  })

  it('stores what toJSON() returns', async () => {
    class AsText {
      toJSON() {
        return 'as text'
      }
    }
    class AsObject {
      toJSON() {
        return { from: 'toJSON' }
      }
    }
    await storage.setItem('files:text', new AsText())
    await storage.setItem('files:object', new AsObject())
    expect(await storage.getItem('files:text')).toBe('as text')
    expect(await storage.getItem('files:object')).toEqual({ from: 'toJSON' })
  })

  it('refuses a class instance without toJSON()', async () => {
    class Opaque {}
    await expect(storage.setItem('files:opaque', new Opaque())).rejects.toThrow(
      'Cannot stringify value',
    )
    expect(await storage.hasItem('files:opaque')).toBe(false)
  })

  it('round-trips raw bytes', async () => {
    const bytes = new Uint8Array([0, 1, 2, 254, 255])
    await storage.setItemRaw('files:raw.bin', bytes)
    const back = (await storage.getItemRaw('files:raw.bin')) as Uint8Array
    expect(back.byteLength).toBe(bytes.byteLength)
    expect(Buffer.from(back).equals(Buffer.from(bytes))).toBe(true)
  })

  it('sets and gets several items at once', async () => {
    await storage.setItems([
      { key: 'batch:1', value: 'one' },
      { key: 'batch:2', value: 'two' },
    ])
    expect(await storage.getItem('batch:1')).toBe('one')
    expect(await storage.getItem('batch:2')).toBe('two')
    expect(
      await storage.getItems(['batch:2', { key: 'batch:1?v=3' }, 'batch:missing']),
    ).toEqual([
      { key: 'batch:2', value: 'two' },
      { key: 'batch:1', value: 'one' },
      { key: 'batch:missing', value: null },
    ])
  })

  it('gives back 0 and false as stored', async () => {
    await storage.setItem('zero', 0)
    await storage.setItem('off', false)
    expect(await storage.getItem('zero')).toBe(0)
    expect(await storage.getItem('off')).toBe(false)
  })

  it('removes an item', async () => {
    await storage.setItem('p:q', 'text')
    await storage.removeItem('p:q', { removeMeta: false })
    expect(await storage.hasItem('p:q')).toBe(false)
    expect(await storage.getItem('p:q')).toBeNull()
  })

  it('clears, also when already empty', async () => {
    await storage.setItem('p:q', 'text')
    await storage.clear()
    expect(await storage.getKeys()).toEqual([])
    await storage.clear()
    expect(await storage.getKeys()).toEqual([])
  })
}

describe('unstorage driver checks, driver over a store passed in', () => {
  let store: AnyStore
  beforeAll(async () => {
    store = await AnyStore.open({ file: join(dir, 'given.store'), encryptionKey })
  })
  afterAll(() => store.close())
  driverChecks(() => anystoreDriver(store))
})

describe('unstorage driver checks, driver opening its own store', () => {
  driverChecks(() => anystoreDriver({ file: join(dir, 'owned.store'), encryptionKey }))
})

describe('anystore unstorage driver', () => {
  let n = 0
  const freshFile = () => join(dir, `case-${++n}.store`)

  it('writes through to the file, keys as unstorage makes them', async () => {
    const file = freshFile()
    const storage = createStorage({ driver: anystoreDriver({ file, encryptionKey }) })
    await storage.setItem('/users/1.json', { name: 'Ada' })
    await storage.setItemRaw('blobs:logo', new Uint8Array([1, 2]))
    await storage.dispose()

    const store = await AnyStore.open({ file, encryptionKey })
    expect(await store.keys()).toEqual(['users:1.json', 'blobs:logo'])
    expect(await store.get('users:1.json')).toBe('{"name":"Ada"}')
    // Bytes as bytes, not the base64 text unstorage falls back to for drivers without raw.
    expect(await store.get('blobs:logo')).toEqual(new Uint8Array([1, 2]))
    await store.close()
  })

  it('lists only what is under a base, not a sibling sharing its start', async () => {
    const store = await AnyStore.open({ file: freshFile(), encryptionKey })
    await store.set('outside', 1)
    await store.set(3, 'a number key')
    const storage = createStorage({ driver: anystoreDriver(store) })
    await storage.setItem('app:a', 'x')
    await storage.setItem('app:deep:b', 'x')
    await storage.setItem('apple:c', 'x')
    expect(sorted(await storage.getKeys('app'))).toEqual(['app:a', 'app:deep:b'])
    expect(sorted(await storage.getKeys('app:'))).toEqual(['app:a', 'app:deep:b'])
    expect(sorted(await storage.getKeys())).toEqual(['app:a', 'app:deep:b', 'apple:c', 'outside'])
    await store.close()
  })

  // unstorage 1 hands clear() a base only when the driver is called directly: storage.clear(base)
  // clears the mounts under base, whole.
  it('answers for a base when called directly, with or without its trailing colon', async () => {
    const store = await AnyStore.open({ file: freshFile(), encryptionKey })
    const driver = anystoreDriver(store)
    await driver.setItem!('a:b', '1', {})
    await driver.setItem!('ab:c', '2', {})
    expect(await driver.getKeys('a', {})).toEqual(['a:b'])
    expect(await driver.getKeys('a:', {})).toEqual(['a:b'])
    expect(await driver.getKeys('', {})).toEqual(['a:b', 'ab:c'])
    await driver.clear!('a', {})
    expect(await store.keys()).toEqual(['ab:c'])
    await store.close()
  })

  it('works mounted under a base and through prefixStorage', async () => {
    const store = await AnyStore.open({ file: freshFile(), encryptionKey })
    const storage = createStorage()
    storage.mount('vault', anystoreDriver(store))
    await storage.setItem('vault:token', 's3cret')
    await storage.setItem('cache:x', 'in memory')
    expect(await store.keys()).toEqual(['token'])
    const vault = prefixStorage(storage, 'vault')
    expect(await vault.getItem('token')).toBe('s3cret')
    expect(await vault.getKeys()).toEqual(['token'])
    await storage.unmount('vault')
    expect(store.closed).toBe(false)
    await store.close()
  })

  it('keeps unstorage meta entries like any item', async () => {
    const store = await AnyStore.open({ file: freshFile(), encryptionKey })
    const storage = createStorage({ driver: anystoreDriver(store) })
    await storage.setItem('doc', 'text')
    await storage.setMeta('doc', { author: 'Ada' })
    expect(await storage.getMeta('doc')).toEqual({ author: 'Ada' })
    expect(await storage.getKeys()).toEqual(['doc'])
    await storage.removeItem('doc', { removeMeta: true })
    expect(await store.size()).toBe(0)
    await store.close()
  })

  it('setItem() and setItemRaw() with a ttl in seconds store an expiry; 0 or none store none', async () => {
    const store = await AnyStore.open({ file: freshFile(), encryptionKey })
    const storage = createStorage({ driver: anystoreDriver(store) })
    await storage.setItem('minute', 'x', { ttl: 60 })
    await storage.setItemRaw('raw', new Uint8Array([1]), { ttl: 30 })
    await storage.setItems([{ key: 'batch', value: 'x' }], { ttl: 45 })
    await storage.setItem('zero', 'x', { ttl: 0 })
    await storage.setItem('none', 'x')
    const left = async (key: string) => (await store.ttl(key)) ?? 0
    expect(await left('minute')).toBeGreaterThan(50_000)
    expect(await left('minute')).toBeLessThanOrEqual(60_000)
    expect(await left('raw')).toBeGreaterThan(25_000)
    expect(await left('raw')).toBeLessThanOrEqual(30_000)
    expect(await left('batch')).toBeGreaterThan(40_000)
    expect(await store.ttl('zero')).toBeUndefined()
    expect(await store.ttl('none')).toBeUndefined()

    await storage.setItem('brief', 'x', { ttl: 0.08 })
    const written = Date.now()
    while (Date.now() <= written + 80) await new Promise((resolve) => setTimeout(resolve, 10))
    expect(await storage.hasItem('brief')).toBe(false)
    expect(await storage.getItem('brief')).toBeNull()
    expect(sorted(await storage.getKeys())).toEqual(['batch', 'minute', 'none', 'raw', 'zero'])
    await store.close()
  })

  it('refuses a ttl that is not a number of seconds, writing nothing', async () => {
    const store = await AnyStore.open({ file: freshFile(), encryptionKey })
    const storage = createStorage({ driver: anystoreDriver(store) })
    for (const ttl of [-1, Number.NaN, Number.POSITIVE_INFINITY, '60']) {
      await expect(storage.setItem('k', 'x', { ttl })).rejects.toMatchObject({
        code: 'ERR_ANYSTORE_INVALID_OPTION',
      })
    }
    expect(await store.size()).toBe(0)
    await store.close()
  })

  it('dispose() closes a store it opened, and not one passed in', async () => {
    const file = freshFile()
    const owned = createStorage({ driver: anystoreDriver({ file, encryptionKey }) })
    await owned.setItem('k', 'v')
    await owned.dispose()
    await expect(owned.getItem('k')).rejects.toMatchObject({ code: 'ERR_ANYSTORE_CLOSED' })

    const store = await AnyStore.open({ file, encryptionKey })
    const given = createStorage({ driver: anystoreDriver(store) })
    expect(await given.getItem('k')).toBe('v')
    await given.dispose()
    expect(store.closed).toBe(false)
    await store.close()
  })

  it('reports a wrong key on first use', async () => {
    const file = freshFile()
    const store = await AnyStore.open({ file, encryptionKey })
    await store.set('k', 'v')
    await store.close()
    const storage = createStorage({ driver: anystoreDriver({ file, encryptionKey: newKey() }) })
    await expect(storage.getItem('k')).rejects.toMatchObject({ code: 'ERR_ANYSTORE_WRONG_KEY' })
    await storage.dispose()
  })

  it('does not show the options, which hold the key, on the driver', () => {
    const driver = anystoreDriver({ file: freshFile(), encryptionKey })
    expect(driver.name).toBe('anystore')
    expect(driver.options).toBeUndefined()
  })
})
