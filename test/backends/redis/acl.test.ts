import { describe, expect, it, onTestFinished } from 'vitest'
import { AnyStore, newKey } from '../../../src/index.js'
import { admin, freshName } from './helpers.js'
import { sharedRedis } from './server.js'

// The README lists the commands a Redis user needs under ACLs: a user allowed those and nothing
// else can do everything with a store.

const shared = await sharedRedis('redis backend: ACL')

/** As README "Redis" lists them: sent by the store, then run by its scripts, then for watch(). */
const COMMANDS = [
  'evalsha', 'eval', 'hmget', 'hget',
  'type', 'exists', 'del', 'hgetall', 'hset', 'hdel', 'zadd', 'zcard', 'zcount', 'zmscore',
  'zrange', 'zrem', 'zscore', 'pubsub|shardnumsub', 'spublish',
  'ssubscribe',
]

if (shared !== undefined) {
  const server = shared

  describe('redis backend: ACL', () => {
    it('a user allowed only the commands the README lists, on anystore:* keys and channels, can use a store fully', async () => {
      const client = await admin(server)
      const user = `limited-${Date.now()}`
      // What node-redis itself sends on connecting, besides: the handshake and a ping.
      const own = ['hello', 'auth', 'ping', 'select']
      await client.sendCommand([
        'ACL', 'SETUSER', user, 'on', '>secret', 'resetkeys', '~anystore:*', 'resetchannels', '&anystore:*',
        '-@all', ...[...COMMANDS, ...own].map((command) => `+${command}`),
      ])
      onTestFinished(async () => {
        await client.sendCommand(['ACL', 'DELUSER', user])
      })
      const url = server.url.replace('redis://', `redis://${user}:secret@`)
      const name = freshName()
      const encryptionKey = newKey()
      const store = await AnyStore.open({ redis: { url, name }, encryptionKey })
      onTestFinished(() => store.close())
      const heard: unknown[] = []
      const watcher = store.watch((change) => heard.push(change))
      onTestFinished(() => watcher.close())
      await store.set('a', 1)
      await store.set('b', 2, { ttlMs: 60_000 })
      expect(await store.get('a')).toBe(1)
      expect(await store.has('b')).toBe(true)
      expect(await store.size()).toBe(2)
      expect(await store.keys()).toEqual(['a', 'b'])
      expect(await store.run(async (tx) => {
        const a = (await tx.get('a')) as number
        await tx.set('a', a + 1)
        return a + 1
      })).toBe(2)
      expect(await store.delete('b')).toBe(true)
      await store.clear()
      expect(await store.entries()).toEqual([])
      // Change events reached the watcher through the same user.
      const deadline = Date.now() + 10_000
      while (heard.length < 5 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
      expect(heard.length).toBeGreaterThanOrEqual(5)
      // The limits hold: the same user may not touch keys outside anystore:*.
      const limited = (await import('redis')).createClient({ url })
      await limited.connect()
      onTestFinished(() => limited.destroy())
      await expect(limited.hGet('other:key', 'x')).rejects.toThrow(/NOPERM/)
    })
  })
}
