import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { deriveKeys, newKey, parseKey } from '../../../src/crypto.js'
import { open, openSlices, seal } from '../../../src/format/store-file.js'

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

describe('openSlices() keeping each decrypted slice', () => {
  // What readSync does: fewer bytes, or none, past the end of the file.
  const readerOf = (file: Buffer) => (buffer: Buffer, length: number, position: number) =>
    position >= file.length ? 0 : file.copy(buffer, 0, position, Math.min(file.length, position + length))

  for (const compress of [false, true]) {
    it(`returns the payload as 1 MiB parts (compress ${compress})`, () => {
      const payload = Buffer.concat([randomBytes(3 * 1024 * 1024 + 17), Buffer.alloc(5000, 7)])
      const file = sealed(payload, compress)
      const { payload: parts } = openSlices('f', keys, readerOf(file), file.length)
      expect(parts.length).toBe(payload.length)
      if (!compress) expect(parts.parts.length).toBe(4)
      expect(parts.join().equals(payload)).toBe(true)
    })
  }

  it('refuses a changed byte in any slice, a wrong key and a short file', () => {
    const file = sealed(randomBytes(2 * 1024 * 1024 + 3), false)
    for (const at of [80, 1024 * 1024 + 5, file.length - 2]) {
      const changed = Buffer.from(file)
      changed[at] = (changed[at] as number) ^ 1
      expect(() => openSlices('f', keys, readerOf(changed), changed.length)).toThrow(
        expect.objectContaining({ code: 'ERR_ANYSTORE_CORRUPT_FILE' }),
      )
    }
    const otherKeys = deriveKeys(parseKey(newKey()))
    expect(() => openSlices('f', otherKeys, readerOf(file), file.length)).toThrow(
      expect.objectContaining({ code: 'ERR_ANYSTORE_WRONG_KEY' }),
    )
    // The file is shorter than its size said (it was stat'ed before it shrank).
    const short = file.subarray(0, file.length - 1000)
    expect(() => openSlices('f', keys, readerOf(short), file.length)).toThrow(
      expect.objectContaining({ code: 'ERR_ANYSTORE_CORRUPT_FILE' }),
    )
  })
})
