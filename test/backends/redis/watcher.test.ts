import { createClient } from 'redis'
import { describe, expect, it, onTestFinished } from 'vitest'
import { AnyStore, newKey, type StoreChange } from '../../../src/index.js'
import { runFixture } from '../../helpers.js'
import { admin, freshName, keysOf, open, sleep } from './helpers.js'
import { sharedRedis, startRedis } from './server.js'

// Change events on Redis beyond the conformance suite: what the channel carries, exactness
// across processes, and commits missed while the connection that hears them was down.

const shared = await sharedRedis('redis backend: change events')

/** Watches `store`, keeping the changes and errors; `next()` waits for the next change. */
function recorder(store: AnyStore) {
  const heard: StoreChange[] = []
  const errors: (Error & { code?: string })[] = []
  let taken = 0
  const watcher = store.watch((change) => heard.push(change), {
    onError: (error) => errors.push(error as Error & { code?: string }),
  })
  onTestFinished(() => watcher.close())
  return {
    watcher,
    errors,
    get pending() {
      return heard.slice(taken)
    },
    async next(timeoutMs = 5000): Promise<StoreChange> {
      const deadline = Date.now() + timeoutMs
      while (heard.length <= taken) {
        if (Date.now() > deadline) throw new Error(`no change was reported within ${timeoutMs} ms`)
        await sleep(5)
      }
      return heard[taken++]!
    },
  }
}

/** Applies a change to a model of the store. */
function replay(model: Map<unknown, unknown>, change: StoreChange): void {
  for (const { key } of change.deleted) model.delete(key)
  for (const { key, value } of [...change.added, ...change.changed]) model.set(key, value)
}

/** The pub/sub connections the server has now. */
async function subscribers(client: Awaited<ReturnType<typeof admin>>): Promise<number> {
  const list = String(await client.sendCommand(['CLIENT', 'LIST', 'TYPE', 'pubsub']))
  return list.split('\n').filter((line) => line.trim() !== '').length
}

if (shared !== undefined) {
  const server = shared

  describe('redis backend: change events', () => {
    it('what a commit announces on the channel holds no key name and no value', async () => {
      const client = await admin(server)
      const name = freshName()
      const listener = client.duplicate()
      await listener.connect()
      onTestFinished(() => listener.destroy())
      const messages: Buffer[] = []
      await listener.sSubscribe(keysOf(name).channel, (message) => messages.push(message), true)
      const store = await open(server, { name })
      await store.set('customer:carol@example.com', { card: '5500-0000-0000-0004' })
      await store.set('session-key-TTL', 'session-value-TTL', { ttlMs: 60_000 })
      await store.run(async (tx) => {
        await tx.set('run-key-RQZ', 'run-value-RQZ')
        await tx.delete('customer:carol@example.com')
      })
      await store.clear()
      while (messages.length < 4) await sleep(10)
      const all = Buffer.concat(messages)
      for (const text of ['carol@example.com', '5500-0000', 'session-key', 'session-value', '-RQZ', 'customer']) {
        expect(all.includes(text), text).toBe(false)
      }
      // Each says which store and commit it is about, whether it cleared, and what it touched.
      const id = (await client.hGet(keysOf(name).meta, 'id'))!
      expect(messages.map((m) => m.toString('latin1').split(':').slice(0, 3).join(':'))).toEqual([
        `${id}:1:-`,
        `${id}:2:-`,
        `${id}:3:-`,
        `${id}:4:c`,
      ])
    })

    it('each commit of another process is reported as one change, with the values before and after it', async () => {
      const name = freshName()
      const encryptionKey = newKey()
      const store = await open(server, { name }, { encryptionKey })
      const heard = recorder(store)
      // A commit of ours, heard: the watcher is listening from here on.
      await store.set('ready', 1)
      expect((await heard.next()).added).toEqual([{ key: 'ready', value: 1 }])
      const options = JSON.stringify({ redis: { url: server.url, name }, encryptionKey })
      await runFixture('conformance-child.mjs', [options, 'increment', '20'])
      const values: [unknown, unknown][] = []
      while (values.length < 20) {
        const change = await heard.next()
        expect(change.deleted).toEqual([])
        for (const { value } of change.added) values.push([undefined, value])
        for (const { oldValue, value } of change.changed) values.push([oldValue, value])
      }
      expect(values).toEqual(Array.from({ length: 20 }, (_, i) => [i === 0 ? undefined : i, i + 1]))
      await sleep(20)
      expect(heard.pending).toEqual([])
      expect(heard.errors).toEqual([])
    })

    it('commits made while the connection that hears them is down are reported once it is back', async () => {
      const client = await admin(server)
      const name = freshName()
      const encryptionKey = newKey()
      // The watched store connects as a user of its own, so that its connections can be kept
      // from coming back: one turned off cannot log in, while those logged in already go on.
      const user = `watcher-${name.slice(5)}`
      await client.sendCommand(['ACL', 'SETUSER', user, 'on', '>secret', '~*', '&*', '+@all'])
      onTestFinished(async () => {
        await client.sendCommand(['ACL', 'DELUSER', user])
      })
      const slow = createClient({
        url: server.url.replace('redis://', `redis://${user}:secret@`),
        socket: { reconnectStrategy: () => 50 },
      })
      slow.on('error', () => {})
      await slow.connect()
      onTestFinished(() => slow.destroy())
      const watched = await AnyStore.open({ redis: { client: slow, name }, encryptionKey })
      onTestFinished(() => watched.close())
      const writer = await open(server, { name }, { encryptionKey })
      await writer.set('changed', 1)
      await writer.set('deleted', 1)
      await writer.set('twice', 1)
      const heard = recorder(watched)
      await watched.set('ready', 1)
      expect((await heard.next()).added).toEqual([{ key: 'ready', value: 1 }])
      const model = new Map<unknown, unknown>(await watched.entries())

      expect(await subscribers(client)).toBe(1)
      await client.sendCommand(['ACL', 'SETUSER', user, 'off'])
      await client.sendCommand(['CLIENT', 'KILL', 'TYPE', 'pubsub'])
      await writer.set('changed', 2)
      await writer.delete('deleted')
      await writer.set('twice', 2)
      await writer.set('twice', 3)
      await writer.set('added', 1)
      // All of it while nobody was subscribed: pub/sub delivered none of it.
      expect(await subscribers(client)).toBe(0)
      await client.sendCommand(['ACL', 'SETUSER', user, 'on'])

      const expected = new Map<unknown, unknown>(await writer.entries())
      while ([...model].sort().join() !== [...expected].sort().join()) replay(model, await heard.next())
      expect(heard.errors.map((e) => e.code)).toContain('ERR_ANYSTORE_UNAVAILABLE')
      // And from then on, each commit as it comes.
      await writer.set('later', 1)
      expect(await heard.next()).toEqual({ added: [{ key: 'later', value: 1 }], changed: [], deleted: [] })
      await sleep(20)
      expect(heard.pending).toEqual([])
    })

    it('watching goes on after the server is killed and restarted', async () => {
      const own = await startRedis()
      onTestFinished(() => own.stop())
      const name = freshName()
      const encryptionKey = newKey()
      const redis = { url: own.url, name, timeoutMs: 1000 }
      const watched = await AnyStore.open({ redis, encryptionKey })
      onTestFinished(() => watched.close())
      const writer = await AnyStore.open({ redis, encryptionKey })
      onTestFinished(() => writer.close())
      const heard = recorder(watched)
      await writer.set('before', 1)
      expect((await heard.next()).added).toEqual([{ key: 'before', value: 1 }])
      await own.kill()
      await own.restart()
      const deadline = Date.now() + 10_000
      for (;;) {
        try {
          await writer.set('after', 1)
          break
        } catch (error) {
          if (Date.now() > deadline) throw error
          await sleep(50)
        }
      }
      const model = new Map<unknown, unknown>([['before', 1]])
      while (!model.has('after')) replay(model, await heard.next())
      expect([...model]).toEqual([
        ['before', 1],
        ['after', 1],
      ])
      expect(heard.errors.every((e) => e.code === 'ERR_ANYSTORE_UNAVAILABLE')).toBe(true)
    })

    it('with a client of yours: closing the watcher, or the store, closes the connection it opened and not yours', async () => {
      const client = createClient({ url: server.url })
      await client.connect()
      onTestFinished(() => client.destroy())
      const name = freshName()
      const store = await AnyStore.open({ redis: { client, name }, encryptionKey: newKey() })
      onTestFinished(() => store.close())
      // Sockets only: timers of the test runner and of other files' work come and go.
      const sockets = () => process.getActiveResourcesInfo().filter((kind) => kind === 'TCPSocketWrap').length
      /** The socket count once it is `expected`, or after 2 s of waiting for it. */
      const socketsSettled = async (expected: number) => {
        const deadline = Date.now() + 2000
        while (sockets() !== expected && Date.now() < deadline) await sleep(10)
        return sockets()
      }
      const before = sockets()
      const heard = recorder(store)
      await store.set('a', 1)
      expect((await heard.next()).added).toEqual([{ key: 'a', value: 1 }])
      expect(sockets()).toBe(before + 1)
      heard.watcher.close()
      expect(await socketsSettled(before)).toBe(before)
      // Watching again, then closing the store with the watcher open.
      const again = recorder(store)
      await store.set('b', 2)
      expect((await again.next()).added).toEqual([{ key: 'b', value: 2 }])
      await store.close()
      expect(again.watcher.closed).toBe(true)
      expect(await socketsSettled(before)).toBe(before)
      expect(client.isOpen).toBe(true)
      expect(await client.ping()).toBe('PONG')
    })

    it('an entry expiring is no change; set again after it expired, its key is added, not changed', async () => {
      const store = await open(server)
      const heard = recorder(store)
      await store.set('brief', 'old', { ttlMs: 150 })
      const t1 = Date.now()
      expect((await heard.next()).added).toEqual([{ key: 'brief', value: 'old' }])
      while (Date.now() <= t1 + 150) await sleep(20)
      // A commit that drops it from the server: still nothing to report for it.
      await store.set('other', 1)
      expect(await heard.next()).toEqual({ added: [{ key: 'other', value: 1 }], changed: [], deleted: [] })
      await store.set('brief', 'new')
      expect(await heard.next()).toEqual({ added: [{ key: 'brief', value: 'new' }], changed: [], deleted: [] })
      await sleep(20)
      expect(heard.pending).toEqual([])
    })

    it('a read-only watcher opened before the store exists hears the commits that create and fill it', async () => {
      const name = freshName()
      const encryptionKey = newKey()
      const reader = await open(server, { name }, { encryptionKey, readOnly: true })
      const heard = recorder(reader)
      const writer = await open(server, { name }, { encryptionKey })
      await writer.set('first', 1)
      await writer.set('second', 2)
      const model = new Map<unknown, unknown>()
      while (model.size < 2) replay(model, await heard.next())
      expect([...model]).toEqual([
        ['first', 1],
        ['second', 2],
      ])
    })
  })
}
