import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { Overlay } from '../../src/store/overlay.js'
import type { Entry, EntryMap } from '../../src/format/payload.js'
import { propertyOptions } from '../helpers.js'

const entry = (n: number): Entry => ({ value: Uint8Array.of(n) })
const view = (map: Iterable<[unknown, Entry]>) => Array.from(map, ([k, e]) => [k, e.value[0]])

type Op = { op: 'set'; key: string; n: number } | { op: 'delete'; key: string } | { op: 'clear' }

const key = fc.constantFrom('a', 'b', 'c', 'd', 'e')
const ops = fc.array(
  fc.oneof(
    fc.record({ op: fc.constant('set' as const), key, n: fc.nat(255) }),
    fc.record({ op: fc.constant('delete' as const), key }),
    fc.record({ op: fc.constant('clear' as const) }),
  ),
  { maxLength: 30 },
)

describe('Overlay', () => {
  it('reads, sizes, iterates and applies exactly like a Map with the same operations', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(key, fc.nat(255)), { selector: ([k]) => k }),
        ops,
        (initial, steps: Op[]) => {
          const base: EntryMap = new Map(initial.map(([k, n]) => [k, entry(n)]))
          const model: EntryMap = new Map(base)
          const overlay = new Overlay(base)
          for (const step of steps) {
            if (step.op === 'set') {
              overlay.set(step.key, entry(step.n))
              model.set(step.key, entry(step.n))
            } else if (step.op === 'delete') {
              expect(overlay.delete(step.key)).toBe(model.delete(step.key))
            } else {
              overlay.clear()
              model.clear()
            }
            expect(overlay.size).toBe(model.size)
            expect(view(overlay.entries())).toEqual(view(model))
            for (const k of ['a', 'b', 'c', 'd', 'e']) expect(overlay.has(k)).toBe(model.has(k))
          }
          const untouched = view(base)
          expect(view(new Map(initial.map(([k, n]) => [k, entry(n)])))).toEqual(untouched)
          overlay.applyTo(base)
          expect(view(base)).toEqual(view(model))
        },
      ),
      propertyOptions(500),
    )
  })

  it('reports whether anything changed', () => {
    const overlay = new Overlay(new Map([['a', entry(1)]]))
    expect(overlay.hasChanges).toBe(false)
    expect(overlay.delete('missing')).toBe(false)
    expect(overlay.hasChanges).toBe(false)
    overlay.set('b', entry(2))
    expect(overlay.hasChanges).toBe(true)
  })
})
