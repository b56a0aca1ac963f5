import { describe, expect, it } from 'vitest'
import { EXPIRED_PER_COMMIT, PAGE, SIZE } from '../../../src/backends/redis/scripts.js'
import { newKey } from '../../../src/index.js'
import { admin, entryFields, freshName, keysOf, open, sleep } from './helpers.js'
import { sharedRedis } from './server.js'

// Expiry on Redis beyond what the conformance suite checks on every backend: the index the
// scripts judge by, whose clock counts, what someone editing the index on the server can do,
// and how much a commit drops.

const shared = await sharedRedis('redis backend: expiry')

/** Waits until the clock is past `at`. */
async function until(at: number): Promise<void> {
  while (Date.now() <= at) await sleep(Math.min(20, at - Date.now() + 1))
}

if (shared !== undefined) {
  const server = shared

  describe('redis backend: expiry', () => {
    it('the expiry index holds the time sealed in each expiring entry, and nothing for the others', async () => {
      const client = await admin(server)
      const name = freshName()
      const store = await open(server, { name })
      const at = Date.now() + 60_000
      await store.set('a', 1, { expiresAt: at })
      await store.set('b', 2)
      await store.set('c', 3, { ttlMs: 60_000 })
      const k = keysOf(name)
      expect(await client.zCard(k.expiry)).toBe(2)
      const scores = (await client.zRangeWithScores(k.expiry, 0, -1)).map((m) => m.score)
      expect(scores).toContain(at)
      // A set without expiry, an expire(undefined) and a delete take a key out of the index.
      await store.set('a', 1)
      expect(await store.expire('c', undefined)).toBe(true)
      expect(await client.zCard(k.expiry)).toBe(0)
      await store.set('d', 4, { ttlMs: 60_000 })
      await store.delete('d')
      expect(await client.zCard(k.expiry)).toBe(0)
      await store.set('e', 5, { ttlMs: 60_000 })
      await store.clear()
      expect(await client.exists(k.expiry)).toBe(0)
      expect(await store.size()).toBe(0)
    })

    it('the scripts judge by the time the client gives them, not by the server clock', async () => {
      const client = await admin(server)
      const name = freshName()
      const store = await open(server, { name })
      const at = Date.now() + 3_600_000
      await store.set('later', 1, { expiresAt: at })
      await store.set('kept', 2)
      // Through the store first: the server then has both scripts (EVALSHA needs them there).
      expect(await store.size()).toBe(2)
      expect(await store.keys()).toEqual(['later', 'kept'])
      const k = keysOf(name)
      const id = (await client.hGet(k.meta, 'id'))!
      const size = async (now: number) =>
        ((await client.evalSha(SIZE.sha, { keys: [k.meta, k.entries, k.order, k.expiry], arguments: [id, String(now)] })) as unknown[])[2]
      const listed = async (now: number) =>
        ((await client.evalSha(PAGE.sha, {
          keys: [k.meta, k.entries, k.order, k.expiry],
          arguments: [id, '-inf', '10', String(now)],
        })) as unknown[]).length
      // An hour ahead of every clock here: as of then, the entry is gone; a moment before, not.
      expect(await size(at - 1)).toBe(2)
      expect(await size(at)).toBe(1)
      // 'ok', seq, scanned, last score, then field and entry per key listed.
      expect(await listed(at - 1)).toBe(4 + 2 * 2)
      expect(await listed(at)).toBe(4 + 2 * 1)
    })

    it('an expiry moved later (or removed) in the index on the server does not bring the entry back', async () => {
      const client = await admin(server)
      const name = freshName()
      const encryptionKey = newKey()
      const store = await open(server, { name }, { encryptionKey })
      await store.set('moved', 'secret 1', { ttlMs: 150 })
      await store.set('removed', 'secret 2', { ttlMs: 150 })
      const t1 = Date.now()
      await store.set('kept', 3)
      const k = keysOf(name)
      const raw = client.withTypeMapping({ [36]: Buffer } as const)
      const fields = (await raw.zRange(k.expiry, 0, -1)) as unknown as Buffer[]
      expect(fields).toHaveLength(2)
      // Someone with access to the server: one time an hour later, the other one gone.
      await raw.zAdd(k.expiry, { score: Date.now() + 3_600_000, value: fields[0]! })
      await raw.zRem(k.expiry, fields[1]!)
      await until(t1 + 150)
      for (const key of ['moved', 'removed']) {
        expect(await store.get(key), key).toBeUndefined()
        expect(await store.has(key), key).toBe(false)
        expect(await store.ttl(key), key).toBeUndefined()
      }
      expect(await store.keys()).toEqual(['kept'])
      expect(await store.entries()).toEqual([['kept', 3]])
      const other = await open(server, { name }, { encryptionKey })
      expect(await other.keys()).toEqual(['kept'])
      await store.run(async (tx) => {
        expect(await tx.get('moved')).toBeUndefined()
        expect(await tx.has('removed')).toBe(false)
        expect(await tx.keys()).toEqual(['kept'])
      })
      // What is gone is absent to setIfAbsent() too.
      expect(await store.setIfAbsent('moved', 'new')).toBe(true)
      expect(await store.get('moved')).toBe('new')
      expect(await store.get('removed')).toBeUndefined()
    })

    it('a commit drops at most EXPIRED_PER_COMMIT expired entries besides its own; the next ones drop the rest', async () => {
      const client = await admin(server)
      const name = freshName()
      const store = await open(server, { name })
      const count = 2 * EXPIRED_PER_COMMIT + 20
      const at = Date.now() + 300
      await store.run(async (tx) => {
        for (let i = 0; i < count; i++) await tx.set(`t${i}`, i, { expiresAt: at })
      })
      await store.set('kept', 1)
      const k = keysOf(name)
      // The entries hash also holds the store id and counters, besides the entries.
      const stored = async () => (await entryFields(client, k.entries)).length
      expect(await stored()).toBe(count + 1)
      await until(at)
      // Hidden at once, by reads that write nothing.
      const seq = await client.hGet(k.entries, 'seq')
      expect(await store.size()).toBe(1)
      expect(await store.keys()).toEqual(['kept'])
      expect(await client.hGet(k.entries, 'seq')).toBe(seq)
      expect(await stored()).toBe(count + 1)
      // Each commit drops its share, and its own keys whatever their number.
      await store.set('n1', 1)
      expect(await stored()).toBe(count + 1 - EXPIRED_PER_COMMIT + 1)
      await store.set('n2', 2)
      expect(await stored()).toBe(count + 1 - 2 * EXPIRED_PER_COMMIT + 2)
      await store.set('n3', 3)
      expect(await stored()).toBe(4)
      expect(await client.zCard(k.order)).toBe(4)
      expect(await client.zCard(k.expiry)).toBe(0)
      expect(await store.keys()).toEqual(['kept', 'n1', 'n2', 'n3'])
    })

    it('run() is retried when an entry it read, or listed, expires before its commit', async () => {
      const store = await open(server)
      for (const read of ['get', 'keys'] as const) {
        await store.set('brief', 'b', { ttlMs: 150 })
        const t1 = Date.now()
        const seen: unknown[] = []
        await store.run(async (tx) => {
          seen.push(read === 'get' ? await tx.get('brief') : await tx.keys())
          // The first attempt commits after the entry expired: what it read no longer holds.
          if (seen.length === 1) await until(t1 + 150)
          await tx.set('after', seen.length)
        })
        expect(seen, read).toEqual(read === 'get' ? ['b', undefined] : [['brief'], []])
        expect(await store.get('after')).toBe(2)
        await store.delete('after')
      }
    })
  })
}
