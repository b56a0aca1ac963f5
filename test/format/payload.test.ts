import { describe, expect, it } from 'vitest'
import { type Entry, encodePayload, PayloadError } from '../../src/format/payload.js'
import { PayloadMap } from '../../src/format/payload-map.js'
import type { StoreKey } from '../../src/store/types.js'

const entry = (text: string, expiresAt?: number): Entry =>
  expiresAt === undefined ? { value: Buffer.from(text) } : { value: Buffer.from(text), expiresAt }

/** The payload as the store loads it. */
const loaded = (bytes: Buffer) => new PayloadMap(bytes)

describe('payload framing', () => {
  it('round-trips keys of both types, order, empty values and expiry metadata', () => {
    const entries: [StoreKey, Entry][] = [
      ['a', entry('1')],
      [1, entry('number one')],
      ['1', entry('string one')],
      ['', entry('')],
      [-0.5, entry('x', 1_800_000_000_000)],
      ['ключ ✓', entry('unicode')],
    ]
    const decoded = loaded(encodePayload(entries))
    expect([...decoded.keys()]).toEqual(entries.map(([k]) => k))
    for (const [key, e] of entries) {
      expect(Buffer.from(decoded.get(key)!.value).equals(Buffer.from(e.value))).toBe(true)
      expect(decoded.get(key)!.expiresAt).toBe(e.expiresAt)
    }
  })

  it('rejects every truncation and trailing bytes with PayloadError', () => {
    const bytes = encodePayload([
      ['key', entry('value')],
      [2, entry('two', 5)],
    ])
    for (let length = 0; length < bytes.length; length++) {
      expect(() => loaded(bytes.subarray(0, length))).toThrow(PayloadError)
    }
    expect(() => loaded(Buffer.concat([bytes, Buffer.from([0])]))).toThrow(PayloadError)
  })

  it('rejects unknown key types and entry flags', () => {
    const bytes = encodePayload([['k', entry('v')]])
    const badKeyType = Buffer.from(bytes)
    badKeyType[4] = 9
    expect(() => loaded(badKeyType)).toThrow(PayloadError)
    const badFlags = Buffer.from(bytes)
    badFlags[4 + 1 + 4 + 1] = 0x80
    expect(() => loaded(badFlags)).toThrow(PayloadError)
  })
})
