import fc from 'fast-check'
import type { StoreKey } from '../src/index.js'

/**
 * Keys: a small pool so that operations collide on the same key often, plus the odd random
 * string. Includes the awkward ones: empty, unicode with spaces, numbers that differ from
 * their string form, NaN and -0 (which a Map folds into 0), and prototype-ish names.
 */
export const keyArb: fc.Arbitrary<StoreKey> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.constantFrom<StoreKey>(
      'a',
      'b',
      '',
      '1',
      1,
      0,
      -1,
      2.5,
      Number.NaN,
      'ünï cødé 🔑 key',
      '__proto__',
      'constructor',
    ),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
  { weight: 1, arbitrary: fc.integer() },
)

/** Every leaf type the codec promises to restore exactly. */
const leafArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.constant(undefined),
  fc.boolean(),
  fc.integer(),
  fc.double(), // includes NaN, -0, ±Infinity
  fc.constantFrom(Number.NaN, -0, Number.MAX_SAFE_INTEGER + 2),
  fc.bigInt(),
  fc.bigInt({ min: -(2n ** 200n), max: 2n ** 200n }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.date(), // includes invalid dates
  fc.uint8Array({ maxLength: 40 }),
  fc.uint8Array({ maxLength: 40 }).map((bytes) => Buffer.from(bytes)),
)

const plainKey = fc.string({ maxLength: 8 }).filter((k) => k !== '__proto__')

/** Arrays, plain objects, Maps and Sets of the leaves, nested a few levels. */
const nestedArb: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leafArb,
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(plainKey, tie('value'), { maxKeys: 5, noNullPrototype: true }),
    fc.array(fc.tuple(tie('value'), tie('value')), { maxLength: 4 }).map((pairs) => new Map(pairs)),
    fc.array(tie('value'), { maxLength: 4 }).map((items) => new Set(items)),
  ),
})).value

/** A value nested `depth` levels deep (the codec accepts up to 100). */
export function nestedTo(depth: number, leaf: unknown = 'bottom'): unknown {
  let value: unknown = leaf
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? [value] : { inner: value }
  return value
}

export const valueArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 10, arbitrary: nestedArb },
  { weight: 1, arbitrary: fc.integer({ min: 50, max: 99 }).map((depth) => nestedTo(depth)) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(
        fc.integer({ min: 10_000, max: 300_000 }),
        fc.string({ unit: 'grapheme', minLength: 1, maxLength: 4 }),
      )
      .map(([length, unit]) => unit.repeat(Math.ceil(length / unit.length))),
  },
)

/** Values the store must refuse with UnsupportedValueError, leaving its state unchanged. */
export const unsupportedValueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(() => 1),
  fc.constant(Symbol('s')),
  fc.constant(new (class Point {})()),
  fc.constant(nestedTo(101)),
  fc.constant({ nested: [new WeakMap()] }),
  fc.constant(
    (() => {
      const loop: Record<string, unknown> = {}
      loop.self = loop
      return loop
    })(),
  ),
)
