import { createDecipheriv, createHash, createHmac, hkdfSync } from 'node:crypto'

/**
 * Opens a format version 3 store file from the format description (docs/FORMAT.md), with
 * node:crypto's primitives and none of the library's code: the files the library writes must
 * match what the document says byte by byte.
 */
export function openVersion3(key: Uint8Array, bytes: Buffer) {
  const header = bytes.subarray(0, 160)
  if (header.toString('ascii', 0, 8) !== 'ANYSTORE') throw new Error('no magic')
  if (header.readUInt16BE(8) !== 3) throw new Error(`version ${header.readUInt16BE(8)}, not 3`)
  const checksum = createHash('sha256').update(header.subarray(0, 156)).digest()
  if (!checksum.subarray(0, 4).equals(header.subarray(156, 160))) throw new Error('checksum')
  const derive = (info: string, length: number) =>
    Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), info, length))
  const keyCheck = createHmac('sha256', derive('anystore/v1/key-check', 32))
    .update(header.subarray(0, 140))
    .digest()
  if (!keyCheck.subarray(0, 16).equals(header.subarray(140, 156))) throw new Error('key check')
  const salt = header.subarray(64, 96)
  // HKDF-Expand(K_commit, info = "anystore/v3/encryption" || salt, L): one block, T(1).
  const commitKey = createHmac('sha256', derive('anystore/v3/commit-keys', 32))
    .update(Buffer.concat([Buffer.from('anystore/v3/encryption'), salt, Buffer.of(1)]))
    .digest()
    .subarray(0, key.length)
  const tagStart = bytes.length - 17
  const decipher = createDecipheriv(
    `aes-${key.length * 8}-gcm` as 'aes-256-gcm',
    commitKey,
    header.subarray(96, 108),
  )
  decipher.setAAD(header)
  decipher.setAuthTag(bytes.subarray(tagStart, tagStart + 16))
  const payload = Buffer.concat([decipher.update(bytes.subarray(160, tagStart)), decipher.final()])
  return {
    flags: header.readUInt16BE(10),
    keyLength: header.readUInt8(12),
    commitTime: Number(header.readBigUInt64BE(16)),
    commitId: Buffer.from(header.subarray(24, 40)),
    storeId: Buffer.from(header.subarray(40, 56)),
    counter: header.readBigUInt64BE(56),
    salt: Buffer.from(salt),
    kdfBlock: Buffer.from(header.subarray(108, 140)),
    status: bytes[bytes.length - 1],
    payload,
  }
}

/** Recomputes the version 3 header checksum after a test changed header bytes. */
export function withVersion3Checksum(bytes: Buffer): Buffer {
  const out = Buffer.from(bytes)
  createHash('sha256').update(out.subarray(0, 156)).digest().copy(out, 156, 0, 4)
  return out
}
