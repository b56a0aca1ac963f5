import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { deriveKeys, newKey, open, parseKey, seal } from '../src/crypto.js'

const keys = deriveKeys(parseKey(newKey()))

function sealed(payload: Buffer, compress: boolean): Buffer {
  return Buffer.concat(seal(keys, payload, { compress }).parts)
}

describe('open() decrypting in place', () => {
  for (const compress of [false, true]) {
    it(`returns the same payload as a copying open, across 1 MiB slices (compress ${compress})`, () => {
      const payload = Buffer.concat([randomBytes(3 * 1024 * 1024 + 17), Buffer.alloc(5000, 7)])
      const file = sealed(payload, compress)
      const copying = open('f', keys, Buffer.from(file)).payload
      const inPlace = open('f', keys, Buffer.from(file), { inPlace: true }).payload
      expect(copying.equals(payload)).toBe(true)
      expect(inPlace.equals(payload)).toBe(true)
    })
  }

  it('still refuses a changed byte', () => {
    const file = sealed(randomBytes(2 * 1024 * 1024), false)
    const last = file.length - 100
    file[last] = (file[last] as number) ^ 1
    expect(() => open('f', keys, file, { inPlace: true })).toThrow(
      expect.objectContaining({ code: 'ERR_ANYSTORE_CORRUPT_FILE' }),
    )
  })
})
