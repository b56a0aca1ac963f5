import { createCipheriv, createHash, createHmac, randomBytes } from 'node:crypto'
import type { DerivedKeys } from '../src/crypto.js'

/**
 * A store file in format version 1 (docs/FORMAT.md: the version 2 layout without the status
 * byte), built here from the format description rather than by the library, which writes
 * only version 2: files written before version 2 must keep opening.
 */
export function sealVersion1(keys: DerivedKeys, payload: Buffer): Buffer {
  const header = Buffer.alloc(72)
  header.write('ANYSTORE', 0, 'ascii')
  header.writeUInt16BE(1, 8)
  header.writeUInt16BE(0, 10)
  header.writeUInt8(keys.keyLength, 12)
  header.writeBigUInt64BE(BigInt(Date.now()), 16)
  randomBytes(28).copy(header, 24)
  createHmac('sha256', keys.keyCheck).update(header.subarray(0, 52)).digest().copy(header, 52, 0, 16)
  createHash('sha256').update(header.subarray(0, 68)).digest().copy(header, 68, 0, 4)
  const cipherName = `aes-${keys.keyLength * 8}-gcm` as 'aes-256-gcm'
  const cipher = createCipheriv(cipherName, keys.encryption, header.subarray(40, 52))
  cipher.setAAD(header)
  return Buffer.concat([header, cipher.update(payload), cipher.final(), cipher.getAuthTag()])
}
