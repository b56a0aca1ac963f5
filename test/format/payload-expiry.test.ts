import { describe, expect, it } from 'vitest'
import { type Entry, encodePayload, PayloadError } from '../../src/format/payload.js'
import { PayloadIndex } from '../../src/format/payload-index.js'
import { PayloadMap } from '../../src/format/payload-map.js'
import type { StoreKey } from '../../src/store/types.js'

const value = Uint8Array.of(0xc0)
const plain = (): Entry => ({ value })
const expiring = (expiresAt: number): Entry => ({ value, expiresAt })

describe('what a payload index learns of expiries at load', () => {
  it('a payload without expiries: none learnt, every record reads as never expiring', () => {
    const index = new PayloadIndex(
      encodePayload([
        ['a', plain()],
        [2, plain()],
      ]),
    )
    expect(index.earliestExpiry).toBe(Number.POSITIVE_INFINITY)
    expect([index.expiryAt(0), index.expiryAt(1)]).toEqual([Infinity, Infinity])
  })

  it('each record’s expiry and the earliest of them, from the scan', () => {
    const index = new PayloadIndex(
      encodePayload([
        ['a', expiring(5_000)],
        ['b', plain()],
        [3, expiring(-1)],
        ['d', expiring(7_000)],
      ]),
    )
    expect(index.earliestExpiry).toBe(-1)
    expect([0, 1, 2, 3].map((r) => index.expiryAt(r))).toEqual([5_000, Infinity, -1, 7_000])
  })

  it('an expiry of NaN is refused: no writer stores one', () => {
    const payload = encodePayload([['a', expiring(Number.NaN)]])
    expect(() => new PayloadIndex(payload)).toThrow(PayloadError)
  })
})

describe('PayloadMap.expiries()', () => {
  const sorted = (pairs: Iterable<[StoreKey, number]>) =>
    [...pairs].sort((x, y) => String(x[0]).localeCompare(String(y[0])))

  it('gives the loaded records’ expiries and follows the changes made since', () => {
    const map = new PayloadMap(
      encodePayload([
        ['kept', expiring(100)],
        ['overwritten', expiring(200)],
        ['deleted', expiring(300)],
        ['cleared-expiry', expiring(400)],
        ['plain', plain()],
      ]),
    )
    expect(sorted(map.expiries())).toEqual([
      ['cleared-expiry', 400],
      ['deleted', 300],
      ['kept', 100],
      ['overwritten', 200],
    ])
    map.set('overwritten', expiring(250))
    map.delete('deleted')
    map.set('cleared-expiry', plain())
    map.set('plain', expiring(500))
    map.set('added', expiring(600))
    map.delete('kept')
    map.set('kept', expiring(700))
    expect(sorted(map.expiries())).toEqual([
      ['added', 600],
      ['kept', 700],
      ['overwritten', 250],
      ['plain', 500],
    ])
  })

  it('of a payload without expiries, and nothing set since: none', () => {
    const entries: [StoreKey, Entry][] = Array.from({ length: 100 }, (_, i) => [i, plain()])
    expect([...new PayloadMap(encodePayload(entries)).expiries()]).toEqual([])
  })
})
