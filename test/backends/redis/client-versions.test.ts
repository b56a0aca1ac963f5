import { createClient as createClient5 } from 'redis-5'
import { createClient } from 'redis'
import { describe, expect, it, onTestFinished } from 'vitest'
import { AnyStore, InvalidOptionError, newKey } from '../../../src/index.js'
import { rejection } from '../../helpers.js'
import { freshName } from './helpers.js'
import { sharedRedis } from './server.js'

// The clients a store is given: node-redis 5 as well as 6 (the range package.json accepts), and
// what is refused.

const shared = await sharedRedis('redis backend: the clients given')

if (shared !== undefined) {
  const server = shared

  describe('redis backend: the clients given', () => {
    it('works through a node-redis 5 client: entries come back as bytes, and a store of 6 reads them', async () => {
      const client = createClient5({ url: server.url })
      await client.connect()
      onTestFinished(() => client.destroy())
      const redis = { client, name: freshName() }
      const encryptionKey = newKey()
      const store = await AnyStore.open({ redis, encryptionKey })
      onTestFinished(() => store.close())
      await store.set('a', { n: 1 })
      await store.set('b', Buffer.from([0, 255, 128]))
      // Read by another instance: no entry kept opened, so each is decrypted from the reply.
      const reader = await AnyStore.open({ redis: { client, name: redis.name }, encryptionKey })
      onTestFinished(() => reader.close())
      expect(await reader.get('a')).toEqual({ n: 1 })
      expect(await reader.get('b')).toEqual(Buffer.from([0, 255, 128]))
      expect(await reader.has('missing')).toBe(false)
      await store.run(async (tx) => {
        await tx.set('a', { n: ((await tx.get('a')) as { n: number }).n + 1 })
      })
      expect(await reader.entries()).toEqual([
        ['a', { n: 2 }],
        ['b', Buffer.from([0, 255, 128])],
      ])
      const six = await AnyStore.open({ redis: { url: server.url, name: redis.name }, encryptionKey })
      onTestFinished(() => six.close())
      expect(await six.get('a')).toEqual({ n: 2 })
    })

    it('refuses a client with a keyPrefix: the store names its keys and channel itself', async () => {
      const client = createClient({ url: server.url, keyPrefix: 'app:' })
      await client.connect()
      onTestFinished(() => client.destroy())
      const error = await rejection(AnyStore.open({ redis: { client, name: freshName() }, encryptionKey: newKey() }))
      expect(error).toBeInstanceOf(InvalidOptionError)
      expect(String(error)).toContain('keyPrefix')
    })
  })
}
