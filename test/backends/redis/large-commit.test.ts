import { describe, expect, it, onTestFinished } from 'vitest'
import { RedisConnection } from '../../../src/backends/redis/connection.js'
import { allKeys, layoutOf } from '../../../src/backends/redis/layout.js'
import { COMMIT } from '../../../src/backends/redis/scripts.js'
import { AnyStore, BackendUnavailableError, newKey } from '../../../src/index.js'
import { freshName } from './helpers.js'
import { sharedRedis } from './server.js'

const shared = await sharedRedis('redis backend: large commits')

/** Past the number of script arguments node-redis can spread (about 100,000 here). */
const ENTRIES = 100_000

if (shared !== undefined) {
  const server = shared

  describe('redis backend: large commits', () => {
    it(`a run() that sets ${ENTRIES} entries commits them all, in order`, { timeout: 120_000 }, async () => {
      const store = await AnyStore.open({ redis: { url: server.url, name: freshName() }, encryptionKey: newKey() })
      onTestFinished(() => store.close())
      await store.run(async (tx) => {
        for (let i = 0; i < ENTRIES; i++) await tx.set(`k${i}`, { i, pad: 'x'.repeat(40) })
      })
      expect(await store.size()).toBe(ENTRIES)
      expect(await store.get('k0')).toEqual({ i: 0, pad: 'x'.repeat(40) })
      expect(await store.get(`k${ENTRIES - 1}`)).toEqual({ i: ENTRIES - 1, pad: 'x'.repeat(40) })
      const keys = await store.keys()
      expect(keys.length).toBe(ENTRIES)
      // Insertion order survives the packing of the changes.
      expect(keys.slice(0, 3)).toEqual(['k0', 'k1', 'k2'])
      expect(keys.at(-1)).toBe(`k${ENTRIES - 1}`)

    })

    it('another connection sees such a commit all or nothing', { timeout: 120_000 }, async () => {
      const redis = { url: server.url, name: freshName() }
      const encryptionKey = newKey()
      const writer = await AnyStore.open({ redis, encryptionKey })
      onTestFinished(() => writer.close())
      const reader = await AnyStore.open({ redis, encryptionKey })
      onTestFinished(() => reader.close())
      await writer.set('before', true)

      const seen = new Set<number>()
      let done = false
      const watching = (async () => {
        while (!done) seen.add(await reader.size())
      })()
      try {
        await writer.run(async (tx) => {
          for (let i = 0; i < ENTRIES; i++) await tx.set(`k${i}`, i)
          await tx.delete('before')
        })
      } finally {
        done = true
        await watching
      }
      seen.add(await reader.size())
      // Before the commit: 1 entry; after it: ENTRIES. Nothing in between, ever.
      expect([...seen].filter((n) => n !== 1 && n !== ENTRIES)).toEqual([])
      expect(seen.has(ENTRIES)).toBe(true)
    })

    it('a command the client cannot even send fails at once with its own error, not as an outage', { timeout: 60_000 }, async () => {
      const location = 'the test store'
      const connection = await RedisConnection.open(
        { url: server.url, client: undefined, name: freshName(), timeoutMs: 20_000 },
        location,
      )
      onTestFinished(() => connection.close())
      // An argument node-redis cannot encode: it refuses the command before writing it.
      const args = ['x', 42 as unknown as string]
      const error = await connection.runScript('write', COMMIT, allKeys(layoutOf('t')), args).then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(error).toBeInstanceOf(Error)
      expect(error).not.toBeInstanceOf(BackendUnavailableError)
      expect((error as { outcomeUnknown?: unknown }).outcomeUnknown).toBeUndefined()
      // The connection is fine.
      expect(await connection.call('read', (c) => c.hGet('anystore:none', 'x'))).toBeNull()
    })
  })
}
