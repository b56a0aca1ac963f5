import * as nodeCrypto from 'node:crypto'
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  type DecipherGCM,
  hkdfSync,
  randomBytes,
  randomFillSync,
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
} from './errors.js'
import { Segments } from './segments.js'

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

/** Accepts base64 (standard or URL-safe, padded or not) or raw bytes of 16, 24 or 32 bytes. */
export function parseKey(key: unknown): Uint8Array {
  if (key instanceof Uint8Array) {
    if (!KEY_LENGTHS.has(key.length)) throw new InvalidKeyError(`got ${key.length} bytes`)
    return Uint8Array.from(key)
  }
  if (typeof key !== 'string') throw new InvalidKeyError(`got a value of type ${typeof key}`)
  const text = key.trim()
  if (!BASE64.test(text)) throw new InvalidKeyError('got a string that is not base64')
  const bytes = Buffer.from(text, text.includes('-') || text.includes('_') ? 'base64url' : 'base64')
  const unpadded = text.replace(/=+$/, '')
  const roundTrip = bytes
    .toString(text.includes('-') || text.includes('_') ? 'base64url' : 'base64')
    .replace(/=+$/, '')
  if (roundTrip !== unpadded) throw new InvalidKeyError('got a string that is not base64')
  if (!KEY_LENGTHS.has(bytes.length)) throw new InvalidKeyError(`got ${bytes.length} bytes`)
  return new Uint8Array(bytes)
}

/** Keys derived from the user's key, one per purpose, so the raw key is never used directly. */
export interface DerivedKeys {
  readonly keyLength: number
  readonly encryption: Buffer
  readonly keyCheck: Buffer
}

export function deriveKeys(key: Uint8Array): DerivedKeys {
  const derive = (info: string, length: number) =>
    Buffer.from(hkdfSync('sha256', key, new Uint8Array(0), info, length))
  return {
    keyLength: key.length,
    encryption: derive('anystore/v1/encryption', key.length),
    keyCheck: derive('anystore/v1/key-check', 32),
  }
}

export const MAGIC = Buffer.from('ANYSTORE', 'ascii')
/** Version 2 adds the status byte after the tag; version 1 files are still read. */
export const FORMAT_VERSION = 2
export const HEADER_SIZE = 72
export const TAG_SIZE = 16
/**
 * The status byte that ends a version 2 file, outside the authenticated data: 0 while the file
 * is the current version; a committer sets it to SUPERSEDED just before renaming a new version
 * over the file, so that readers still holding it learn that with one pread (docs/DESIGN.md).
 */
export const STATUS_SIZE = 1
export const STATUS_CURRENT = 0
export const SUPERSEDED = 1
export const FLAG_DEFLATE = 0x0001
const KNOWN_FLAGS = FLAG_DEFLATE

const OFFSET = {
  version: 8,
  flags: 10,
  keyLength: 12,
  reserved: 13,
  commitTime: 16,
  commitId: 24,
  nonce: 40,
  keyCheck: 52,
  checksum: 68,
} as const

export interface FileHeader {
  version: number
  flags: number
  keyLength: number
  commitTime: number
  /** 16 random bytes, new for every commit: names this exact version of the file. */
  commitId: Buffer
}

type OneShotHash = (algorithm: string, data: Uint8Array, encoding: 'buffer') => Buffer
/** `crypto.hash` (Node 20.12+) builds no Hash object: a commit seals right after an fsync, when every object costs. */
const oneShot = (nodeCrypto as { hash?: OneShotHash }).hash

function sha256(data: Uint8Array): Buffer {
  return oneShot ? oneShot('sha256', data, 'buffer') : createHash('sha256').update(data).digest()
}

function headerChecksum(header: Buffer): Buffer {
  return sha256(header.subarray(0, OFFSET.checksum)).subarray(0, 4)
}

const SHA256_BLOCK = 64

interface KeyCheckPads {
  inner: Buffer
  outer: Buffer
}

const padsByKeys = new WeakMap<DerivedKeys, KeyCheckPads>()

function keyCheckPads(keys: DerivedKeys): KeyCheckPads {
  let pads = padsByKeys.get(keys)
  if (pads === undefined) {
    if (keys.keyCheck.length > SHA256_BLOCK) throw new RangeError('keyCheck longer than a block')
    // Shorter than the block, so HMAC pads the key with zeros (it hashes only longer keys).
    const inner = Buffer.alloc(SHA256_BLOCK + OFFSET.keyCheck)
    const outer = Buffer.alloc(SHA256_BLOCK + 32)
    for (let i = 0; i < SHA256_BLOCK; i++) {
      const byte = keys.keyCheck[i] ?? 0
      inner[i] = byte ^ 0x36
      outer[i] = byte ^ 0x5c
    }
    pads = { inner, outer }
    padsByKeys.set(keys, pads)
  }
  return pads
}

/**
 * HMAC-SHA256 (RFC 2104) of the header's first bytes under `keyCheck`, from two one-shot
 * hashes over buffers that already hold the padded key. Equal to `createHmac`'s result (a test
 * compares them); cheaper, because no HMAC context is set up per commit.
 */
function keyCheckValue(keys: DerivedKeys, header: Buffer): Buffer {
  const { inner, outer } = keyCheckPads(keys)
  header.copy(inner, SHA256_BLOCK, 0, OFFSET.keyCheck)
  sha256(inner).copy(outer, SHA256_BLOCK)
  return sha256(outer).subarray(0, 16)
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

/** A sealed file up to this size is one buffer: one allocation, written with one system call. */
const ONE_PART_MAX = 64 * 1024

function writeHeader(header: Buffer, keys: DerivedKeys, flags: number): void {
  MAGIC.copy(header, 0)
  header.writeUInt16BE(FORMAT_VERSION, OFFSET.version)
  header.writeUInt16BE(flags, OFFSET.flags)
  header.writeUInt8(keys.keyLength, OFFSET.keyLength)
  header.writeUIntBE(0, OFFSET.reserved, 3)
  const now = Date.now()
  header.writeUInt32BE(Math.floor(now / 2 ** 32), OFFSET.commitTime)
  header.writeUInt32BE(now >>> 0, OFFSET.commitTime + 4)
  fillRandom(header, OFFSET.commitId, 16 + 12)
  keyCheckValue(keys, header).copy(header, OFFSET.keyCheck)
  headerChecksum(header).copy(header, OFFSET.checksum)
}

/** Encrypts a payload into the parts of a complete store file (header, ciphertext, tag, status). */
export function seal(
  keys: DerivedKeys,
  payload: Uint8Array,
  options: { compress: boolean },
): SealedFile {
  const flags = options.compress ? FLAG_DEFLATE : 0
  const body = options.compress ? deflateRawSync(payload) : payload
  const size = HEADER_SIZE + body.length + TAG_SIZE + STATUS_SIZE
  // Every header byte is written, so the buffer need not be zeroed first.
  const whole = size <= ONE_PART_MAX ? Buffer.allocUnsafe(size) : undefined
  const header = whole ? whole.subarray(0, HEADER_SIZE) : Buffer.allocUnsafe(HEADER_SIZE)
  writeHeader(header, keys, flags)

  const nonce = header.subarray(OFFSET.nonce, OFFSET.nonce + 12)
  const cipher = createCipheriv(cipherName(keys.keyLength), keys.encryption, nonce)
  cipher.setAAD(header)
  if (whole) {
    // GCM output is as long as its input, and final() adds nothing.
    cipher.update(body).copy(whole, HEADER_SIZE)
    cipher.final()
    cipher.getAuthTag().copy(whole, HEADER_SIZE + body.length)
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

/** The bytes after the ciphertext: the tag, and in version 2 the status byte. */
export function trailerSize(version: number): number {
  return version >= 2 ? TAG_SIZE + STATUS_SIZE : TAG_SIZE
}

/**
 * Reads and checks the header without any key: `info` uses this. Throws NotAnyStoreFileError,
 * CorruptFileError or UnsupportedFormatError.
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
  if (fileSize < HEADER_SIZE || data.length < HEADER_SIZE) {
    throw new CorruptFileError(file, `truncated: ${fileSize} bytes, shorter than the header`)
  }
  const version = data.readUInt16BE(OFFSET.version)
  const header = data.subarray(0, HEADER_SIZE)
  const checksumOk = headerChecksum(header).equals(
    data.subarray(OFFSET.checksum, OFFSET.checksum + 4),
  )
  if (version > FORMAT_VERSION) {
    throw new UnsupportedFormatError(file, `format version ${version}`)
  }
  if (!checksumOk) throw new CorruptFileError(file, 'the header checksum does not match')
  if (version < 1) throw new CorruptFileError(file, `format version ${version}`)
  const flags = data.readUInt16BE(OFFSET.flags)
  if ((flags & ~KNOWN_FLAGS) !== 0) {
    throw new UnsupportedFormatError(file, `flags 0x${flags.toString(16)}`)
  }
  if (data.readUIntBE(OFFSET.reserved, 3) !== 0) {
    throw new UnsupportedFormatError(file, 'reserved header bytes')
  }
  const keyLength = data.readUInt8(OFFSET.keyLength)
  if (!KEY_LENGTHS.has(keyLength)) throw new CorruptFileError(file, `key length ${keyLength}`)
  if (fileSize < HEADER_SIZE + trailerSize(version)) {
    throw new CorruptFileError(file, `truncated: ${fileSize} bytes, no room for the tag`)
  }
  return {
    version,
    flags,
    keyLength,
    commitTime: Number(data.readBigUInt64BE(OFFSET.commitTime)),
    commitId: Buffer.from(data.subarray(OFFSET.commitId, OFFSET.commitId + 16)),
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
  keys: DerivedKeys,
  bytes: Uint8Array,
  options: { inPlace?: boolean; maxPayloadSize?: number } = {},
): { header: FileHeader; payload: Buffer } {
  const header = parseHeader(file, bytes)
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const decipher = decipherFor(file, keys, data.subarray(0, HEADER_SIZE), header)
  const tagStart = data.length - trailerSize(header.version)
  decipher.setAuthTag(data.subarray(tagStart, tagStart + TAG_SIZE))
  const ciphertext = data.subarray(HEADER_SIZE, tagStart)
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

/** Checks that `keys` opened the file with this header; the decipher for its body. */
function decipherFor(
  file: string,
  keys: DerivedKeys,
  headerBytes: Buffer,
  header: FileHeader,
): DecipherGCM {
  if (header.keyLength !== keys.keyLength) throw new WrongKeyError(file)
  const expectedCheck = keyCheckValue(keys, headerBytes)
  if (!timingSafeEqual(expectedCheck, headerBytes.subarray(OFFSET.keyCheck, OFFSET.keyCheck + 16))) {
    throw new WrongKeyError(file)
  }
  const nonce = headerBytes.subarray(OFFSET.nonce, OFFSET.nonce + 12)
  const decipher = createDecipheriv(cipherName(keys.keyLength), keys.encryption, nonce)
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
  keys: DerivedKeys,
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
  const headerBytes = readExactly(Math.min(HEADER_SIZE, fileSize), 0)
  const header = parseHeader(file, headerBytes, fileSize)
  const decipher = decipherFor(file, keys, headerBytes, header)
  const end = fileSize - trailerSize(header.version)
  decipher.setAuthTag(readExactly(TAG_SIZE, end))
  const slice = Buffer.allocUnsafe(Math.min(CHUNK, end - HEADER_SIZE))
  const parts: Buffer[] = []
  try {
    for (let at = HEADER_SIZE; at < end; at += CHUNK) {
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
