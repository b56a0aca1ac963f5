import { describe, expect, it, onTestFinished } from 'vitest'
import { AnyStore, newKey } from '../../../src/index.js'
import { rejection } from '../../helpers.js'
import { admin, entryFields, freshName, keysOf, open, sleep } from './helpers.js'
import { sharedRedis, startRedis } from './server.js'

// A get outside run() is one HMGET of the entry and of the store id kept beside the entries
// (src/backends/redis/layout.ts, ENTRIES_ID_FIELD). What a get costs on the server, and what it
// does on a store whose entries hash lacks that id: one written before it existed, or cleared
// by an older version.

const shared = await sharedRedis('redis backend: the read path')

/** The commands the server ran while `fn` ran, by name (INFO commandstats), less INFO itself. */
async function commandsDuring(client: Awaited<ReturnType<typeof admin>>, fn: () => Promise<unknown>) {
  const stats = async () => {
    const text = await client.info('commandstats')
    const calls = new Map<string, number>()
    for (const [, name, n] of text.matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g)) calls.set(name!, Number(n))
    return calls
  }
  const before = await stats()
  await fn()
  const after = await stats()
  const ran: Record<string, number> = {}
  for (const [name, n] of after) {
    const delta = n - (before.get(name) ?? 0) - (name === 'info' ? 1 : 0)
    if (delta > 0) ran[name] = delta
  }
  return ran
}

if (shared !== undefined) {
  const server = shared

  describe('redis backend: the read path', () => {
    it('a get or has is one HMGET, found or not, and one after a clear too', async () => {
      // A server of its own: other tests' commands would count.
      const own = await startRedis()
      onTestFinished(() => own.stop())
      const client = await admin(own)
      const store = await open(own, { name: freshName() })
      await store.set('a', 'value')
      expect(await commandsDuring(client, async () => {
        expect(await store.get('a')).toBe('value')
        expect(await store.get('missing')).toBeUndefined()
        expect(await store.has('a')).toBe(true)
      })).toEqual({ hmget: 3 })
      await store.clear()
      await store.set('b', 1)
      expect(await commandsDuring(client, async () => {
        expect(await store.get('a')).toBeUndefined()
        expect(await store.get('b')).toBe(1)
      })).toEqual({ hmget: 2 })
    })

    it('an entry the instance sealed or opened is read again from the server each time, and bytes changed there do not open', async () => {
      const client = await admin(server)
      const name = freshName()
      const store = await open(server, { name })
      await store.set('k', { n: 1 })
      // Kept as sealed: the next reads take it without decrypting, and each one still asks.
      expect(await store.get('k')).toEqual({ n: 1 })
      const first = await store.get('k')
      ;(first as { n: number }).n = 99
      expect(await store.get('k')).toEqual({ n: 1 })
      const raw = client.withTypeMapping({ [36]: Buffer } as const)
      const [field] = await entryFields(client, keysOf(name).entries)
      const sealed = (await raw.hGet(keysOf(name).entries, field!)) as unknown as Buffer
      // One byte of the ciphertext changed, the salt and nonce (so the mark) left as they were.
      const tampered = Buffer.from(sealed)
      tampered[30]! ^= 1
      await client.hSet(keysOf(name).entries, field!, tampered)
      expect(await rejection(store.get('k'))).toMatchObject({ code: 'ERR_ANYSTORE_CORRUPT_FILE' })
      // Put back, the same bytes read as before.
      await client.hSet(keysOf(name).entries, field!, sealed)
      expect(await store.get('k')).toEqual({ n: 1 })
    })

    it('a store whose entries lack the store id reads the id from the meta, until a commit puts it back', async () => {
      const client = await admin(server)
      const name = freshName()
      const encryptionKey = newKey()
      const k = keysOf(name)
      const first = await open(server, { name }, { encryptionKey })
      await first.set('a', 'value')
      await first.close()
      // As if edited on the server.
      expect(await client.hDel(k.entries, 'id')).toBe(1)

      const reader = await open(server, { name }, { encryptionKey, readOnly: true })
      expect(await reader.get('a')).toBe('value')
      expect(await reader.get('missing')).toBeUndefined()
      expect(await reader.size()).toBe(1)
      expect(await reader.keys()).toEqual(['a'])
      const writer = await open(server, { name }, { encryptionKey })
      expect(await writer.get('a')).toBe('value')
      // Opening writes nothing, even for a writable instance, nor does a commit that changes nothing.
      expect(await client.hExists(k.entries, 'id')).toBe(0)
      expect(await writer.delete('missing')).toBe(false)
      expect(await client.hExists(k.entries, 'id')).toBe(0)
      await writer.set('b', 1)
      expect(await client.hGet(k.entries, 'id')).toBe(await client.hGet(k.meta, 'id'))
      expect(await reader.get('b')).toBe(1)
      expect(await reader.keys()).toEqual(['a', 'b'])
    })

    it('a writable open of a store works on a server that refuses writes (out of memory), and reads still do', async () => {
      const own = await startRedis()
      onTestFinished(() => own.stop())
      const client = await admin(own)
      const name = freshName()
      const encryptionKey = newKey()
      const first = await open(own, { name }, { encryptionKey })
      await first.set('a', 1)
      await first.close()
      await client.configSet('maxmemory', '1')
      onTestFinished(async () => {
        await client.configSet('maxmemory', '0')
      })
      // With the default policy (noeviction), every write is refused now.
      expect((await rejection(client.set('probe', '1'))).message).toMatch(/^OOM/)
      const store = await open(own, { name }, { encryptionKey })
      expect(await store.get('a')).toBe(1)
      expect(await store.keys()).toEqual(['a'])
      const refused = await rejection(store.set('b', 2))
      expect(refused.code).toBe('ERR_ANYSTORE_UNAVAILABLE')
      await client.configSet('maxmemory', '0')
      // Room again: writes work on the same instance, and the delete frees what the set took.
      await store.set('b', 2)
      expect(await store.delete('a')).toBe(true)
      expect(await store.entries()).toEqual([['b', 2]])
    })

    it('a store put in the place of the one opened is StoreReplacedError, whether or not its entries hold an id', async () => {
      const client = await admin(server)
      const name = freshName()
      const k = keysOf(name)
      const store = await open(server, { name })
      await store.set('a', 1)
      // Deleted and created again under the same name, by another instance.
      await client.del(k.all)
      const other = await open(server, { name })
      await other.set('a', 2)
      expect((await rejection(store.get('a'))).code).toBe('ERR_ANYSTORE_STORE_REPLACED')
      expect((await rejection(store.has('b'))).code).toBe('ERR_ANYSTORE_STORE_REPLACED')
      // The same without the id beside the entries.
      await client.hDel(k.entries, 'id')
      expect((await rejection(store.get('a'))).code).toBe('ERR_ANYSTORE_STORE_REPLACED')
      // Deleted and not created again.
      await client.del(k.all)
      expect((await rejection(store.get('a'))).code).toBe('ERR_ANYSTORE_STORE_REPLACED')
      expect(await other.get('a').catch((error: { code?: string }) => error.code)).toBe('ERR_ANYSTORE_STORE_REPLACED')
    })

    it('the store id beside the entries is no entry: not listed, not counted, not cleared away', async () => {
      const store = await open(server, { name: freshName() })
      expect(await store.size()).toBe(0)
      expect(await store.keys()).toEqual([])
      await store.set('a', 1)
      await store.clear()
      expect(await store.size()).toBe(0)
      expect(await store.entries()).toEqual([])
      await store.set('b', 2)
      expect(await store.entries()).toEqual([['b', 2]])
    })

    it('a call waiting when the store closes still ends at its deadline on a client of the application', async () => {
      const own = await startRedis()
      onTestFinished(() => own.stop())
      const client = await admin(own)
      const timeoutMs = 300
      const store = await AnyStore.open({ redis: { client, name: freshName(), timeoutMs }, encryptionKey: newKey() })
      await store.set('a', 1)
      own.signal('SIGSTOP')
      try {
        const started = Date.now()
        const waiting = rejection(store.get('a'))
        await store.close()
        const failed = await waiting
        expect(failed.code).toBe('ERR_ANYSTORE_UNAVAILABLE')
        expect(Date.now() - started).toBeLessThan(timeoutMs + 3000)
      } finally {
        own.signal('SIGCONT')
      }
      // The client is the application's: still open and working.
      expect(client.isOpen).toBe(true)
      expect(await client.ping()).toBe('PONG')
    })

    it('a read answered after its timeout does not keep the process from going on', async () => {
      const own = await startRedis()
      onTestFinished(() => own.stop())
      const timeoutMs = 200
      const store = await AnyStore.open({ redis: { url: own.url, name: freshName(), timeoutMs }, encryptionKey: newKey() })
      onTestFinished(() => store.close())
      await store.set('a', 1)
      own.signal('SIGSTOP')
      let failed: { code?: string; outcomeUnknown?: boolean }
      const started = Date.now()
      try {
        failed = await rejection(store.get('a'))
      } finally {
        own.signal('SIGCONT')
      }
      expect(failed).toMatchObject({ code: 'ERR_ANYSTORE_UNAVAILABLE', outcomeUnknown: false })
      expect(Date.now() - started).toBeGreaterThanOrEqual(timeoutMs - 5)
      expect(Date.now() - started).toBeLessThan(timeoutMs + 3000)
      // The late answer to the read is dropped; the next calls get their own.
      expect(await store.get('a')).toBe(1)
      await store.set('a', 2)
      expect(await store.get('a')).toBe(2)
    })
  })

  describe('redis backend: the timeout of node-redis itself', () => {
    it('a write queued through an outage longer than the 5 s of node-redis fails at timeoutMs saying it was never sent', async () => {
      const own = await startRedis()
      onTestFinished(() => own.stop())
      const timeoutMs = 6500
      const store = await AnyStore.open({ redis: { url: own.url, name: freshName(), timeoutMs }, encryptionKey: newKey() })
      onTestFinished(() => store.close())
      await store.set('warm', 1)
      // Gone: the client reconnects in vain, and holds the commit in its queue meanwhile.
      own.signal('SIGKILL')
      await sleep(200)
      const started = Date.now()
      const failed = await rejection(store.set('a', 1))
      // node-redis, given its own 5 s, would reject the queued commit at 5 s as a timeout,
      // which says nothing of whether it was sent: the store would then not know either.
      expect(failed).toMatchObject({ code: 'ERR_ANYSTORE_UNAVAILABLE', outcomeUnknown: false })
      expect(Date.now() - started).toBeGreaterThanOrEqual(timeoutMs - 50)
    }, 30_000)
  })
}
