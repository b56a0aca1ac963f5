import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  keyvApiTests,
  keyvIteratorTests,
  keyvNamespaceTest,
  keyvValueTests,
} from '@keyv/test-suite'
import Keyv, { type KeyvOptions } from 'keyv'
import * as vitest from 'vitest'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { KeyvAnyStore, withIterator } from '../../src/adapters/keyv.js'
import { AnyStore, newKey, WrongKeyError } from '../../src/index.js'

// Shared by whole describe blocks (the published suite builds many adapters per test), so not
// the per-test directories of ../helpers.js. A fresh directory, and so fresh files, each run.
const dir = mkdtempSync(join(tmpdir(), 'anystore-keyv-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const encryptionKey = newKey()

/** keyv 5 wires `keyv.iterator()` for its own database adapters only; see withIterator(). */
class IterableKeyv extends Keyv {
  constructor(options?: KeyvOptions) {
    super(options)
    withIterator(this)
  }
}

/**
 * The published suite part by part: keyvTestSuite() is api + values + namespace, and the
 * iterator part is separate. Its compression part tests compression adapters, not stores.
 */
function publishedSuite(adapter: () => KeyvAnyStore) {
  describe('api', () => keyvApiTests(vitest, Keyv, adapter))
  describe('values', () => keyvValueTests(vitest, Keyv, adapter))
  describe('namespace', () => keyvNamespaceTest(vitest, Keyv, adapter))
  describe('iterator', () => keyvIteratorTests(vitest, IterableKeyv, adapter))
}

describe('keyv test suite, adapter over a store passed in', () => {
  let store: AnyStore
  beforeAll(async () => {
    store = await AnyStore.open({ file: join(dir, 'given.store'), encryptionKey })
  })
  afterAll(() => store.close())
  const adapter = () => new KeyvAnyStore(store)

  publishedSuite(adapter)
})

describe('keyv test suite, adapter opening its own store', () => {
  const file = join(dir, 'owned.store')
  // Every adapter opens its own instance of the same file, as separate processes would.
  const opened: KeyvAnyStore[] = []
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((a) => a.disconnect()))
  })
  const adapter = () => {
    const a = new KeyvAnyStore({ file, encryptionKey })
    opened.push(a)
    return a
  }

  publishedSuite(adapter)
})

describe('KeyvAnyStore', () => {
  let n = 0
  const freshFile = () => join(dir, `case-${++n}.store`)

  it('writes through to the file, under keyv namespace prefixes', async () => {
    const file = freshFile()
    const keyv = new Keyv({ store: new KeyvAnyStore({ file, encryptionKey }) })
    await keyv.set('user', { name: 'Ada' })
    await keyv.disconnect()

    const store = await AnyStore.open({ file, encryptionKey })
    expect(await store.keys()).toEqual(['keyv:user'])
    const reopened = new Keyv({ store: new KeyvAnyStore(store) })
    expect(await reopened.get('user')).toEqual({ name: 'Ada' })
    await store.close()
  })

  it('keeps values anystore can hold exactly when keyv does not serialize them', async () => {
    const store = await AnyStore.open({ file: freshFile(), encryptionKey })
    const keyv = new Keyv({
      store: new KeyvAnyStore(store),
      serialize: undefined,
      deserialize: undefined,
    })
    const value = { when: new Date(0), tags: new Set(['a']), big: 2n ** 70n }
    await keyv.set('v', value)
    expect(await keyv.get('v')).toEqual(value)
    await store.close()
  })

  it('clears only its namespace, and leaves keys written by other code alone', async () => {
    const store = await AnyStore.open({ file: freshFile(), encryptionKey })
    await store.set('config', { port: 80 })
    await store.set(7, 'a number key')
    const a = new Keyv({ store: new KeyvAnyStore(store), namespace: 'a' })
    const b = new Keyv({ store: new KeyvAnyStore(store), namespace: 'b' })
    await a.set('x', 1)
    await a.set('y', 2)
    await b.set('x', 3)
    await a.clear()
    expect(await store.keys()).toEqual(['config', 7, 'b:x'])
    expect(await b.get('x')).toBe(3)
    await store.close()
  })

  it('empties the store when keyv has no namespace', async () => {
    const store = await AnyStore.open({ file: freshFile(), encryptionKey })
    await store.set('other', 1)
    const keyv = new Keyv({ store: new KeyvAnyStore(store), namespace: undefined })
    await keyv.set('x', 1)
    await keyv.clear()
    expect(await store.size()).toBe(0)
    await store.close()
  })

  it('has() answers false for an expired entry', async () => {
    const store = await AnyStore.open({ file: freshFile(), encryptionKey })
    for (const options of [{}, { serialize: undefined, deserialize: undefined }]) {
      const keyv = new Keyv({ store: new KeyvAnyStore(store), ...options })
      await keyv.set('short', 'lived', 1)
      await keyv.set('long', 'lived', 60_000)
      await keyv.set('forever', 'lived')
      await new Promise((resolve) => setTimeout(resolve, 20))
      expect(await keyv.has('short')).toBe(false)
      expect(await keyv.has('long')).toBe(true)
      expect(await keyv.has('forever')).toBe(true)
      expect(await keyv.has(['short', 'long'])).toEqual([false, true])
    }
    await store.close()
  })

  it("keyv's ttl becomes the entry's expiry in the store, at keyv's own time", async () => {
    const store = await AnyStore.open({ file: freshFile(), encryptionKey })
    const keyv = new Keyv({ store: new KeyvAnyStore(store) })
    await keyv.set('short', 'v', 80)
    const written = Date.now()
    await keyv.set('long', 'v', 60_000)
    await keyv.set('forever', 'v')
    await keyv.set('zero', 'v', 0)
    const left = (await store.ttl('keyv:long'))!
    expect(left).toBeGreaterThan(50_000)
    expect(left).toBeLessThanOrEqual(60_000)
    // keyv's `expires` and the store's expiry name the same moment, give or take a few ms.
    const { expires } = JSON.parse((await store.get('keyv:long')) as string) as { expires: number }
    expect(Math.abs(Date.now() + left - expires)).toBeLessThan(100)
    expect(await store.ttl('keyv:forever')).toBeUndefined()
    expect(await store.ttl('keyv:zero')).toBeUndefined()
    while (Date.now() <= written + 80) await new Promise((resolve) => setTimeout(resolve, 10))
    // Gone from the store itself, though keyv never read it again.
    expect(await store.keys()).toEqual(['keyv:long', 'keyv:forever', 'keyv:zero'])
    expect(await keyv.get('short')).toBeUndefined()
    await store.close()
  })

  it('deletes many keys in one transaction', async () => {
    const store = await AnyStore.open({ file: freshFile(), encryptionKey })
    const keyv = new Keyv({ store: new KeyvAnyStore(store) })
    await keyv.set('a', 1)
    await keyv.set('b', 2)
    expect(await keyv.delete(['a', 'missing'])).toBe(false)
    expect(await keyv.delete(['b'])).toBe(true)
    expect(await store.size()).toBe(0)
    await store.close()
  })

  it('iterates one namespace with raw values, straight from the adapter', async () => {
    const store = await AnyStore.open({ file: freshFile(), encryptionKey })
    await store.set('ns:a', 'raw a')
    await store.set('other:b', 'raw b')
    await store.set(1, 'number key')
    const adapter = new KeyvAnyStore(store)
    const seen: unknown[] = []
    for await (const entry of adapter.iterator('ns')) seen.push(entry)
    expect(seen).toEqual([['ns:a', 'raw a']])
    seen.length = 0
    for await (const entry of adapter.iterator()) seen.push(entry)
    expect(seen).toEqual([
      ['ns:a', 'raw a'],
      ['other:b', 'raw b'],
    ])
    await store.close()
  })

  it('disconnect() closes a store it opened, and not one passed in', async () => {
    const file = freshFile()
    const owned = new KeyvAnyStore({ file, encryptionKey })
    const opened = await owned.store()
    await owned.disconnect()
    expect(opened.closed).toBe(true)
    await expect(owned.get('x')).rejects.toMatchObject({ code: 'ERR_ANYSTORE_CLOSED' })

    const store = await AnyStore.open({ file, encryptionKey })
    const given = new Keyv({ store: new KeyvAnyStore(store) })
    await given.disconnect()
    expect(store.closed).toBe(false)
    await store.close()
  })

  it('disconnect() during the first open closes the store once opened', async () => {
    const adapter = new KeyvAnyStore({ file: freshFile(), encryptionKey })
    const opening = adapter.store()
    await adapter.disconnect()
    expect((await opening).closed).toBe(true)
  })

  it('reports a store that cannot be opened as an error event, and retries later', async () => {
    const file = freshFile()
    const store = await AnyStore.open({ file, encryptionKey })
    await store.set('keyv:x', 'written under another key')
    await store.close()

    const keyv = new Keyv({ store: new KeyvAnyStore({ file, encryptionKey: newKey() }) })
    const errors: unknown[] = []
    keyv.on('error', (error) => errors.push(error))
    expect(await keyv.get('x')).toBeUndefined()
    expect(await keyv.set('x', 1)).toBe(false)
    expect(errors.length).toBeGreaterThanOrEqual(2)
    expect(errors.every((e) => e instanceof WrongKeyError)).toBe(true)
    await keyv.disconnect()
  })

  it('rejects, without an unhandled error event, when nothing listens', async () => {
    const adapter = new KeyvAnyStore({ file: join(dir, 'missing-dir', 'x'), encryptionKey: '' })
    await expect(adapter.get('x')).rejects.toMatchObject({ code: 'ERR_ANYSTORE_INVALID_KEY' })
  })

  it('does not keep the options, which hold the key, where keyv can see them', () => {
    const adapter = new KeyvAnyStore({ file: freshFile(), encryptionKey })
    expect(JSON.stringify(adapter.opts)).not.toContain(encryptionKey)
    expect(new Keyv({ store: adapter }).iterator).toBeUndefined()
  })
})
