import * as nodeCrypto from 'node:crypto'
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  type DecipherGCM,
  hkdfSync,
  randomBytes,
  randomFillSync,
  scryptSync,
  timingSafeEqual,
} from 'node:crypto'
import { constants as bufferConstants } from 'node:buffer'
import { deflateRawSync, inflateRawSync } from 'node:zlib'
import {
  CorruptFileError,
  FileTooLargeError,
  InvalidKeyError,
  NotAnyStoreFileError,
  UnsupportedFormatError,
  WrongKeyError,
} from './store/errors.js'
import { Segments } from './format/segments.js'

/**
 * The key used when none is given. It is published here, so it only obfuscates the file;
 * anyone with this package can decrypt a store that uses it. Use `newKey()` for secrecy.
 */
export const DEFAULT_ENCRYPTION_KEY = 'RxuPYyQuFXM1byAkrzAiGmzf/CPzrdtR+QVbCUNYnv8'

/** 32 random bytes as base64 without padding: a key for AES-256-GCM. */
export function newKey(): string {
  return randomBytes(32).toString('base64').replace(/=+$/, '')
}

const BASE64 = /^(?:[A-Za-z0-9+/]*|[A-Za-z0-9_-]*)={0,2}$/
const KEY_LENGTHS = new Set([16, 24, 32])

/**
 * Accepts base64 (standard or URL-safe, padded or not) or raw bytes of 16, 24 or 32 bytes.
 * `option` names the option the key came from, in the error.
 */
export function parseKey(key: unknown, option = 'encryptionKey'): Uint8Array {
  const fail = (detail: string) => new InvalidKeyError(detail, { option })
  if (key instanceof Uint8Array) {
    if (!KEY_LENGTHS.has(key.length)) throw fail(`got ${key.length} bytes`)
    return Uint8Array.from(key)
  }
  if (typeof key !== 'string') throw fail(`got a value of type ${typeof key}`)
  const text = key.trim()
  if (!BASE64.test(text)) throw fail('got a string that is not base64')
  const bytes = Buffer.from(text, text.includes('-') || text.includes('_') ? 'base64url' : 'base64')
  const unpadded = text.replace(/=+$/, '')
  const roundTrip = bytes
    .toString(text.includes('-') || text.includes('_') ? 'base64url' : 'base64')
    .replace(/=+$/, '')
  if (roundTrip !== unpadded) throw fail('got a string that is not base64')
  if (!KEY_LENGTHS.has(bytes.length)) throw fail(`got ${bytes.length} bytes`)
  return new Uint8Array(bytes)
}

/** Keys derived from the user's key, one per purpose, so the raw key is never used directly. */
export interface DerivedKeys {
  readonly keyLength: number
  /** Format versions 1 and 2: the one encryption key of every commit. */
  readonly encryption: Buffer
  readonly keyCheck: Buffer
  /** Format version 3: the key each commit's own encryption key is derived from, with its salt. */
  readonly commitKeys: Buffer
}

export function deriveKeys(key: Uint8Array): DerivedKeys {
  const derive = (info: string, length: number) =>
    Buffer.from(hkdfSync('sha256', key, new Uint8Array(0), info, length))
  return {
    keyLength: key.length,
    encryption: derive('anystore/v1/encryption', key.length),
    keyCheck: derive('anystore/v1/key-check', 32),
    commitKeys: derive('anystore/v3/commit-keys', 32),
  }
}

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
export const TAG_SIZE = 16
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

/**
 * The KDF parameter block (docs/FORMAT.md, "Passphrases"): the KDF's id, its cost parameters,
 * reserved bytes and the KDF salt, at these offsets within the block.
 */
const KDF = { id: 0, log2N: 1, r: 2, p: 3, reserved: 4, salt: 16 } as const
const KDF_SALT_SIZE = 16
const KDF_SCRYPT = 1

/** scrypt (RFC 7914) parameters of a passphrase store, as its header holds them. */
export interface KdfParams {
  algorithm: 'scrypt'
  /** N = 2^log2N: the CPU and memory cost. */
  log2N: number
  /** The block size factor. */
  r: number
  /** The parallelization factor. */
  p: number
  /** 16 random bytes drawn when the passphrase was set; every commit copies them. */
  salt: Buffer
}

/**
 * What new passphrase stores are written with: about 128 MiB and half a second per derivation
 * where this was measured (docs/DESIGN.md, "Passphrases"). Every guess at the passphrase costs
 * an attacker the same.
 */
export const SCRYPT_DEFAULTS = { log2N: 17, r: 8, p: 1 } as const

/**
 * What a reader accepts, so that a hostile file cannot make open() take minutes or gigabytes:
 * scrypt needs 128·N·r bytes and time in proportion to N·r·p. The defaults sit at half the
 * memory bound and a quarter of the work bound, leaving room for a later release to raise
 * them. The floor refuses files that no writer of ours makes (cheap to guess at).
 */
export const SCRYPT_BOUNDS = {
  minLog2N: 14,
  maxLog2N: 20,
  maxR: 32,
  maxP: 16,
  maxMemory: 256 * 1024 * 1024,
  maxWork: 2 ** 22,
} as const

/** Why scrypt parameters are refused, or undefined when they are within SCRYPT_BOUNDS. */
function scryptOutOfBounds(log2N: number, r: number, p: number): string | undefined {
  const b = SCRYPT_BOUNDS
  if (log2N < b.minLog2N || log2N > b.maxLog2N) return `N = 2^${log2N}`
  if (r < 1 || r > b.maxR) return `r = ${r}`
  if (p < 1 || p > b.maxP) return `p = ${p}`
  const N = 2 ** log2N
  if (128 * N * r > b.maxMemory) return `N = 2^${log2N} and r = ${r} (${(128 * N * r) / 2 ** 20} MiB)`
  if (N * r * p > b.maxWork) return `N = 2^${log2N}, r = ${r} and p = ${p} (work ${N * r * p})`
  return undefined
}

/** A new KDF parameter block: the default costs and a fresh random salt. */
export function newKdfBlock(): Buffer {
  const block = Buffer.alloc(KDF_BLOCK_SIZE)
  block[KDF.id] = KDF_SCRYPT
  block[KDF.log2N] = SCRYPT_DEFAULTS.log2N
  block[KDF.r] = SCRYPT_DEFAULTS.r
  block[KDF.p] = SCRYPT_DEFAULTS.p
  randomFillSync(block, KDF.salt, KDF_SALT_SIZE)
  return block
}

/**
 * The key a passphrase yields under the parameters of a KDF block that parseHeader accepted:
 * scrypt, `keyLength` bytes. Synchronous, as every load is: it runs once per open (and again
 * only when a loaded version carries another block), never per read or commit.
 */
export function passphraseKey(passphrase: Uint8Array, block: Buffer, keyLength: number): Uint8Array {
  const N = 2 ** block[KDF.log2N]!
  const r = block[KDF.r]!
  const p = block[KDF.p]!
  // Node refuses scrypt above 32 MiB unless maxmem allows it: what OpenSSL allocates, 128·r·(N + p + 2) bytes, and some room.
  const maxmem = 128 * r * (N + p + 2) + 1024 * 1024
  const salt = block.subarray(KDF.salt, KDF.salt + KDF_SALT_SIZE)
  return new Uint8Array(scryptSync(passphrase, salt, keyLength, { N, r, p, maxmem }))
}

/** The KDF block of a version 3 header, or undefined when it has none (no passphrase). */
export function kdfBlockOf(headerBytes: Buffer, header: FileHeader): Buffer | undefined {
  if (header.kdf === undefined) return undefined
  return headerBytes.subarray(V3.kdf, V3.kdf + KDF_BLOCK_SIZE)
}
/** The largest commit counter (uint64). */
export const MAX_COUNTER = 2n ** 64n - 1n

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

type OneShotHash = (algorithm: string, data: Uint8Array, encoding: 'buffer') => Buffer
/** `crypto.hash` (Node 20.12+) builds no Hash object: a commit seals right after an fsync, when every object costs. */
const oneShot = (nodeCrypto as { hash?: OneShotHash }).hash

function sha256(data: Uint8Array): Buffer {
  return oneShot ? oneShot('sha256', data, 'buffer') : createHash('sha256').update(data).digest()
}

function headerChecksum(header: Buffer, layout: Layout): Buffer {
  return sha256(header.subarray(0, layout.checksum)).subarray(0, 4)
}

const SHA256_BLOCK = 64
/** The longest message an HMAC below covers: the version 3 header up to the key check. */
const MAX_HMAC_MESSAGE = V3.keyCheck

/** An HMAC-SHA256 key of at most one block, padded once, with room for the message after it. */
interface HmacPads {
  inner: Buffer
  outer: Buffer
}

function hmacPads(key: Buffer): HmacPads {
  if (key.length > SHA256_BLOCK) throw new RangeError('HMAC key longer than a block')
  // Shorter than the block, so HMAC pads the key with zeros (it hashes only longer keys).
  const inner = Buffer.alloc(SHA256_BLOCK + MAX_HMAC_MESSAGE)
  const outer = Buffer.alloc(SHA256_BLOCK + 32)
  for (let i = 0; i < SHA256_BLOCK; i++) {
    const byte = key[i] ?? 0
    inner[i] = byte ^ 0x36
    outer[i] = byte ^ 0x5c
  }
  return { inner, outer }
}

/**
 * HMAC-SHA256 (RFC 2104) from two one-shot hashes over buffers that already hold the padded
 * key. Equal to `createHmac`'s result (tests compare them); cheaper, because no HMAC context
 * is set up per commit. The message is copied in, so `pads` must not be shared across calls
 * that interleave (all callers are synchronous).
 */
function hmac(pads: HmacPads, message: Buffer): Buffer {
  message.copy(pads.inner, SHA256_BLOCK)
  sha256(pads.inner.subarray(0, SHA256_BLOCK + message.length)).copy(pads.outer, SHA256_BLOCK)
  return sha256(pads.outer)
}

interface KeyPads {
  keyCheck: HmacPads
  commitKeys: HmacPads
}

const padsByKeys = new WeakMap<DerivedKeys, KeyPads>()

function padsOf(keys: DerivedKeys): KeyPads {
  let pads = padsByKeys.get(keys)
  if (pads === undefined) {
    pads = { keyCheck: hmacPads(keys.keyCheck), commitKeys: hmacPads(keys.commitKeys) }
    padsByKeys.set(keys, pads)
  }
  return pads
}

/** The key check: HMAC-SHA256 under K_check of the header's bytes before the key check field. */
function keyCheckValue(keys: DerivedKeys, header: Buffer, layout: Layout): Buffer {
  return hmac(padsOf(keys).keyCheck, header.subarray(0, layout.keyCheck)).subarray(0, 16)
}

const COMMIT_KEY_INFO = Buffer.from('anystore/v3/encryption', 'ascii')

/**
 * Version 3: the commit's own encryption key, HKDF-Expand (RFC 5869) of K_commit with the info
 * `anystore/v3/encryption` followed by the header's salt: one HMAC block, since the key is at
 * most 32 bytes. K_commit comes from the user's key once (deriveKeys), so a commit or a load
 * costs one HMAC here, not a whole HKDF (Node's hkdfSync costs ~30 µs on this kind of machine).
 * A random 256-bit salt per commit means no two commits share an AES-GCM key, so the nonce
 * budget of one key (about 2^32 random nonces, NIST SP 800-38D) does not apply.
 */
export function commitEncryptionKey(keys: DerivedKeys, salt: Buffer): Buffer {
  const info = Buffer.allocUnsafe(COMMIT_KEY_INFO.length + salt.length + 1)
  COMMIT_KEY_INFO.copy(info, 0)
  salt.copy(info, COMMIT_KEY_INFO.length)
  info[info.length - 1] = 1
  return hmac(padsOf(keys).commitKeys, info).subarray(0, keys.keyLength)
}

/**
 * Random bytes for commit ids, nonces and temp names, drawn from a pool refilled from the
 * CSPRNG 4 KiB at a time: one `randomFillSync` per ~100 commits instead of one per commit.
 * Every byte is handed out once.
 */
const randomPool = Buffer.alloc(4096)
let randomPoolAt = randomPool.length

export function fillRandom(target: Buffer, offset: number, length: number): void {
  if (length > randomPool.length) {
    randomFillSync(target, offset, length)
    return
  }
  if (randomPoolAt + length > randomPool.length) {
    randomFillSync(randomPool)
    randomPoolAt = 0
  }
  randomPool.copy(target, offset, randomPoolAt, randomPoolAt + length)
  randomPoolAt += length
}

/** 16 random bytes: the id of a new store. */
export function newStoreId(): Buffer {
  const id = Buffer.alloc(STORE_ID_SIZE)
  fillRandom(id, 0, STORE_ID_SIZE)
  return id
}

function cipherName(keyLength: number): 'aes-128-gcm' | 'aes-192-gcm' | 'aes-256-gcm' {
  return keyLength === 16 ? 'aes-128-gcm' : keyLength === 24 ? 'aes-192-gcm' : 'aes-256-gcm'
}

/**
 * Feeding the cipher in slices this size keeps it near its best throughput (one update() of a
 * whole large file is several times slower); large files are also read in slices this size.
 */
export const SLICE_SIZE = 1024 * 1024
const CHUNK = SLICE_SIZE

export interface SealedFile {
  header: Buffer
  /** Header, ciphertext slices, tag and status byte, in file order. */
  parts: Buffer[]
  size: number
}

export interface SealOptions {
  compress: boolean
  /** @default 3 */
  formatVersion?: WritableFormatVersion
  /** Version 3: the store's id. @default a new random id (a new store) */
  storeId?: Buffer
  /** Version 3: this commit's number. @default 1n (a new store's first commit) */
  counter?: bigint
  /**
   * Version 3: the KDF parameter block of a passphrase store (`keys` then come from the
   * passphrase under it); sets flag bit 1. @default none: all zeros, a raw key
   */
  kdf?: Buffer
}

/** A sealed file up to this size is one buffer: one allocation, written with one system call. */
const ONE_PART_MAX = 64 * 1024

/** Writes a complete header; returns the key this commit's payload is encrypted with. */
function writeHeader(
  header: Buffer,
  keys: DerivedKeys,
  flags: number,
  options: SealOptions,
): Buffer {
  const version = options.formatVersion ?? FORMAT_VERSION
  const layout = layoutOf(version)
  MAGIC.copy(header, 0)
  header.writeUInt16BE(version, COMMON.version)
  header.writeUInt16BE(flags, COMMON.flags)
  header.writeUInt8(keys.keyLength, COMMON.keyLength)
  header.writeUIntBE(0, COMMON.reserved, 3)
  const now = Date.now()
  header.writeUInt32BE(Math.floor(now / 2 ** 32), COMMON.commitTime)
  header.writeUInt32BE(now >>> 0, COMMON.commitTime + 4)
  let key = keys.encryption
  if (version >= 3) {
    const counter = options.counter ?? 1n
    if (counter < 1n || counter > MAX_COUNTER) throw new RangeError(`commit counter ${counter}`)
    fillRandom(header, COMMON.commitId, 16)
    const storeId = options.storeId ?? newStoreId()
    if (storeId.length !== STORE_ID_SIZE) throw new RangeError('a store id is 16 bytes')
    storeId.copy(header, V3.storeId)
    header.writeBigUInt64BE(counter, V3.counter)
    fillRandom(header, V3.salt, SALT_SIZE + 12)
    if (options.kdf === undefined) header.fill(0, V3.kdf, V3.kdf + KDF_BLOCK_SIZE)
    else options.kdf.copy(header, V3.kdf, 0, KDF_BLOCK_SIZE)
    key = commitEncryptionKey(keys, header.subarray(V3.salt, V3.salt + SALT_SIZE))
  } else {
    if (options.kdf !== undefined) throw new RangeError('a passphrase store is version 3')
    fillRandom(header, COMMON.commitId, 16 + 12)
  }
  keyCheckValue(keys, header, layout).copy(header, layout.keyCheck)
  headerChecksum(header, layout).copy(header, layout.checksum)
  return key
}

/** Encrypts a payload into the parts of a complete store file (header, ciphertext, tag, status). */
export function seal(keys: DerivedKeys, payload: Uint8Array, options: SealOptions): SealedFile {
  const layout = layoutOf(options.formatVersion ?? FORMAT_VERSION)
  const flags = (options.compress ? FLAG_DEFLATE : 0) | (options.kdf ? FLAG_PASSPHRASE : 0)
  const body = options.compress ? deflateRawSync(payload) : payload
  const size = layout.size + body.length + TAG_SIZE + STATUS_SIZE
  // Every header byte is written, so the buffer need not be zeroed first.
  const whole = size <= ONE_PART_MAX ? Buffer.allocUnsafe(size) : undefined
  const header = whole ? whole.subarray(0, layout.size) : Buffer.allocUnsafe(layout.size)
  const key = writeHeader(header, keys, flags, options)

  const nonce = header.subarray(layout.nonce, layout.nonce + 12)
  const cipher = createCipheriv(cipherName(keys.keyLength), key, nonce)
  cipher.setAAD(header)
  if (whole) {
    // GCM output is as long as its input, and final() adds nothing.
    cipher.update(body).copy(whole, layout.size)
    cipher.final()
    cipher.getAuthTag().copy(whole, layout.size + body.length)
    whole[size - STATUS_SIZE] = STATUS_CURRENT
    return { header, parts: [whole], size }
  }
  const parts: Buffer[] = [header]
  for (let at = 0; at < body.length; at += CHUNK) {
    parts.push(cipher.update(body.subarray(at, at + CHUNK)))
  }
  const last = cipher.final()
  if (last.length > 0) parts.push(last)
  parts.push(cipher.getAuthTag(), Buffer.of(STATUS_CURRENT))
  return { header, parts, size }
}

/** The bytes after the ciphertext: the tag, and from version 2 on the status byte. */
export function trailerSize(version: number): number {
  return version >= 2 ? TAG_SIZE + STATUS_SIZE : TAG_SIZE
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
function parseKdfBlock(file: string, block: Buffer): KdfParams {
  const id = block[KDF.id]!
  if (id !== KDF_SCRYPT) throw new UnsupportedFormatError(file, `key-derivation function ${id}`)
  if (block.subarray(KDF.reserved, KDF.salt).some((byte) => byte !== 0)) {
    throw new UnsupportedFormatError(file, 'reserved bytes in the key-derivation parameter block')
  }
  const log2N = block[KDF.log2N]!
  const r = block[KDF.r]!
  const p = block[KDF.p]!
  const outOfBounds = scryptOutOfBounds(log2N, r, p)
  if (outOfBounds !== undefined) {
    throw new UnsupportedFormatError(
      file,
      `scrypt parameters (${outOfBounds}) beyond the bounds this version accepts (docs/FORMAT.md, "Passphrases")`,
    )
  }
  return {
    algorithm: 'scrypt',
    log2N,
    r,
    p,
    salt: Buffer.from(block.subarray(KDF.salt, KDF.salt + KDF_SALT_SIZE)),
  }
}

/**
 * Authenticates and decrypts a whole store file; returns the header and the plaintext payload.
 * With `inPlace`, the plaintext overwrites the ciphertext in `bytes` as it is decrypted (a
 * 1 MiB slice at a time), so opening a large file needs no second buffer of its size; `bytes`
 * is then garbage if authentication fails. A compressed payload that inflates to more than
 * `maxPayloadSize` bytes is refused with FileTooLargeError as soon as inflating passes it.
 */
export function open(
  file: string,
  keys: DerivedKeys | KeySource,
  bytes: Uint8Array,
  options: { inPlace?: boolean; maxPayloadSize?: number } = {},
): { header: FileHeader; payload: Buffer } {
  const header = parseHeader(file, bytes)
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const size = headerSize(header.version)
  const decipher = decipherFor(file, keys, data.subarray(0, size), header)
  const tagStart = data.length - trailerSize(header.version)
  decipher.setAuthTag(data.subarray(tagStart, tagStart + TAG_SIZE))
  const ciphertext = data.subarray(size, tagStart)
  // GCM output is as long as its input, so each slice lands on ciphertext already consumed.
  const body = options.inPlace ? ciphertext : Buffer.allocUnsafe(ciphertext.length)
  let written = 0
  try {
    for (let at = 0; at < ciphertext.length; at += CHUNK) {
      written += decipher.update(ciphertext.subarray(at, at + CHUNK)).copy(body, written)
    }
    written += decipher.final().copy(body, written)
  } catch (cause) {
    throw new CorruptFileError(file, 'authentication failed: the data was changed or truncated', {
      cause,
    })
  }
  return { header, payload: inflated(file, header, body, options.maxPayloadSize ?? Infinity) }
}

/**
 * What picks the keys that open a file: the keys of one key, or a keyring (src/keyring.ts),
 * which tries each key it holds. `keysFor` throws WrongKeyError when none opens the file.
 */
export interface KeySource {
  keysFor(file: string, headerBytes: Buffer, header: FileHeader): DerivedKeys
}

/**
 * Whether `keys` is the key the file with this header was written under: the key length and
 * the key check (one HMAC) match. Tells a wrong key from a damaged file before decrypting.
 */
export function keyCheckMatches(keys: DerivedKeys, headerBytes: Buffer, header: FileHeader): boolean {
  const layout = layoutOf(header.version)
  if (header.keyLength !== keys.keyLength) return false
  const expectedCheck = keyCheckValue(keys, headerBytes, layout)
  return timingSafeEqual(expectedCheck, headerBytes.subarray(layout.keyCheck, layout.keyCheck + 16))
}

function keysOpening(
  source: DerivedKeys | KeySource,
  file: string,
  headerBytes: Buffer,
  header: FileHeader,
): DerivedKeys {
  if ('keysFor' in source) return source.keysFor(file, headerBytes, header)
  if (!keyCheckMatches(source, headerBytes, header)) throw new WrongKeyError(file)
  return source
}

/** Finds the keys that open the file with this header; the decipher for its body. */
function decipherFor(
  file: string,
  source: DerivedKeys | KeySource,
  headerBytes: Buffer,
  header: FileHeader,
): DecipherGCM {
  const layout = layoutOf(header.version)
  const keys = keysOpening(source, file, headerBytes, header)
  const key =
    header.version >= 3
      ? commitEncryptionKey(keys, headerBytes.subarray(V3.salt, V3.salt + SALT_SIZE))
      : keys.encryption
  const nonce = headerBytes.subarray(layout.nonce, layout.nonce + 12)
  const decipher = createDecipheriv(cipherName(keys.keyLength), key, nonce)
  decipher.setAAD(headerBytes)
  return decipher
}

/**
 * The payload of a file whose (decrypted) body is `body`. `maxFileSize` bounds the bytes read,
 * not what they inflate to: deflate reaches about 1000:1, so a 1 MiB file of zeros would inflate
 * to 1 GiB. Inflating stops once the output passes `limit` (zlib throws ERR_BUFFER_TOO_LARGE
 * from its output loop), so memory stays bounded by the limit.
 */
function inflated(file: string, header: FileHeader, body: Buffer, limit: number): Buffer {
  if ((header.flags & FLAG_DEFLATE) === 0) return body
  // zlib wants an integer from 1 to the largest Buffer; any larger limit is no limit.
  const maxOutputLength = Math.max(1, Math.min(Math.floor(limit), bufferConstants.MAX_LENGTH))
  try {
    return inflateRawSync(body, { maxOutputLength })
  } catch (cause) {
    if ((cause as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new FileTooLargeError(file, body.length, limit, { inflated: true })
    }
    throw new CorruptFileError(file, 'the compressed payload does not inflate', { cause })
  }
}

/** Reads `length` bytes at `position` into `buffer`; returns how many it got (fewer only at the end of the file). */
export type ReadAt = (buffer: Buffer, length: number, position: number) => number

/**
 * Like `open`, for a file of `fileSize` bytes read through `readAt` one slice at a time. Each
 * slice the decipher returns is kept as a part of the payload rather than copied into one
 * buffer (Node's decipher allocates a new buffer per slice, so decrypting in place still
 * leaves the file's size in garbage): a cold open holds the plaintext once and one slice.
 */
export function openSlices(
  file: string,
  keys: DerivedKeys | KeySource,
  readAt: ReadAt,
  fileSize: number,
  maxPayloadSize = Infinity,
): { header: FileHeader; payload: Segments } {
  const readExactly = (length: number, position: number, into = Buffer.allocUnsafe(length)) => {
    if (readAt(into, length, position) !== length) {
      throw new CorruptFileError(file, `truncated: the file ended before byte ${position + length}`)
    }
    return into
  }
  const firstBytes = readExactly(Math.min(HEADER_SIZE, fileSize), 0)
  const header = parseHeader(file, firstBytes, fileSize)
  const start = headerSize(header.version)
  const headerBytes = firstBytes.subarray(0, start)
  const decipher = decipherFor(file, keys, headerBytes, header)
  const end = fileSize - trailerSize(header.version)
  decipher.setAuthTag(readExactly(TAG_SIZE, end))
  const slice = Buffer.allocUnsafe(Math.min(CHUNK, end - start))
  const parts: Buffer[] = []
  try {
    for (let at = start; at < end; at += CHUNK) {
      const length = Math.min(CHUNK, end - at)
      parts.push(decipher.update(readExactly(length, at, slice).subarray(0, length)))
    }
    const last = decipher.final()
    if (last.length > 0) parts.push(last)
  } catch (cause) {
    if (cause instanceof CorruptFileError) throw cause
    throw new CorruptFileError(file, 'authentication failed: the data was changed or truncated', {
      cause,
    })
  }
  // GCM returns as many bytes as it is given, so every part but the last is CHUNK bytes long.
  const evenParts = parts.every((part, i) => i === parts.length - 1 || part.length === CHUNK)
  const body = evenParts ? new Segments(parts) : Segments.of(Buffer.concat(parts))
  if ((header.flags & FLAG_DEFLATE) === 0) return { header, payload: body }
  return { header, payload: Segments.of(inflated(file, header, body.join(), maxPayloadSize)) }
}
