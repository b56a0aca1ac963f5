import { describe, expect, it } from 'vitest'
import { RECORDED_COMMITS, REMEMBERED_DELETES } from '../../../src/backends/redis/scripts.js'
import { admin, commitScript, entryFields, freshName, keysOf, open, recordedCommits } from './helpers.js'
import { sharedRedis } from './server.js'

// The two records the commit script keeps beside the entries stay bounded: the commit ids (for
// a commit sent again after a lost reply) and the deleted keys (for the versions of absent keys).

const shared = await sharedRedis('redis backend: bounded records')

if (shared !== undefined) {
  const server = shared

  describe('redis backend: bounded records', () => {
    it('keeps the ids of the last RECORDED_COMMITS to twice as many commits, and looks them up only for a commit sent again', async () => {
      const client = await admin(server)
      const name = freshName()
      const store = await open(server, { name })
      await store.set('a', 0)
      const k = keysOf(name)
      const raw = client.withTypeMapping({ [36]: Buffer } as const)
      const [field] = await entryFields(client, k.entries)
      const sealed = (await raw.hGet(k.entries, field!)) as unknown as Buffer
      const script = await commitScript(client, name)
      const commit = async (commitId: string, sentBefore: boolean) =>
        (await script(commitId, ['s', field!, sealed, ''], sentBefore))[0]!
      const recorded = () => recordedCommits(client, name)
      const total = 2 * RECORDED_COMMITS + 17
      // Sent in batches without waiting for each reply: one script call per commit all the same.
      for (let at = 1; at <= total; at += 1000) {
        const batch: Promise<string>[] = []
        for (let i = at; i < Math.min(total + 1, at + 1000); i++) batch.push(commit(`c${i}`, false))
        expect(new Set(await Promise.all(batch))).toEqual(new Set(['ok']))
      }
      const kept = await recorded()
      expect(kept).toBeGreaterThanOrEqual(RECORDED_COMMITS)
      expect(kept).toBeLessThanOrEqual(2 * RECORDED_COMMITS)
      // The latest RECORDED_COMMITS are recognized when sent again; the first ones are forgotten.
      expect(await commit(`c${total}`, true)).toBe('done')
      expect(await commit(`c${total - RECORDED_COMMITS + 1}`, true)).toBe('done')
      expect(await commit('c1', true)).toBe('ok')
      // Not said to have been sent before, a recorded id is not looked up: ids are never reused.
      expect(await commit(`c${total}`, false)).toBe('ok')
      expect(await store.get('a')).toBe(0)
    }, 60_000)

    it('records no commit that changed nothing', async () => {
      const client = await admin(server)
      const name = freshName()
      const store = await open(server, { name })
      await store.set('a', 1)
      const recorded = () => recordedCommits(client, name)
      const before = await recorded()
      expect(await store.delete('missing')).toBe(false)
      expect(await recorded()).toBe(before)
      expect(await store.delete('a')).toBe(true)
      expect(await recorded()).toBe(before + 1)
    })

    it('forgets the deleted keys past REMEMBERED_DELETES, and a transaction that read one absent then retries once', async () => {
      const client = await admin(server)
      const name = freshName()
      const store = await open(server, { name })
      const k = keysOf(name)
      const deleted = `anystore:{${name}}:deleted`
      await store.run(async (tx) => {
        for (let i = 0; i <= REMEMBERED_DELETES; i++) await tx.set(`k${i}`, i)
      })
      for (let i = 0; i < REMEMBERED_DELETES; i++) await store.delete(`k${i}`)
      expect(await client.hLen(deleted)).toBe(REMEMBERED_DELETES)
      // Sets of keys never deleted leave the record as it is.
      for (let i = 0; i < 5; i++) await store.set('other', i)
      expect(await client.hLen(deleted)).toBe(REMEMBERED_DELETES)
      const base = await client.hGet(k.meta, 'base')
      let calls = 0
      await store.run(async (tx) => {
        calls++
        await tx.get('k0')
        // One more delete, by someone else, while this one runs: past the bound, the record
        // goes, and every absent key takes the current commit as its version.
        if (calls === 1) await store.delete(`k${REMEMBERED_DELETES}`)
        await tx.set('seen', calls)
      })
      expect(await client.hLen(deleted)).toBe(0)
      expect(await client.hGet(k.meta, 'base')).not.toBe(base)
      expect(calls).toBe(2)
      expect(await store.get('seen')).toBe(2)
    })
  })
}
