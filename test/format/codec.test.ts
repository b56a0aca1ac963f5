import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { decodeValue, encodeValue, MAX_DEPTH } from '../../src/format/codec.js'
import { propertyOptions } from '../helpers.js'

const roundTrip = (value: unknown) => decodeValue(encodeValue(value))

describe('value codec', () => {
  it('round-trips every supported type exactly', () => {
    const value = {
      str: 'héllo ✓',
      int: 42,
      big: 2 ** 60,
      float: 1.5,
      negZero: -0,
      nan: Number.NaN,
      inf: Number.POSITIVE_INFINITY,
      ninf: Number.NEGATIVE_INFINITY,
      yes: true,
      nil: null,
      undef: undefined,
      bigint: -(2n ** 100n) - 7n,
      zeroBig: 0n,
      bytes: new Uint8Array([0, 1, 255]),
      buffer: Buffer.from('buf'),
      date: new Date('2026-11-22T00:00:00.123Z'),
      invalidDate: new Date(Number.NaN),
      map: new Map<unknown, unknown>([
        [1, 'one'],
        ['1', 'string one'],
        [{ k: 1 }, [1, 2]],
        [undefined, new Set([1n])],
      ]),
      set: new Set([1, 'a', null]),
      nested: [[[{ deep: [undefined, -0] }]]],
      sparse: [1, undefined, 3],
    }
    const out = roundTrip(value) as typeof value
    expect(out).toEqual(value)
    expect(Object.is(out.negZero, -0)).toBe(true)
    expect(Number.isNaN(out.nan)).toBe(true)
    expect('undef' in out).toBe(true)
    expect(Buffer.isBuffer(out.buffer)).toBe(true)
    expect(Buffer.isBuffer(out.bytes)).toBe(false)
    expect(out.bytes).toBeInstanceOf(Uint8Array)
    expect(out.map).toBeInstanceOf(Map)
    expect([...out.map.keys()][2]).toEqual({ k: 1 })
    expect(Number.isNaN(out.invalidDate.getTime())).toBe(true)
  })

  it('round-trips arbitrary JSON-like and special values (property)', () => {
    const special = fc.oneof(
      fc.bigInt(),
      fc.date({ noInvalidDate: false }),
      fc.uint8Array(),
      fc.constantFrom(undefined, -0, Number.NaN, Number.POSITIVE_INFINITY),
      fc.double(),
      fc.string({ unit: 'grapheme' }),
    )
    const { tree } = fc.letrec((tie) => ({
      tree: fc.oneof(
        { depthSize: 'small' },
        special,
        fc.array(tie('tree')),
        fc.dictionary(
          fc.string().filter((k) => k !== '__proto__'),
          tie('tree'),
        ),
        fc.array(fc.tuple(special, tie('tree'))).map((pairs) => new Map(pairs)),
        fc.array(special).map((items) => new Set(items)),
      ),
    }))
    fc.assert(
      fc.property(tree, (value) => {
        expect(roundTrip(value)).toEqual(value)
      }),
      propertyOptions(300),
    )
  })

  it('returns fresh copies: decoded bytes do not alias the stored bytes', () => {
    const encoded = encodeValue({ b: new Uint8Array([1, 2, 3]) })
    const first = decodeValue(encoded) as { b: Uint8Array }
    first.b[0] = 99
    expect((decodeValue(encoded) as { b: Uint8Array }).b[0]).toBe(1)
  })

  it('rejects what it cannot restore, naming where', () => {
    class Point {
      x = 1
    }
    const cases: [unknown, string][] = [
      [() => 1, 'value'],
      [Symbol('s'), 'value'],
      [{ a: [1, new Point()] }, 'value.a[1]'],
      [{ [Symbol('k')]: 1 }, 'value'],
      [new Map([[1, () => 1]]), 'value<value 0>'],
      [new Float64Array(2), 'value'],
      [new ArrayBuffer(4), 'value'],
      [JSON.parse('{"__proto__": {"polluted": true}}'), 'value'],
      [new Error('e'), 'value'],
      [Object(1), 'value'],
    ]
    for (const [value, path] of cases) {
      try {
        encodeValue(value)
        expect.fail(`encoded ${String(value)}`)
      } catch (error) {
        expect((error as { code: string }).code).toBe('ERR_ANYSTORE_UNSUPPORTED_VALUE')
        expect((error as { path: string }).path).toBe(path)
      }
    }
  })

  it('rejects cycles and over-deep nesting, but accepts shared references', () => {
    const cyclic: unknown[] = []
    cyclic.push(cyclic)
    expect(() => encodeValue(cyclic)).toThrow(
      expect.objectContaining({ code: 'ERR_ANYSTORE_UNSUPPORTED_VALUE' }),
    )
    let deep: unknown = 1
    for (let i = 0; i <= MAX_DEPTH; i++) deep = [deep]
    expect(() => encodeValue(deep)).toThrow(
      expect.objectContaining({ code: 'ERR_ANYSTORE_UNSUPPORTED_VALUE' }),
    )
    const shared = { s: 1 }
    expect(roundTrip([shared, shared])).toEqual([{ s: 1 }, { s: 1 }])
  })

  it('accepts null-prototype objects as plain objects', () => {
    const bare = Object.assign(Object.create(null), { a: 1 })
    expect(roundTrip(bare)).toEqual({ a: 1 })
  })
})
