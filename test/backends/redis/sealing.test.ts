import { createCipheriv, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { EntryKeys, openEntry, READY_CIPHERS, redisKeys, sealEntry } from '../../../src/backends/redis/sealing.js'
import { deriveKeys } from '../../../src/crypto.js'

// The derivation of each entry's own key (no Redis needed).

describe('redis sealing: entry keys', () => {
  it('computes AES-256-CMAC of one block as NIST SP 800-38B gives it', () => {
    // SP 800-38B, appendix D.3 (AES-256), example 2: a 16-byte message.
    const key = Buffer.from('603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4', 'hex')
    const message = Buffer.from('6bc1bee22e409f96e93d7e117393172a', 'hex')
    expect(new EntryKeys(key).cmacBlocks(Buffer.from(message)).toString('hex')).toBe('28a7023f452e8f82bd4bf28d8c37c35c')
    // Several blocks at once are each one's CMAC, and the cipher kept between calls gives the same again.
    const keys = new EntryKeys(key)
    const twice = keys.cmacBlocks(Buffer.concat([message, message]))
    expect(twice.toString('hex')).toBe('28a7023f452e8f82bd4bf28d8c37c35c'.repeat(2))
    expect(keys.cmacBlocks(Buffer.from(message)).toString('hex')).toBe('28a7023f452e8f82bd4bf28d8c37c35c')
  })

  it('derives a key as SP 800-108 counter mode over CMAC: block i is the counter i then the salt', () => {
    const key = Buffer.alloc(32, 7)
    const salt = Buffer.from('000102030405060708090a0b0c0d0e', 'hex')
    // Computed here without EntryKeys: CMAC of a full block by its definition, AES-CBC-MAC with
    // the last block XORed with k1.
    const aes = (block: Buffer) => {
      const cipher = createCipheriv('aes-256-ecb', key, null)
      cipher.setAutoPadding(false)
      return cipher.update(block)
    }
    const l = aes(Buffer.alloc(16))
    const k1 = Buffer.alloc(16)
    const shifted = (BigInt(`0x${l.toString('hex')}`) << 1n) & ((1n << 128n) - 1n)
    const withRb = l[0]! & 0x80 ? shifted ^ 0x87n : shifted
    Buffer.from(withRb.toString(16).padStart(32, '0'), 'hex').copy(k1)
    const cmac = (block: Buffer) => aes(Buffer.from(block.map((byte, i) => byte ^ k1[i]!)))
    const expected = Buffer.concat([
      cmac(Buffer.concat([Buffer.of(1), salt])),
      cmac(Buffer.concat([Buffer.of(2), salt])),
    ])
    const keys = new EntryKeys(key)
    expect(keys.derive(salt, 32).toString('hex')).toBe(expected.toString('hex'))
    expect(keys.derive(salt, 16).toString('hex')).toBe(expected.subarray(0, 16).toString('hex'))
    expect(keys.derive(salt, 24).toString('hex')).toBe(expected.subarray(0, 24).toString('hex'))
    // Another salt, another key; the same salt, the same key, however often asked.
    const other = Buffer.from(salt)
    other[14]! ^= 1
    expect(keys.derive(other, 32).equals(keys.derive(salt, 32))).toBe(false)
    expect(keys.derive(salt, 32).toString('hex')).toBe(expected.toString('hex'))
    // A partial block is refused: kept in the cipher, it would shift every later derivation.
    expect(() => keys.cmacBlocks(Buffer.alloc(15))).toThrow(RangeError)
    expect(keys.derive(salt, 32).toString('hex')).toBe(expected.toString('hex'))
  })
})

/** An entry whose value is the bytes of `text`. */
const entryOf = (text: string) => ({ value: Buffer.from(text) })
const textOf = (entry: { value: Uint8Array }) => Buffer.from(entry.value).toString()

describe('redis sealing: ciphers made ahead', () => {
  for (const keyLength of [16, 24, 32]) {
    it(`seal as ciphers made on the spot do, each with salt and nonce of its own (${keyLength}-byte key)`, async () => {
      const keys = redisKeys(deriveKeys(randomBytes(keyLength)))
      const storeId = randomBytes(16)
      const field = randomBytes(16)
      const nextTurn = () => new Promise((resolve) => setImmediate(resolve))
      const sealed: Buffer[] = []
      // Made on the spot (none ahead yet), then made ahead a batch at a time, and used up past them.
      expect(keys.ciphers.ready).toBe(0)
      sealed.push(sealEntry(keys, storeId, field, 'k', entryOf('on the spot')))
      for (let round = 0; round < 3; round++) {
        keys.ciphers.prepareSoon()
        keys.ciphers.prepareSoon()
        await nextTurn()
        expect(keys.ciphers.ready).toBe(READY_CIPHERS)
        for (let i = 0; i < READY_CIPHERS + 2; i++) sealed.push(sealEntry(keys, storeId, field, 'k', entryOf(`${round}:${i}`)))
        expect(keys.ciphers.ready).toBe(0)
      }
      // Each opens under the key its own salt derives, bound to the store and field.
      expect(textOf(openEntry(keys, storeId, field, sealed[0]!)[1])).toBe('on the spot')
      for (const [n, bytes] of sealed.slice(1).entries()) {
        const round = Math.floor(n / (READY_CIPHERS + 2))
        expect(textOf(openEntry(keys, storeId, field, bytes)[1])).toBe(`${round}:${n % (READY_CIPHERS + 2)}`)
      }
      expect(() => openEntry(keys, storeId, randomBytes(16), sealed[1]!)).toThrow()
      // Version byte, then 15 bytes of salt and 12 of nonce: never the same twice.
      const salts = new Set(sealed.map((bytes) => bytes.subarray(1, 16).toString('hex')))
      const nonces = new Set(sealed.map((bytes) => bytes.subarray(16, 28).toString('hex')))
      expect(salts.size).toBe(sealed.length)
      expect(nonces.size).toBe(sealed.length)
    })
  }
})
