import {
  commitEncryptionKey,
  type DerivedKeys,
  fillRandom,
  type KdfParams,
  KEY_LENGTHS,
  keyCheckEquals,
  keyCheckValue,
  newKdfParams,
  NONCE_SIZE,
  SCRYPT_SALT_SIZE,
  scryptOutOfBounds,
  sha256,
  TAG_SIZE,
} from '../crypto.js'
import { CorruptFileError, NotAnyStoreFileError, UnsupportedFormatError } from '../store/errors.js'

export const MAGIC = Buffer.from('ANYSTORE', 'ascii')
/**
 * Version 3 adds the store id, the commit counter and a salt for the commit's own encryption
 * key; version 2 added the status byte after the tag. Versions 1 and 2 are still read, and
 * version 2 is still written where the `formatVersion` option asks for it.
 */
export const FORMAT_VERSION = 3
export type WritableFormatVersion = 2 | 3
/** The version 3 header, the largest: enough bytes to parse any header. */
export const HEADER_SIZE = 160
/** The header of versions 1 and 2. */
export const V2_HEADER_SIZE = 72
/**
 * The status byte that ends a version 2 or 3 file, outside the authenticated data: 0 while the
 * file is the current version; a committer sets it to SUPERSEDED just before renaming a new
 * version over the file, so that readers still holding it learn that with one pread
 * (docs/DESIGN.md).
 */
export const STATUS_SIZE = 1
export const STATUS_CURRENT = 0
export const SUPERSEDED = 1
export const FLAG_DEFLATE = 0x0001
/**
 * Version 3: the key is derived from a passphrase, with the KDF, its parameters and its salt
 * in the KDF parameter block (bytes 108..139).
 */
export const FLAG_PASSPHRASE = 0x0002
const KNOWN_FLAGS_V2 = FLAG_DEFLATE
const KNOWN_FLAGS_V3 = FLAG_DEFLATE | FLAG_PASSPHRASE
export const STORE_ID_SIZE = 16
const SALT_SIZE = 32
export const KDF_BLOCK_SIZE = 32
/** The largest commit counter (uint64). */
export const MAX_COUNTER = 2n ** 64n - 1n

/**
 * The KDF parameter block (docs/FORMAT.md, "Passphrases"): the KDF's id, its cost parameters,
 * reserved bytes and the KDF salt, at these offsets within the block.
 */
const KDF = { id: 0, log2N: 1, r: 2, p: 3, reserved: 4, salt: 16 } as const
const KDF_SALT_SIZE = SCRYPT_SALT_SIZE
const KDF_SCRYPT = 1

/** Where each header field is, by format version (docs/FORMAT.md). */
interface Layout {
  size: number
  nonce: number
  keyCheck: number
  checksum: number
}

const COMMON = {
  version: 8,
  flags: 10,
  keyLength: 12,
  reserved: 13,
  commitTime: 16,
  commitId: 24,
} as const

const V2_LAYOUT: Layout = { size: V2_HEADER_SIZE, nonce: 40, keyCheck: 52, checksum: 68 }

const V3 = {
  storeId: 40,
  counter: 56,
  salt: 64,
  nonce: 96,
  kdf: 108,
  keyCheck: 140,
  checksum: 156,
} as const

const V3_LAYOUT: Layout = {
  size: HEADER_SIZE,
  nonce: V3.nonce,
  keyCheck: V3.keyCheck,
  checksum: V3.checksum,
}

function layoutOf(version: number): Layout {
  return version >= 3 ? V3_LAYOUT : V2_LAYOUT
}

/** The header's size in a file of this format version. */
export function headerSize(version: number): number {
  return layoutOf(version).size
}

/** The bytes after the ciphertext: the tag, and from version 2 on the status byte. */
export function trailerSize(version: number): number {
  return version >= 2 ? TAG_SIZE + STATUS_SIZE : TAG_SIZE
}

export interface FileHeader {
  version: number
  flags: number
  keyLength: number
  commitTime: number
  /** 16 random bytes, new for every commit: names this exact version of the file. */
  commitId: Buffer
  /**
   * Version 3: 16 random bytes drawn at the store's first commit and kept by every later one.
   * Undefined for versions 1 and 2, which carry no store id.
   */
  storeId: Buffer | undefined
  /** Version 3: the commit's number, the previous commit's plus one (1 for the first). 0 for versions 1 and 2. */
  counter: bigint
  /** Version 3 with flag bit 1: how the key is derived from the passphrase. Else undefined. */
  kdf: KdfParams | undefined
}

/** Whether the payload of the file with this header is deflated (flag bit 0). */
export function isDeflated(header: FileHeader): boolean {
  return (header.flags & FLAG_DEFLATE) !== 0
}

/** A new KDF parameter block: the default costs and a fresh random salt. */
export function newKdfBlock(): Buffer {
  const params = newKdfParams()
  const block = Buffer.alloc(KDF_BLOCK_SIZE)
  block[KDF.id] = KDF_SCRYPT
  block[KDF.log2N] = params.log2N
  block[KDF.r] = params.r
  block[KDF.p] = params.p
  params.salt.copy(block, KDF.salt, 0, KDF_SALT_SIZE)
  return block
}

/**
 * The parameters a KDF block holds, unchecked: for a block that parseHeader accepted or
 * newKdfBlock made.
 */
export function kdfParamsOf(block: Buffer): KdfParams {
  return {
    algorithm: 'scrypt',
    log2N: block[KDF.log2N]!,
    r: block[KDF.r]!,
    p: block[KDF.p]!,
    salt: Buffer.from(block.subarray(KDF.salt, KDF.salt + KDF_SALT_SIZE)),
  }
}

/** The KDF block of a version 3 header, or undefined when it has none (no passphrase). */
export function kdfBlockOf(headerBytes: Buffer, header: FileHeader): Buffer | undefined {
  if (header.kdf === undefined) return undefined
  return headerBytes.subarray(V3.kdf, V3.kdf + KDF_BLOCK_SIZE)
}

/** 16 random bytes: the id of a new store. */
export function newStoreId(): Buffer {
  const id = Buffer.alloc(STORE_ID_SIZE)
  fillRandom(id, 0, STORE_ID_SIZE)
  return id
}

function headerChecksum(header: Buffer, layout: Layout): Buffer {
  return sha256(header.subarray(0, layout.checksum)).subarray(0, 4)
}

/** What a new commit's header says besides what writeHeader draws or computes itself. */
export interface HeaderFields {
  version: WritableFormatVersion
  flags: number
  /** Version 3: the store's id. @default a new random id (a new store) */
  storeId?: Buffer | undefined
  /** Version 3: this commit's number. @default 1n (a new store's first commit) */
  counter?: bigint | undefined
  /** Version 3: the KDF parameter block of a passphrase store. @default all zeros, a raw key */
  kdf?: Buffer | undefined
}

/** Writes a complete header of a commit sealed under `keys`: every byte of `header`. */
export function writeHeader(header: Buffer, keys: DerivedKeys, fields: HeaderFields): void {
  const version = fields.version
  const layout = layoutOf(version)
  MAGIC.copy(header, 0)
  header.writeUInt16BE(version, COMMON.version)
  header.writeUInt16BE(fields.flags, COMMON.flags)
  header.writeUInt8(keys.keyLength, COMMON.keyLength)
  header.writeUIntBE(0, COMMON.reserved, 3)
  const now = Date.now()
  header.writeUInt32BE(Math.floor(now / 2 ** 32), COMMON.commitTime)
  header.writeUInt32BE(now >>> 0, COMMON.commitTime + 4)
  if (version >= 3) {
    const counter = fields.counter ?? 1n
    if (counter < 1n || counter > MAX_COUNTER) throw new RangeError(`commit counter ${counter}`)
    fillRandom(header, COMMON.commitId, 16)
    const storeId = fields.storeId ?? newStoreId()
    if (storeId.length !== STORE_ID_SIZE) throw new RangeError('a store id is 16 bytes')
    storeId.copy(header, V3.storeId)
    header.writeBigUInt64BE(counter, V3.counter)
    fillRandom(header, V3.salt, SALT_SIZE + NONCE_SIZE)
    if (fields.kdf === undefined) header.fill(0, V3.kdf, V3.kdf + KDF_BLOCK_SIZE)
    else fields.kdf.copy(header, V3.kdf, 0, KDF_BLOCK_SIZE)
  } else {
    if (fields.kdf !== undefined) throw new RangeError('a passphrase store is version 3')
    fillRandom(header, COMMON.commitId, 16 + NONCE_SIZE)
  }
  keyCheckValue(keys, header.subarray(0, layout.keyCheck)).copy(header, layout.keyCheck)
  headerChecksum(header, layout).copy(header, layout.checksum)
}

/**
 * The key the payload of the file with this header is encrypted with: from version 3 on, the
 * commit's own key, derived from the header's salt; before, the one encryption key.
 */
export function payloadKey(keys: DerivedKeys, headerBytes: Buffer, version: number): Buffer {
  return version >= 3
    ? commitEncryptionKey(keys, headerBytes.subarray(V3.salt, V3.salt + SALT_SIZE))
    : keys.encryption
}

/** The AES-GCM nonce of the payload of the file with this header. */
export function nonceOf(headerBytes: Buffer, version: number): Buffer {
  const layout = layoutOf(version)
  return headerBytes.subarray(layout.nonce, layout.nonce + NONCE_SIZE)
}

/**
 * Whether `keys` is the key the file with this header was written under: the key length and
 * the key check (one HMAC) match. Tells a wrong key from a damaged file before decrypting.
 */
export function keyCheckMatches(keys: DerivedKeys, headerBytes: Buffer, header: FileHeader): boolean {
  const layout = layoutOf(header.version)
  if (header.keyLength !== keys.keyLength) return false
  return keyCheckEquals(
    keys,
    headerBytes.subarray(0, layout.keyCheck),
    headerBytes.subarray(layout.keyCheck, layout.keyCheck + 16),
  )
}

/**
 * Reads and checks the header without any key: `info` uses this. `bytes` holds the file's
 * first bytes (HEADER_SIZE of them, or the whole file if shorter). Throws
 * NotAnyStoreFileError, CorruptFileError or UnsupportedFormatError, in the order
 * docs/FORMAT.md gives.
 */
export function parseHeader(
  file: string,
  bytes: Uint8Array,
  fileSize: number = bytes.byteLength,
): FileHeader {
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (data.length === 0) throw new NotAnyStoreFileError(file, 'the file is empty')
  const magicPart = data.subarray(0, Math.min(data.length, MAGIC.length))
  if (!magicPart.equals(MAGIC.subarray(0, magicPart.length))) {
    throw new NotAnyStoreFileError(file, 'it does not start with the anystore magic bytes')
  }
  if (fileSize < V2_HEADER_SIZE || data.length < V2_HEADER_SIZE) {
    throw new CorruptFileError(file, `truncated: ${fileSize} bytes, shorter than the header`)
  }
  const version = data.readUInt16BE(COMMON.version)
  if (version > FORMAT_VERSION) {
    throw new UnsupportedFormatError(file, `format version ${version}`)
  }
  const layout = layoutOf(version)
  if (fileSize < layout.size || data.length < layout.size) {
    throw new CorruptFileError(file, `truncated: ${fileSize} bytes, shorter than the header`)
  }
  const header = data.subarray(0, layout.size)
  if (!headerChecksum(header, layout).equals(header.subarray(layout.checksum, layout.checksum + 4))) {
    throw new CorruptFileError(file, 'the header checksum does not match')
  }
  if (version < 1) throw new CorruptFileError(file, `format version ${version}`)
  const flags = data.readUInt16BE(COMMON.flags)
  if ((flags & ~(version >= 3 ? KNOWN_FLAGS_V3 : KNOWN_FLAGS_V2)) !== 0) {
    throw new UnsupportedFormatError(file, `flags 0x${flags.toString(16)}`)
  }
  if (data.readUIntBE(COMMON.reserved, 3) !== 0) {
    throw new UnsupportedFormatError(file, 'reserved header bytes')
  }
  const kdfBlock = version >= 3 ? header.subarray(V3.kdf, V3.kdf + KDF_BLOCK_SIZE) : undefined
  const kdf =
    kdfBlock !== undefined && (flags & FLAG_PASSPHRASE) !== 0
      ? parseKdfBlock(file, kdfBlock)
      : undefined
  if (kdf === undefined && kdfBlock?.some((byte) => byte !== 0)) {
    throw new UnsupportedFormatError(file, 'a key-derivation parameter block without the passphrase flag')
  }
  const keyLength = data.readUInt8(COMMON.keyLength)
  if (!KEY_LENGTHS.has(keyLength)) throw new CorruptFileError(file, `key length ${keyLength}`)
  if (fileSize < layout.size + trailerSize(version)) {
    throw new CorruptFileError(file, `truncated: ${fileSize} bytes, no room for the tag`)
  }
  const v3 = version >= 3
  const counter = v3 ? data.readBigUInt64BE(V3.counter) : 0n
  if (v3 && counter === 0n) throw new CorruptFileError(file, 'commit counter 0')
  return {
    version,
    flags,
    keyLength,
    commitTime: Number(data.readBigUInt64BE(COMMON.commitTime)),
    commitId: Buffer.from(data.subarray(COMMON.commitId, COMMON.commitId + 16)),
    storeId: v3 ? Buffer.from(data.subarray(V3.storeId, V3.storeId + STORE_ID_SIZE)) : undefined,
    counter,
    kdf,
  }
}

/**
 * The parameters of a passphrase store's KDF block, checked against SCRYPT_BOUNDS before
 * anything is derived: a block this release does not know, or costs past the bounds, is
 * UnsupportedFormatError.
 */
export function parseKdfBlock(file: string, block: Buffer): KdfParams {
  const id = block[KDF.id]!
  if (id !== KDF_SCRYPT) throw new UnsupportedFormatError(file, `key-derivation function ${id}`)
  if (block.subarray(KDF.reserved, KDF.salt).some((byte) => byte !== 0)) {
    throw new UnsupportedFormatError(file, 'reserved bytes in the key-derivation parameter block')
  }
  const params = kdfParamsOf(block)
  const outOfBounds = scryptOutOfBounds(params.log2N, params.r, params.p)
  if (outOfBounds !== undefined) {
    throw new UnsupportedFormatError(
      file,
      `scrypt parameters (${outOfBounds}) beyond the bounds this version accepts (docs/FORMAT.md, "Passphrases")`,
    )
  }
  return params
}
