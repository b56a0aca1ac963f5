import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { encodeValue } from '../../src/format/codec.js'
import { InvalidJsonError } from '../../src/store/errors.js'
import { needsEntriesForm, storeFromJson, storeToJson } from '../../src/cli/store-json.js'
import { fromTagged, parseTagged, stringifyTagged, toTagged } from '../../src/format/tagged-json.js'
import { propertyOptions } from '../helpers.js'

/** Exact equality as the store sees it: the codec's bytes tell -0 from 0, Buffer from Uint8Array, key order. */
function sameStored(a: unknown, b: unknown): boolean {
  return Buffer.from(encodeValue(a)).equals(Buffer.from(encodeValue(b)))
}

const roundTrip = (value: unknown) => parseTagged(stringifyTagged(value))

const safeKey = fc.string().filter((key) => key !== '__proto__')

const { value: storable } = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(null, undefined, true, false, -0, 0, Number.NaN, Number.POSITIVE_INFINITY),
    fc.double(),
    fc.string(),
    fc.bigInt(),
    fc.date(),
    fc.uint8Array({ maxLength: 8 }),
    fc.uint8Array({ maxLength: 8 }).map((bytes) => Buffer.from(bytes)),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.oneof(safeKey, fc.constant('$anystore')), tie('value'), { maxKeys: 4 }),
    fc.array(fc.tuple(tie('value'), tie('value')), { maxLength: 3 }).map((pairs) => new Map(pairs)),
    fc.array(tie('value'), { maxLength: 3 }).map((items) => new Set(items)),
  ),
}))

describe('tagged JSON', () => {
  it('round-trips every storable type exactly (property)', () => {
    fc.assert(
      fc.property(storable, (value) => {
        const text = stringifyTagged(value)
        expect(JSON.parse(text)).toBeDefined()
        expect(sameStored(parseTagged(text), value)).toBe(true)
      }),
      propertyOptions(300),
    )
  })

  it('writes the documented tags', () => {
    expect(toTagged(12345678901234567890n)).toEqual({
      $anystore: 'bigint',
      value: '12345678901234567890',
    })
    expect(toTagged(-0)).toEqual({ $anystore: 'number', value: '-0' })
    expect(toTagged(Number.NaN)).toEqual({ $anystore: 'number', value: 'NaN' })
    expect(toTagged(Number.NEGATIVE_INFINITY)).toEqual({ $anystore: 'number', value: '-Infinity' })
    expect(toTagged(undefined)).toEqual({ $anystore: 'undefined' })
    expect(toTagged(new Date(0))).toEqual({ $anystore: 'date', value: '1970-01-01T00:00:00.000Z' })
    expect(toTagged(new Date(Number.NaN))).toEqual({ $anystore: 'date', value: null })
    expect(toTagged(Uint8Array.of(1, 2, 255))).toEqual({ $anystore: 'bytes', value: 'AQL/' })
    expect(toTagged(Buffer.from('hi'))).toEqual({ $anystore: 'buffer', value: 'aGk=' })
    expect(toTagged(new Map([[1, 'a']]))).toEqual({ $anystore: 'map', value: [[1, 'a']] })
    expect(toTagged(new Set(['x']))).toEqual({ $anystore: 'set', value: ['x'] })
    expect(toTagged({ $anystore: 'bigint', value: '1' })).toEqual({
      $anystore: 'object',
      value: { $anystore: 'bigint', value: '1' },
    })
  })

  it('keeps a plain object with a "$anystore" property a plain object', () => {
    const value = { $anystore: 'date', value: 'not a tag' }
    expect(roundTrip(value)).toEqual(value)
  })

  it('refuses __proto__ in objects and leaves Object.prototype alone', () => {
    for (const text of [
      '{"a":{"__proto__":{"polluted":1}}}',
      '{"__proto__":{"polluted":1}}',
      '{"$anystore":"object","value":{"__proto__":{"polluted":1}}}',
    ]) {
      expect(() => parseTagged(text)).toThrow(InvalidJsonError)
      try {
        parseTagged(text)
      } catch (error) {
        expect((error as InvalidJsonError).code).toBe('ERR_ANYSTORE_INVALID_JSON')
      }
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it.each([
    ['an unknown tag', '{"$anystore":"regexp","value":"x"}'],
    ['a tag with an extra property', '{"$anystore":"bigint","value":"1","x":2}'],
    ['a bigint that is not an integer', '{"$anystore":"bigint","value":"1.5"}'],
    ['bad base64', '{"$anystore":"bytes","value":"@@@@"}'],
    ['an unknown special number', '{"$anystore":"number","value":"12"}'],
    ['a bad date', '{"$anystore":"date","value":"yesterday"}'],
    ['a map entry that is not a pair', '{"$anystore":"map","value":[[1]]}'],
    ['text that is not JSON', '{"a":'],
  ])('rejects %s with ERR_ANYSTORE_INVALID_JSON', (_, text) => {
    let code: unknown
    try {
      parseTagged(text)
    } catch (error) {
      code = (error as { code?: unknown }).code
    }
    expect(code).toBe('ERR_ANYSTORE_INVALID_JSON')
  })

  it('rejects hostile nesting with a typed error, not a stack overflow', () => {
    const deep = `${'['.repeat(5000)}${']'.repeat(5000)}`
    expect(() => fromTagged(JSON.parse(deep))).toThrow(InvalidJsonError)
  })
})

describe('store JSON', () => {
  it('uses an object for string keys and the entries form when a key is a number or "$anystore"', () => {
    expect(needsEntriesForm(['a', 'b'])).toBe(false)
    expect(needsEntriesForm(['a', 1])).toBe(true)
    expect(needsEntriesForm(['$anystore'])).toBe(true)
    expect(JSON.parse(storeToJson([['a', 1n]]))).toEqual({ a: { $anystore: 'bigint', value: '1' } })
    expect(JSON.parse(storeToJson([[1, 'x']]))).toEqual({ $anystore: 'entries', value: [[1, 'x']] })
  })

  it('round-trips any store exactly, key order and key types included (property)', () => {
    const storeKey = fc.oneof(
      fc.string(),
      fc.constant('$anystore'),
      fc.constant('__proto__'),
      fc.double(),
    )
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(storeKey, storable), { selector: ([k]) => k, maxLength: 6 }),
        (entries) => {
          const back = storeFromJson(JSON.parse(storeToJson(entries)))
          expect(back.length).toBe(entries.length)
          back.forEach(([key, value], i) => {
            expect(Object.is(key, entries[i]![0])).toBe(true)
            expect(sameStored(value, entries[i]![1])).toBe(true)
          })
        },
      ),
      propertyOptions(200),
    )
  })

  it('keeps the order of keys that a JSON object would reorder (integer-like strings)', () => {
    // Found by the property above: objects list integer-like keys first, whatever the order.
    for (const entries of [
      [
        ['__proto__', null],
        ['0', null],
      ],
      [
        ['b', 1],
        ['10', 2],
        ['a', 3],
        ['4294967294', 4],
      ],
    ] as [string, unknown][][]) {
      const back = storeFromJson(JSON.parse(storeToJson(entries)))
      expect(back.map(([key]) => key)).toEqual(entries.map(([key]) => key))
    }
  })

  it('rejects a malformed entries form', () => {
    for (const text of [
      '[]',
      '{"$anystore":"entries","value":[[{}, 1]]}',
      '{"$anystore":"map","value":[]}',
    ]) {
      expect(() => storeFromJson(JSON.parse(text))).toThrow(InvalidJsonError)
    }
  })
})
