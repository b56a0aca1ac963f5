import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { Change, EntryReader } from '../../src/backends/backend.js'
import { applyChanges, MemoryBackend } from '../../src/backends/memory.js'
import type { Entry } from '../../src/format/payload.js'
import { PendingChanges, ReadThrough } from '../../src/store/pending-changes.js'
import type { StoreKey } from '../../src/store/types.js'
import { propertyOptions } from '../helpers.js'

/**
 * PendingChanges against a Map: the list it keeps, applied to any base, must give what the
 * calls themselves give; and reads through it (one layer or two, over a synchronous or an
 * asynchronous base) must answer as that result does.
 */

const keys = fc.constantFrom<StoreKey>('a', 'b', 'c', 'user:1', 'user:2', 1, 2)
const change: fc.Arbitrary<Change> = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(keys, fc.nat(99)).map(([key, n]): Change => ({ kind: 'set', key, entry: entry(n) })) },
  { weight: 4, arbitrary: keys.map((key): Change => ({ kind: 'delete', key })) },
  { weight: 1, arbitrary: fc.constant<Change>({ kind: 'clear' }) },
)
const base = fc.array(fc.tuple(keys, fc.nat(99)), { maxLength: 6 })

function entry(n: number): Entry {
  return { value: Uint8Array.of(n) }
}

function plain(entries: Iterable<[StoreKey, Entry]>): [StoreKey, number][] {
  return Array.from(entries, ([key, e]) => [key, e.value[0]!])
}

/** The same reads, answered as promises and async iterables: a network backend's shape. */
function asynchronous(reader: EntryReader): EntryReader {
  return {
    get: async (key) => reader.get(key),
    has: async (key) => reader.has(key),
    size: async () => reader.size(),
    async *keys(query) {
      yield* reader.keys(query)
    },
    async *entries(query) {
      yield* reader.entries(query)
    },
  }
}

async function all<T>(items: Iterable<T> | AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const item of items) out.push(item)
  return out
}

describe('PendingChanges', () => {
  it('its change list applied to the base gives what the calls give, and reads through it agree', async () => {
    await fc.assert(
      fc.asyncProperty(
        base,
        fc.array(change, { maxLength: 25 }),
        fc.nat(25),
        fc.boolean(),
        async (start, changes, split, async) => {
          const initial = new Map(start.map(([k, n]): [StoreKey, Entry] => [k, entry(n)]))
          // What the calls themselves do, one by one.
          const expected = new Map(initial)
          const results = applyChanges(expected, changes)
          // Two layers, as while a commit is under way: the older one taken, newer calls on top.
          const older = new PendingChanges()
          const newer = new PendingChanges()
          changes.forEach((c, i) => (i < split ? older : newer).apply(c))
          const store = new MemoryBackend(initial)
          const below: EntryReader = async ? asynchronous(store) : store
          const reader = new ReadThrough(newer, new ReadThrough(older, below))

          for (const key of ['a', 'b', 'c', 'user:1', 'user:2', 1, 2, 'never'] as StoreKey[]) {
            expect(await reader.has(key)).toBe(expected.has(key))
            expect((await reader.get(key))?.value[0]).toBe(expected.get(key)?.value[0])
          }
          expect(await reader.size()).toBe(expected.size)
          expect(plain(await all(reader.entries()))).toEqual(plain(expected))
          expect(await all(reader.keys())).toEqual([...expected.keys()])
          expect(await all(reader.keys({ prefix: 'user:' }))).toEqual(
            [...expected.keys()].filter((k) => typeof k === 'string' && k.startsWith('user:')),
          )

          // The lists a commit would apply, older first, to the base as it is then.
          const committed = new Map(initial)
          applyChanges(committed, [...older.changes(), ...newer.changes()])
          expect(plain(committed)).toEqual(plain(expected))
          // A failed commit's changes put back in front of the newer ones: the same result.
          const merged = new Map(initial)
          applyChanges(merged, older.followedBy(newer).changes())
          expect(plain(merged)).toEqual(plain(expected))
          // Deletes are answered by what was seen; the list never grows past the calls.
          expect(older.changes().length + newer.changes().length).toBeLessThanOrEqual(changes.length)
          expect(results.length).toBe(changes.length)
        },
      ),
      propertyOptions(300),
    )
  })

  it('a delete is recorded even of a key the list has never seen: another process may have set it by the commit', () => {
    const pending = new PendingChanges()
    pending.apply({ kind: 'delete', key: 'x' })
    expect(pending.changes()).toEqual([{ kind: 'delete', key: 'x' }])
    const later = new Map<StoreKey, Entry>([['x', entry(1)]])
    applyChanges(later, pending.changes())
    expect(later.has('x')).toBe(false)
    // After a clear in the list, it is absent already: nothing more to record.
    pending.apply({ kind: 'clear' })
    pending.apply({ kind: 'delete', key: 'y' })
    expect(pending.changes()).toEqual([{ kind: 'clear' }])
  })

  it('repeated writes of a key keep one change for it', () => {
    const pending = new PendingChanges()
    for (let i = 0; i < 1000; i++) pending.apply({ kind: 'set', key: 'hot', entry: entry(i % 100) })
    expect(pending.changes()).toHaveLength(1)
  })
})
