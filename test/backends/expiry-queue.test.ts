import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { Change } from '../../src/backends/backend.js'
import { dropExpiredSets, ExpiryQueue } from '../../src/backends/expiry.js'
import type { Entry } from '../../src/format/payload.js'
import type { StoreKey } from '../../src/store/types.js'
import { propertyOptions } from '../helpers.js'

const value = Uint8Array.of(0xc0)
const entry = (expiresAt: number | undefined): Entry =>
  expiresAt === undefined ? { value } : { value, expiresAt }

/** Commits `changes` to `map` as a backend does, with the queue following them. */
function commit(map: Map<StoreKey, Entry>, queue: ExpiryQueue, changes: Change[]): void {
  for (const change of changes) {
    if (change.kind === 'set') map.set(change.key, change.entry)
    else if (change.kind === 'delete') map.delete(change.key)
    else map.clear()
  }
  queue.trackChanges(changes)
}

const key = fc.constantFrom<StoreKey>('a', 'b', 'c', 1, 2)
const time = fc.option(fc.integer({ min: 0, max: 50 }), { nil: undefined })
const change: fc.Arbitrary<Change> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('set' as const), key, entry: time.map(entry) }), weight: 6 },
  { arbitrary: fc.record({ kind: fc.constant('delete' as const), key }), weight: 2 },
  { arbitrary: fc.constant({ kind: 'clear' as const }), weight: 1 },
)

describe('ExpiryQueue', () => {
  it('a purge removes exactly the entries expired by then, whatever the changes before it', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.array(change, { maxLength: 6 }), fc.integer({ min: 0, max: 60 })), {
          maxLength: 20,
        }),
        (steps) => {
          const map = new Map<StoreKey, Entry>()
          const queue = new ExpiryQueue()
          let now = 0
          for (const [changes, advance] of steps) {
            commit(map, queue, changes)
            now += advance % 7
            const expected = [...map].filter(([, e]) => e.expiresAt === undefined || e.expiresAt > now)
            queue.purge(map, now)
            expect([...map]).toEqual(expected)
            const earliest = Math.min(...[...map.values()].map((e) => e.expiresAt ?? Infinity))
            // Never later than the earliest expiry still in the map: nothing can be missed.
            expect(queue.next).toBeLessThanOrEqual(earliest)
          }
        },
      ),
      propertyOptions(300),
    )
  })

  it('built from entries already there (a loaded map), it purges them too', () => {
    const map = new Map<StoreKey, Entry>([
      ['a', entry(30)],
      ['b', entry(undefined)],
      ['c', entry(10)],
      ['d', entry(20)],
    ])
    const queue = new ExpiryQueue([
      ['a', 30],
      ['c', 10],
      ['d', 20],
    ])
    expect(queue.next).toBe(10)
    queue.purge(map, 20)
    expect([...map.keys()]).toEqual(['a', 'b'])
    expect(queue.next).toBe(30)
  })

  it('without expiries, it never reads the clock', () => {
    const queue = new ExpiryQueue()
    const realNow = Date.now
    Date.now = () => {
      throw new Error('the clock was read')
    }
    try {
      expect(queue.purge(new Map<StoreKey, Entry>([['a', entry(undefined)]]))).toBeInstanceOf(Map)
      expect(queue.next).toBe(Number.POSITIVE_INFINITY)
    } finally {
      Date.now = realNow
    }
  })

  it('a key given a new expiry again and again keeps the queue small: its stale times are dropped', () => {
    const queue = new ExpiryQueue()
    const map = new Map<StoreKey, Entry>()
    for (let i = 0; i < 100_000; i++) {
      const at = 1_000_000 + i
      map.set('session', entry(at))
      queue.track('session', at)
    }
    // Had the 99,999 stale times stayed, the earliest would still be the first one.
    expect(queue.next).toBeGreaterThan(1_000_000 + 99_000)
    queue.purge(map, 1_000_000 + 99_998)
    expect(map.has('session')).toBe(true)
    queue.purge(map, 1_000_000 + 99_999)
    expect(map.has('session')).toBe(false)
  })

  it('dropExpiredSets() removes what a commit set that is expired by its time, and only that', () => {
    const map = new Map<StoreKey, Entry>([
      ['past', entry(5)],
      ['later', entry(50)],
      ['plain', entry(undefined)],
      ['untouched', entry(1)],
    ])
    const changes: Change[] = [
      { kind: 'set', key: 'past', entry: entry(5) },
      { kind: 'set', key: 'later', entry: entry(50) },
      { kind: 'set', key: 'plain', entry: entry(undefined) },
    ]
    dropExpiredSets(map, changes, 10)
    expect([...map.keys()]).toEqual(['later', 'plain', 'untouched'])
  })
})
