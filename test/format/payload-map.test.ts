import fc from 'fast-check'
import { describe, expect, it, onTestFinished, vi } from 'vitest'
import { type Entry, encodePayload, PayloadError } from '../../src/format/payload.js'
import { PayloadIndex } from '../../src/format/payload-index.js'
import { encodeOverlay, PayloadMap } from '../../src/format/payload-map.js'
import { Segments } from '../../src/format/segments.js'
import { Overlay } from '../../src/store/overlay.js'
import type { StoreKey } from '../../src/store/types.js'
import { plainEntries, propertyOptions } from '../helpers.js'

const key = fc.oneof(
  fc.string({ maxLength: 4 }),
  fc.string({ unit: 'grapheme', maxLength: 3 }),
  fc.integer({ min: -20, max: 20 }),
  fc.constantFrom(-0, Number.NaN, 0.5, Number.POSITIVE_INFINITY, '0', 'NaN', ''),
)
const value = fc.uint8Array({ maxLength: 6 })
const operation = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('set' as const), key, value }), weight: 5 },
  { arbitrary: fc.record({ kind: fc.constant('delete' as const), key }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constant('get' as const), key }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constant('clear' as const) }), weight: 1 },
)

function entry(bytes: Uint8Array): Entry {
  return { value: bytes }
}

function values(entries: Iterable<[StoreKey, Entry]>): [StoreKey, number[]][] {
  return Array.from(entries, ([k, e]) => [k, [...e.value]])
}

describe('PayloadMap behaves as a Map of the loaded entries', () => {
  it('answers every operation as a Map does, in the same iteration order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(key, value), { maxLength: 25 }),
        fc.array(operation, { maxLength: 40 }),
        (initial, ops) => {
          const model = new Map<StoreKey, Entry>(initial.map(([k, v]) => [k, entry(v)]))
          const map = new PayloadMap(encodePayload(model))
          for (const op of ops) {
            if (op.kind === 'set') {
              model.set(op.key, entry(op.value))
              map.set(op.key, entry(op.value))
            } else if (op.kind === 'delete') {
              expect(map.delete(op.key)).toBe(model.delete(op.key))
            } else if (op.kind === 'clear') {
              model.clear()
              map.clear()
            } else {
              expect(map.has(op.key)).toBe(model.has(op.key))
              const got = map.get(op.key)
              const want = model.get(op.key)
              expect(got === undefined ? undefined : [...got.value]).toEqual(
                want === undefined ? undefined : [...want.value],
              )
            }
            expect(map.size).toBe(model.size)
            // After every change too: keyArray() keeps its last answer until a key comes or goes.
            expect(map.keyArray()).toEqual([...model.keys()])
          }
          expect([...map.keys()]).toEqual([...model.keys()])
          expect(values(map)).toEqual(values(model))
        },
      ),
      propertyOptions(300),
    )
  })
})

describe('PayloadIndex', () => {
  it('finds each of 20,000 keys and no other, whatever their length and script', () => {
    const keys: StoreKey[] = []
    for (let i = 0; i < 10_000; i++) keys.push(`key-${i}`, i * 1.5)
    keys.push('ключ', '鍵🔑', 'x'.repeat(5000), '')
    const payload = encodePayload(keys.map((k) => [k, entry(Uint8Array.of(1))]))
    const index = new PayloadIndex(payload)
    expect(index.count).toBe(keys.length)
    keys.forEach((k, i) => {
      expect(index.find(k)).toBe(i)
      expect(index.keyAt(i)).toBe(k)
    })
    for (const absent of ['key-10000', 'x'.repeat(4999), 1.25, 'ключи', '1.5', -1]) {
      expect(index.find(absent)).toBe(-1)
    }
  })

  it('treats -0 as 0 and every NaN as one key, as Map does', () => {
    const index = new PayloadIndex(
      encodePayload([
        [0, entry(Uint8Array.of(1))],
        [Number.NaN, entry(Uint8Array.of(2))],
      ]),
    )
    expect(index.find(-0)).toBe(0)
    expect(index.find(0 / 0)).toBe(1)
    expect(index.find('0')).toBe(-1)
  })

  it('refuses a payload whose key repeats as it indexes it, before any lookup', () => {
    const payload = encodePayload([
      ['ab', entry(Uint8Array.of(1))],
      ['ac', entry(Uint8Array.of(2))],
    ])
    const second = payload.indexOf('ac')
    payload.write('ab', second)
    expect(() => new PayloadIndex(payload)).toThrow(PayloadError)
    expect(() => new PayloadMap(payload)).toThrow(PayloadError)
    payload.write('ac', second)
    expect(new PayloadIndex(payload).count).toBe(2)
  })

  it('refuses a count that cannot fit, a truncated payload and trailing bytes', () => {
    const payload = encodePayload([
      ['a', entry(Uint8Array.of(1, 2))],
      [7, { value: Uint8Array.of(3), expiresAt: 99 }],
    ])
    for (let length = 0; length < payload.length; length++) {
      expect(() => new PayloadIndex(payload.subarray(0, length))).toThrow(PayloadError)
    }
    expect(() => new PayloadIndex(Buffer.concat([payload, Buffer.of(0)]))).toThrow(PayloadError)
    const huge = Buffer.from(payload)
    huge.writeUInt32BE(0xffffffff, 0)
    expect(() => new PayloadIndex(huge)).toThrow(PayloadError)
  })
})

describe('a payload held in parts', () => {
  /** `payload` cut into parts of `size` bytes, as a large file's slices come out of the decipher. */
  function cut(payload: Buffer, size: number): Segments {
    const parts: Buffer[] = []
    for (let at = 0; at < payload.length; at += size) parts.push(payload.subarray(at, at + size))
    return new Segments(parts)
  }

  it('indexes, answers and re-encodes exactly as the same payload in one piece', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(key, fc.uint8Array({ maxLength: 40 })), { maxLength: 25 }),
        fc.integer({ min: 1, max: 64 }),
        fc.array(operation, { maxLength: 20 }),
        (initial, partSize, ops) => {
          const model = new Map<StoreKey, Entry>(initial.map(([k, v]) => [k, entry(v)]))
          const bytes = encodePayload(model)
          const whole = new PayloadIndex(bytes)
          const parted = new PayloadIndex(cut(bytes, partSize))
          for (let record = 0; record < whole.count; record++) {
            const k = whole.keyAt(record)
            expect(parted.keyAt(record)).toEqual(k)
            expect(parted.find(k)).toBe(record)
            expect([...parted.entryAt(record).value]).toEqual([...whole.entryAt(record).value])
          }
          const map = new PayloadMap(cut(bytes, partSize))
          const overlay = new Overlay(map)
          for (const op of ops) {
            if (op.kind === 'set') overlay.set(op.key, entry(op.value))
            else if (op.kind === 'delete') overlay.delete(op.key)
            else if (op.kind === 'clear') overlay.clear()
          }
          expect(encodeOverlay(overlay).equals(encodePayload(plainEntries(overlay.entries())))).toBe(
            true,
          )
        },
      ),
      propertyOptions(300),
    )
  })

  it('refuses a truncated payload and trailing bytes whatever the part size', () => {
    const payload = encodePayload([
      ['a', entry(Uint8Array.of(1, 2))],
      [7, { value: Uint8Array.of(3), expiresAt: 99 }],
      ['long', entry(new Uint8Array(5000))],
    ])
    for (const size of [1, 3, 16, 4096]) {
      for (const length of [3, 10, 20, payload.length - 1]) {
        expect(() => new PayloadIndex(cut(payload.subarray(0, length), size))).toThrow(
          PayloadError,
        )
      }
      const longer = Buffer.concat([payload, Buffer.of(0)])
      expect(() => new PayloadIndex(cut(longer, size))).toThrow(PayloadError)
      expect(new PayloadIndex(cut(payload, size)).find('long')).toBe(2)
    }
  })
})

describe('Segments', () => {
  it('copies and locates ranges across parts, and refuses one past the end', () => {
    const whole = Buffer.from('abcdefghij')
    const segments = new Segments([whole.subarray(0, 4), whole.subarray(4, 8), whole.subarray(8)])
    const out = Buffer.alloc(10)
    expect(segments.copy(out, 0, 0, 10)).toBe(10)
    expect(out.equals(whole)).toBe(true)
    const [inside, offset] = segments.locate(5, 7)
    expect(inside).toBe(segments.parts[1])
    expect(inside.toString('latin1', offset, offset + 2)).toBe('fg')
    const [across, start] = segments.locate(2, 9)
    expect(across.toString('latin1', start, start + 7)).toBe('cdefghi')
    expect(() => segments.copy(out, 0, 8, 11)).toThrow(RangeError)
    expect(() => Segments.of(Buffer.from('abc')).copy(out, 0, 1, 4)).toThrow(RangeError)
  })
})

describe('PayloadMap.differencesFrom', () => {
  /** The differences as a Map would find them: this map's keys in order, then the keys it lacks. */
  function naive(older: Map<StoreKey, Entry>, newer: Map<StoreKey, Entry>) {
    const out: [StoreKey, number[] | undefined, number[] | undefined][] = []
    const bytes = (e: Entry | undefined) => (e === undefined ? undefined : [...e.value])
    for (const [k, e] of newer) {
      const before = older.get(k)
      if (before === undefined || Buffer.compare(before.value, e.value) !== 0) out.push([k, bytes(before), bytes(e)])
    }
    for (const [k, e] of older) if (!newer.has(k)) out.push([k, bytes(e), undefined])
    return out
  }

  function apply(map: Map<StoreKey, Entry> | PayloadMap, ops: typeof operation extends fc.Arbitrary<infer T> ? T[] : never) {
    for (const op of ops) {
      if (op.kind === 'set') map.set(op.key, entry(op.value))
      else if (op.kind === 'delete') map.delete(op.key)
      else if (op.kind === 'clear') map.clear()
    }
  }

  /** `payload` cut into parts of `size` bytes, as a large file's slices come out of the decipher. */
  function cut(payload: Buffer, size: number): Segments {
    const parts: Buffer[] = []
    for (let at = 0; at < payload.length; at += size) parts.push(payload.subarray(at, at + size))
    return new Segments(parts)
  }

  it('finds what a Map comparison finds, whatever each map changed since it was loaded', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(key, value), { maxLength: 25 }),
        fc.array(operation, { maxLength: 12 }),
        fc.array(operation, { maxLength: 12 }),
        fc.array(operation, { maxLength: 6 }),
        fc.integer({ min: 5, max: 64 }),
        (initial, olderEdits, newerCommits, newerEdits, partSize) => {
          // The watcher's cache: a version loaded, then its own commits on top.
          const olderModel = new Map<StoreKey, Entry>(initial.map(([k, v]) => [k, entry(v)]))
          const older = new PayloadMap(encodePayload(olderModel))
          apply(olderModel, olderEdits)
          apply(older, olderEdits)
          // The version loaded next: others' commits on what was on disk, maybe in slices.
          const newerModel = new Map<StoreKey, Entry>(initial.map(([k, v]) => [k, entry(v)]))
          apply(newerModel, newerCommits)
          const payload = encodePayload(newerModel)
          const newer = new PayloadMap(partSize < 20 ? cut(payload, partSize) : payload)
          apply(newerModel, newerEdits)
          apply(newer, newerEdits)
          const found = newer
            .differencesFrom(older)
            .map(([k, b, a]) => [k, b === undefined ? undefined : [...b.value], a === undefined ? undefined : [...a.value]])
          expect(found).toEqual(naive(olderModel, newerModel))
          // Neither map changed.
          expect(values(older)).toEqual(values(olderModel))
          expect(values(newer)).toEqual(values(newerModel))
        },
      ),
      propertyOptions(500),
    )
  })

  it('compares 100,000 unchanged records without a lookup: one changed key costs little more than the walk', () => {
    const model = new Map<StoreKey, Entry>()
    for (let i = 0; i < 100_000; i++) model.set(`key:${i}`, entry(Buffer.from(`value ${i}`)))
    const older = new PayloadMap(encodePayload(model))
    model.set('key:50000', entry(Buffer.from('changed')))
    model.delete('key:7')
    model.set('new', entry(Uint8Array.of(1)))
    const newer = new PayloadMap(encodePayload(model))
    const finds = vi.spyOn(PayloadIndex.prototype, 'find')
    onTestFinished(() => finds.mockRestore())
    const found = newer.differencesFrom(older).map(([k, b, a]) => [k, b !== undefined, a !== undefined])
    expect(found).toEqual([
      ['key:50000', true, true],
      ['new', false, true],
      ['key:7', true, false],
    ])
    // Only the keys that differ are looked up, not 100,000.
    expect(finds.mock.calls.length).toBeLessThanOrEqual(10)
  })
})
