import { describe, expect, it, onTestFinished } from 'vitest'
import { RECORDED_COMMITS } from '../../../src/backends/redis/scripts.js'
import { admin, commitScript, entryFields, freshName, keysOf, open, recordedCommits, sleep } from './helpers.js'
import { sharedRedis } from './server.js'

// What the commit script keeps beside the entries: the commit ids (for a commit sent again after
// a lost reply), bounded, and no version per key, live or deleted.

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
        (await script(commitId, ['s', field!, sealed], sentBefore))[0]!
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

    it('a lone set takes a path of its own in the script, and leaves and announces what the general path does', async () => {
      const client = await admin(server)
      const listener = client.duplicate()
      await listener.connect()
      onTestFinished(() => listener.destroy())
      const raw = client.withTypeMapping({ [36]: Buffer } as const)
      // The same commits on two stores, one with its conditions as a lone set sends them
      // (nothing), the other with them packed, which no lone set does.
      const outcome = async (conditions: 'as sent' | 'packed') => {
        const name = freshName()
        const store = await open(server, { name })
        await store.set('first', 1)
        const k = keysOf(name)
        const id = (await client.hGet(k.meta, 'id'))!
        const messages: string[] = []
        await listener.sSubscribe(k.channel, (message) => messages.push(message.toString('latin1').replace(id, 'ID')), true)
        const script = await commitScript(client, name)
        const replies: string[][] = []
        // A new key, an overwrite, and the new key again: inserts count once, commits each time.
        for (const [commitId, field] of [['c1', 'f'.repeat(16)], ['c2', 'g'.repeat(16)], ['c3', 'f'.repeat(16)]]) {
          replies.push(await script(commitId!, ['s', field!, `sealed-${commitId}`], false, [], conditions))
        }
        while (messages.length < 3) await sleep(5)
        await listener.sUnsubscribe(k.channel)
        const entries = (await raw.hGetAll(k.entries)) as unknown as Record<string, Buffer>
        const counters = { seq: String(entries.seq), ins: String(entries.ins), x: entries.x }
        const order = await client.zRangeWithScores(k.order, 0, -1)
        const recorded = { ...(await client.hGetAll(k.commits)), ...(await client.hGetAll(k.commitsOther)) }
        return {
          replies,
          counters,
          sealed: ['f', 'g'].map((c) => String(entries[c.repeat(16)])),
          order: order.slice(1),
          scores: order.map((o) => o.score),
          // Beside the store's own first commit, under an id of its own.
          recorded: Object.keys(recorded).filter((commitId) => /^c\d$/.test(commitId)).sort(),
          recordedCount: Object.keys(recorded).length,
          messages,
        }
      }
      const lone = await outcome('as sent')
      const general = await outcome('packed')
      expect(lone).toEqual(general)
      expect(lone.replies).toEqual([['ok', ''], ['ok', ''], ['ok', '']])
      expect(lone.counters).toEqual({ seq: '4', ins: '3', x: undefined })
      expect(lone.sealed).toEqual(['sealed-c3', 'sealed-c2'])
      expect(lone.scores).toEqual([1, 2, 3])
      expect(lone.recorded).toEqual(['c1', 'c2', 'c3'])
      expect(lone.recordedCount).toBe(4)
      expect(lone.messages[2]).toBe(`ID:4:-:${'f'.repeat(16)}\0\0\0\x09sealed-c3`)
    })

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

    it('keeps no version per key: a read holds while the entry is the one read, and a key read absent while it is absent', async () => {
      const client = await admin(server)
      const name = freshName()
      const store = await open(server, { name })
      const k = keysOf(name)
      await store.set('a', 1)
      await store.set('gone', 1)
      await store.delete('gone')
      // The whole store: its meta, one field per entry beside the id and counters, the order
      // and the commit record. Nothing for the deleted key.
      expect((await client.keys(`anystore:{${name}}:*`)).sort()).toEqual([k.commits, k.entries, k.meta, k.order].sort())
      const raw = client.withTypeMapping({ [36]: Buffer } as const)
      const own = ((await raw.hKeys(k.entries)) as unknown as Buffer[]).filter((f) => f.length !== 16)
      expect(own.map(String).sort()).toEqual(['id', 'ins', 'seq'])
      expect(await entryFields(client, k.entries)).toHaveLength(1)

      // The same value written again by someone else is another write: the read no longer holds.
      let calls = 0
      await store.run(async (tx) => {
        calls++
        const seen = (await tx.get('a')) as number
        if (calls === 1) await store.set('a', seen)
        await tx.set('a', seen + 1)
      })
      expect(calls).toBe(2)
      expect(await store.get('a')).toBe(2)

      // Set and deleted again meanwhile, a key read absent is still absent: the read holds.
      calls = 0
      await store.run(async (tx) => {
        calls++
        expect(await tx.get('b')).toBeUndefined()
        if (calls === 1) {
          await store.set('b', 'brief')
          await store.delete('b')
        }
        await tx.set('b', calls)
      })
      expect(calls).toBe(1)
      expect(await store.get('b')).toBe(1)

      // Set meanwhile and still there, it is a conflict.
      calls = 0
      await store.run(async (tx) => {
        calls++
        if ((await tx.get('c')) === undefined && calls === 1) await store.set('c', 'theirs')
        await tx.set('c', `mine ${calls}`)
      })
      expect(calls).toBe(2)
      expect(await store.get('c')).toBe('mine 2')
    })

    it('a key read twice with two different entries is a conflict, even when it is as first read by the commit', async () => {
      const store = await open(server)
      let calls = 0
      const seen: unknown[][] = []
      await store.run(async (tx) => {
        calls++
        const first = await tx.get('k')
        if (calls === 1) await store.set('k', 5)
        const second = await tx.get('k')
        if (calls === 1) await store.delete('k')
        seen.push([first, second])
        await tx.set('out', calls)
      })
      // Absent, then 5: no one state of the store has both, so the first try must not commit.
      expect(seen).toEqual([
        [undefined, 5],
        [undefined, undefined],
      ])
      expect(calls).toBe(2)
      expect(await store.get('out')).toBe(2)
    })

    it('the commit script refuses a read of a present key whose key is gone, whatever mark was read', async () => {
      const client = await admin(server)
      const name = freshName()
      const store = await open(server, { name })
      await store.set('gone', 1)
      const [field] = await entryFields(client, keysOf(name).entries)
      await store.delete('gone')
      const script = await commitScript(client, name)
      const reply = await script('c1', ['s', 'x'.repeat(16), 'sealed'], false, [field!, '', '1'])
      expect(reply[0]).toBe('conflict')
      expect(await store.keys()).toEqual([])
    })
  })
}
