import { createHash, createHmac } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { DEFAULT_ENCRYPTION_KEY, deriveKeys, newKey, parseKey, TAG_SIZE } from '../src/crypto.js'
import { HEADER_SIZE, parseHeader, STATUS_SIZE } from '../src/format/header.js'
import { open, seal } from '../src/format/store-file.js'
import { encodePayload } from '../src/format/payload.js'
import { sealVersion1 } from './format-v1.js'

const sealedBytes = (key: Uint8Array, payload: Uint8Array, compress = false) =>
  Buffer.concat(seal(deriveKeys(key), payload, { compress }).parts)

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (error) {
    return (error as { code?: string }).code
  }
  return undefined
}

describe('keys', () => {
  it('newKey() makes 32 random bytes as unpadded base64', () => {
    const key = newKey()
    expect(key).toMatch(/^[A-Za-z0-9+/]{43}$/)
    expect(parseKey(key)).toHaveLength(32)
    expect(newKey()).not.toBe(key)
  })

  it('accepts padded, unpadded and URL-safe base64 of 16, 24 and 32 bytes, and raw bytes', () => {
    for (const length of [16, 24, 32]) {
      const bytes = Buffer.alloc(length, 0xfb)
      expect(parseKey(bytes.toString('base64'))).toEqual(new Uint8Array(bytes))
      expect(parseKey(bytes.toString('base64').replace(/=+$/, ''))).toEqual(new Uint8Array(bytes))
      expect(parseKey(bytes.toString('base64url'))).toEqual(new Uint8Array(bytes))
      expect(parseKey(new Uint8Array(bytes))).toEqual(new Uint8Array(bytes))
    }
    expect(parseKey(DEFAULT_ENCRYPTION_KEY)).toHaveLength(32)
  })

  it('rejects other lengths and non-base64 with InvalidKeyError, never echoing the key', () => {
    const secretish = 'c2VjcmV0LXNlY3JldC1zZWNyZXQ' // 20 bytes
    for (const bad of [secretish, 'not base64!', '', 42, new Uint8Array(7), 'QUJD=x']) {
      try {
        parseKey(bad)
        expect.fail(`accepted ${String(bad)}`)
      } catch (error) {
        expect((error as { code: string }).code).toBe('ERR_ANYSTORE_INVALID_KEY')
        if (typeof bad === 'string' && bad.length > 0) {
          expect((error as Error).message).not.toContain(bad)
        }
      }
    }
  })
})

describe('seal and open', () => {
  const payload = Buffer.from('the quick brown fox jumps over the lazy dog'.repeat(20))

  it.each([16, 24, 32])(
    'round-trips with a %i-byte key, with and without compression',
    (length) => {
      const key = parseKey(Buffer.alloc(length, 7))
      for (const compress of [false, true]) {
        const bytes = sealedBytes(key, payload, compress)
        const { header, payload: out } = open('f', deriveKeys(key), bytes)
        expect(out.equals(payload)).toBe(true)
        expect(header.keyLength).toBe(length)
        expect(header.flags).toBe(compress ? 1 : 0)
        expect(Math.abs(header.commitTime - Date.now())).toBeLessThan(60_000)
      }
    },
  )

  it('lays out magic, version and sizes as docs/FORMAT.md says', () => {
    const bytes = sealedBytes(parseKey(newKey()), payload)
    expect(bytes.subarray(0, 8).toString('ascii')).toBe('ANYSTORE')
    expect(bytes.readUInt16BE(8)).toBe(3)
    expect(bytes.readUInt8(12)).toBe(32)
    expect(bytes.length).toBe(HEADER_SIZE + payload.length + TAG_SIZE + STATUS_SIZE)
    expect(bytes[bytes.length - 1]).toBe(0)
    expect(bytes.includes(payload.subarray(0, 16))).toBe(false)
  })

  it('uses a fresh commit id and nonce for every commit', () => {
    const key = parseKey(newKey())
    const seen = new Set<string>()
    for (let i = 0; i < 1000; i++) {
      const bytes = sealedBytes(key, payload)
      seen.add(bytes.toString('hex', 24, 52))
    }
    expect(seen.size).toBe(1000)
  })

  it('writes the key check as HMAC-SHA256 and the checksum as SHA-256 of the header, as docs/FORMAT.md says', () => {
    // Version 3: key check at 140..156 over bytes 0..140, checksum at 156..160 over 0..156;
    // version 2: key check at 52..68 over 0..52, checksum at 68..72 over 0..68.
    for (const [formatVersion, check, sum] of [
      [3, 140, 156],
      [2, 52, 68],
    ] as const) {
      for (const length of [16, 24, 32]) {
        const keys = deriveKeys(parseKey(Buffer.alloc(length, length)))
        for (let i = 0; i < 50; i++) {
          const header = seal(keys, payload, { compress: false, formatVersion }).header
          const keyCheck = createHmac('sha256', keys.keyCheck)
            .update(header.subarray(0, check))
            .digest()
          const checksum = createHash('sha256').update(header.subarray(0, sum)).digest()
          expect(header.subarray(check, check + 16).equals(keyCheck.subarray(0, 16))).toBe(true)
          expect(header.subarray(sum, sum + 4).equals(checksum.subarray(0, 4))).toBe(true)
        }
      }
    }
  })

  it('seals a small file as one part and a large one in slices; both open', () => {
    const keys = deriveKeys(parseKey(newKey()))
    const small = Buffer.alloc(1000, 3)
    const large = Buffer.alloc(3 * 1024 * 1024 + 5, 4)
    const one = seal(keys, small, { compress: false })
    expect(one.parts).toHaveLength(1)
    expect(one.parts[0]!.subarray(0, HEADER_SIZE).equals(one.header)).toBe(true)
    const sliced = seal(keys, large, { compress: false })
    expect(sliced.parts.length).toBeGreaterThan(2)
    for (const [sealed, plain] of [
      [one, small],
      [sliced, large],
    ] as const) {
      const bytes = Buffer.concat(sealed.parts)
      expect(bytes.length).toBe(sealed.size)
      expect(open('f', keys, bytes).payload.equals(plain)).toBe(true)
    }
  })

  it('tells a wrong key apart from corruption', () => {
    const key = parseKey(newKey())
    const bytes = sealedBytes(key, payload)
    expect(codeOf(() => open('f', deriveKeys(parseKey(newKey())), bytes))).toBe(
      'ERR_ANYSTORE_WRONG_KEY',
    )
    expect(codeOf(() => open('f', deriveKeys(parseKey(Buffer.alloc(16, 1))), bytes))).toBe(
      'ERR_ANYSTORE_WRONG_KEY',
    )
    for (const at of [20, 45, 60, 70, HEADER_SIZE + 3, bytes.length - 2]) {
      const flipped = Buffer.from(bytes)
      flipped[at]! ^= 0x10
      expect(codeOf(() => open('f', deriveKeys(key), flipped))).toBe('ERR_ANYSTORE_CORRUPT_FILE')
    }
  })

  it('reads the status byte as no part of the content: set or not, the file opens the same', () => {
    const key = deriveKeys(parseKey(newKey()))
    const bytes = Buffer.concat(seal(key, payload, { compress: false }).parts)
    for (const status of [1, 0xff]) {
      const marked = Buffer.from(bytes)
      marked[marked.length - 1] = status
      expect(open('f', key, marked).payload.equals(payload)).toBe(true)
    }
  })

  it('opens a version 1 file, which has no status byte', () => {
    const keys = deriveKeys(parseKey(newKey()))
    const plain = encodePayload([['a', { value: Uint8Array.of(0xa1, 0x78) }]])
    const v1 = sealVersion1(keys, plain)
    expect(parseHeader('f', v1).version).toBe(1)
    expect(open('f', keys, v1).payload.equals(plain)).toBe(true)
    const flipped = Buffer.from(v1)
    flipped[v1.length - 1]! ^= 1
    expect(codeOf(() => open('f', keys, flipped))).toBe('ERR_ANYSTORE_CORRUPT_FILE')
  })

  it('classifies foreign, truncated and newer files', () => {
    const key = deriveKeys(parseKey(newKey()))
    const bytes = sealedBytes(parseKey(newKey()), payload)
    expect(codeOf(() => parseHeader('f', Buffer.alloc(0)))).toBe('ERR_ANYSTORE_NOT_ANYSTORE_FILE')
    expect(codeOf(() => parseHeader('f', Buffer.from('{"json": true}')))).toBe(
      'ERR_ANYSTORE_NOT_ANYSTORE_FILE',
    )
    expect(codeOf(() => parseHeader('f', bytes.subarray(0, 5)))).toBe('ERR_ANYSTORE_CORRUPT_FILE')
    expect(codeOf(() => parseHeader('f', bytes.subarray(0, 40)))).toBe('ERR_ANYSTORE_CORRUPT_FILE')
    // Longer than a version 2 header, shorter than the version 3 header it announces.
    expect(codeOf(() => parseHeader('f', bytes.subarray(0, 100)))).toBe('ERR_ANYSTORE_CORRUPT_FILE')
    expect(codeOf(() => open('f', key, bytes.subarray(0, HEADER_SIZE + 4)))).toBe(
      'ERR_ANYSTORE_CORRUPT_FILE',
    )
    const newer = Buffer.from(bytes)
    newer.writeUInt16BE(4, 8)
    expect(codeOf(() => parseHeader('f', newer))).toBe('ERR_ANYSTORE_UNSUPPORTED_FORMAT')
  })
})
