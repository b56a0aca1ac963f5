import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { Overlay } from '../../src/store/overlay.js'
import {
  type Entry,
  type EntryMap,
  encodePayload,
  StoredEntry,
} from '../../src/format/payload.js'
import { encodeOverlay, PayloadMap } from '../../src/format/payload-map.js'
import type { StoreKey } from '../../src/store/types.js'
import { plainEntries } from '../helpers.js'

const key = fc.oneof(fc.string({ maxLength: 6 }), fc.integer({ min: -50, max: 50 }))
const entry = fc.record(
  {
    value: fc.uint8Array({ maxLength: 12 }),
    expiresAt: fc.integer({ min: 0, max: 2 ** 40 }),
  },
  { requiredKeys: ['value'] },
)
const operation = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('set' as const), key, entry }), weight: 6 },
  { arbitrary: fc.record({ kind: fc.constant('delete' as const), key }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constant('clear' as const) }), weight: 1 },
)


describe('payload records copied in runs', () => {
  it('a loaded payload encodes back to the same bytes', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(key, entry), { maxLength: 30 }), (initial) => {
        const bytes = encodePayload(new Map(initial))
        const loaded = new PayloadMap(bytes)
        for (const [, stored] of loaded) expect(stored).toBeInstanceOf(StoredEntry)
        expect(encodePayload(loaded).equals(bytes)).toBe(true)
      }),
    )
  })

  it('a loaded map with changes on top encodes exactly like the same entries built afresh', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(key, entry), { maxLength: 30 }),
        fc.array(operation, { maxLength: 20 }),
        fc.array(operation, { maxLength: 20 }),
        (initial, firstCommit, secondCommit) => {
          let map: EntryMap = new PayloadMap(encodePayload(new Map(initial)))
          for (const ops of [firstCommit, secondCommit]) {
            const overlay = new Overlay(map)
            for (const op of ops) {
              if (op.kind === 'set') overlay.set(op.key, op.entry)
              else if (op.kind === 'delete') overlay.delete(op.key)
              else overlay.clear()
            }
            const bytes = encodePayload(overlay.entries())
            expect(bytes.equals(encodePayload(plainEntries(overlay.entries())))).toBe(true)
            overlay.applyTo(overlay.base)
            expect(plainEntries(new PayloadMap(bytes))).toEqual(plainEntries(overlay.base))
            // The next round starts from a mix: records of the first payload and fresh entries.
            map = overlay.base
          }
        },
      ),
    )
  })

  it('cuts the value view only when it is read, and cuts the right bytes', () => {
    const loaded = new PayloadMap(
      encodePayload(
        new Map<StoreKey, Entry>([
          ['a', { value: Uint8Array.of(1, 2, 3) }],
          [7, { value: Uint8Array.of(9), expiresAt: 1234 }],
        ]),
      ),
    )
    const a = loaded.get('a') as StoredEntry
    const seven = loaded.get(7) as StoredEntry
    expect([...a.value]).toEqual([1, 2, 3])
    expect(a.value).toBe(a.value)
    expect([...seven.value]).toEqual([9])
    expect(seven.expiresAt).toBe(1234)
    expect(a.expiresAt).toBeUndefined()
  })
})

describe('commits laid out over a payload map', () => {
  it('produce exactly the bytes of encoding every entry, commit after commit', () => {
    let copiedAround = 0
    let cleared = 0
    fc.assert(
      fc.property(
        fc.array(fc.tuple(key, entry), { maxLength: 30 }),
        fc.array(fc.array(operation, { maxLength: 12 }), { maxLength: 5 }),
        (initial, commits) => {
          const map = new PayloadMap(encodePayload(new Map(initial)))
          for (const ops of commits) {
            const overlay = new Overlay(map)
            for (const op of ops) {
              if (op.kind === 'set') overlay.set(op.key, op.entry)
              else if (op.kind === 'delete') overlay.delete(op.key)
              else overlay.clear()
            }
            const expected = encodePayload(plainEntries(overlay.entries()))
            if (overlay.cleared) cleared++
            else copiedAround++
            expect(encodeOverlay(overlay).equals(expected)).toBe(true)
            overlay.applyTo(map)
            expect(plainEntries(new PayloadMap(expected))).toEqual(plainEntries(map))
          }
        },
      ),
      { numRuns: 300 },
    )
    // Both paths ran: copying around the changes, and encoding afresh after a clear().
    expect(copiedAround).toBeGreaterThan(200)
    expect(cleared).toBeGreaterThan(10)
  })
})
