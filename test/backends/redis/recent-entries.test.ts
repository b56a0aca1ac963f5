import { describe, expect, it } from 'vitest'
import { RECENT_ENTRIES, RECENT_ENTRY_BYTES, RecentEntries } from '../../../src/backends/redis/recent-entries.js'

// The entries a Redis store instance keeps opened (no Redis needed): found only for the very
// bytes they were opened from, bounded in number and size.

const field = (n: number) => Buffer.from(n.toString(16).padStart(32, '0'), 'hex')
const item = (n: number): [string, { value: Uint8Array }] => [`k${n}`, { value: Buffer.from([n & 0xff]) }]

describe('redis: entries kept opened', () => {
  it('are found only for the same field and exactly the same sealed bytes', () => {
    const recent = new RecentEntries()
    const sealed = Buffer.from('sealed bytes of one write')
    recent.remember(field(1), sealed, item(1))
    expect(recent.get(field(1), Buffer.from(sealed))).toEqual(item(1))
    // Another field with the same bytes: an entry moved there must be opened (and fail) anew.
    expect(recent.get(field(2), sealed)).toBeUndefined()
    const changed = Buffer.from(sealed)
    changed[changed.length - 1]! ^= 1
    expect(recent.get(field(1), changed)).toBeUndefined()
    expect(recent.get(field(1), sealed.subarray(1))).toBeUndefined()
    // The value kept is a copy too, of its own memory.
    const value = Buffer.from('value')
    recent.remember(field(3), Buffer.from('three'), ['k3', { value, expiresAt: 5 }])
    value[0] = 0
    const kept = recent.get(field(3), Buffer.from('three'))!
    expect(Buffer.from(kept[1].value).toString()).toBe('value')
    expect(kept[1].expiresAt).toBe(5)
    expect(kept[1].value.buffer.byteLength).toBe(5)
    // A copy is kept: the caller's buffer changing afterwards changes nothing.
    sealed[0]! ^= 1
    expect(recent.get(field(1), sealed)).toBeUndefined()
    sealed[0]! ^= 1
    expect(recent.get(field(1), sealed)).toEqual(item(1))
    // A later write of the field takes the place of the earlier.
    recent.remember(field(1), changed, item(2))
    expect(recent.get(field(1), sealed)).toBeUndefined()
    expect(recent.get(field(1), changed)).toEqual(item(2))
  })

  it('keep at most RECENT_ENTRIES, the least recently used going first, and none past RECENT_ENTRY_BYTES', () => {
    const recent = new RecentEntries()
    const bytes = (n: number) => Buffer.from(`sealed ${n}`)
    for (let n = 0; n < RECENT_ENTRIES; n++) recent.remember(field(n), bytes(n), item(n))
    // Entry 0 used again: entry 1 is now the least recently used.
    expect(recent.get(field(0), bytes(0))).toEqual(item(0))
    recent.remember(field(RECENT_ENTRIES), bytes(RECENT_ENTRIES), item(RECENT_ENTRIES))
    expect(recent.size).toBe(RECENT_ENTRIES)
    expect(recent.get(field(1), bytes(1))).toBeUndefined()
    expect(recent.get(field(0), bytes(0))).toEqual(item(0))
    expect(recent.get(field(RECENT_ENTRIES), bytes(RECENT_ENTRIES))).toEqual(item(RECENT_ENTRIES))
    const largest = Buffer.alloc(RECENT_ENTRY_BYTES, 7)
    recent.remember(field(9999), largest, item(9999))
    expect(recent.get(field(9999), largest)).toEqual(item(9999))
    // A later entry too large to keep under the field drops the earlier one.
    const large = Buffer.alloc(RECENT_ENTRY_BYTES + 1, 7)
    recent.remember(field(9999), large, item(9999))
    expect(recent.get(field(9999), large)).toBeUndefined()
    expect(recent.get(field(9999), largest)).toBeUndefined()
  })
})
