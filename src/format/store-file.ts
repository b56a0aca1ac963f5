import { constants as bufferConstants } from 'node:buffer'
import { closeSync, fstatSync, readSync } from 'node:fs'
import type { DecipherGCM } from 'node:crypto'
import { type DerivedKeys, newCipher, newDecipher, TAG_SIZE } from '../crypto.js'
import { CorruptFileError, FileTooLargeError, WrongKeyError } from '../store/errors.js'
import type { StoreKey } from '../store/types.js'
import { PayloadMap } from './payload-map.js'
import { openExistingFile } from './file-info.js'
import {
  type FileHeader,
  FLAG_DEFLATE,
  FLAG_PASSPHRASE,
  FORMAT_VERSION,
  HEADER_SIZE,
  headerSize,
  isDeflated,
  keyCheckMatches,
  nonceOf,
  parseHeader,
  payloadKey,
  STATUS_CURRENT,
  STATUS_SIZE,
  trailerSize,
  type WritableFormatVersion,
  writeHeader,
} from './header.js'
import { type Entry, encodePayload, PayloadError } from './payload.js'
import { Segments } from './segments.js'

/** node:zlib, loaded by the first compressed store: a fresh process pays several ms for it. */
const zlib = () => process.getBuiltinModule('node:zlib')

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

/** Encrypts a payload into the parts of a complete store file (header, ciphertext, tag, status). */
export function seal(keys: DerivedKeys, payload: Uint8Array, options: SealOptions): SealedFile {
  const version = options.formatVersion ?? FORMAT_VERSION
  const start = headerSize(version)
  const flags = (options.compress ? FLAG_DEFLATE : 0) | (options.kdf ? FLAG_PASSPHRASE : 0)
  const body = options.compress ? zlib().deflateRawSync(payload) : payload
  const size = start + body.length + TAG_SIZE + STATUS_SIZE
  // Every header byte is written, so the buffer need not be zeroed first.
  const whole = size <= ONE_PART_MAX ? Buffer.allocUnsafe(size) : undefined
  const header = whole ? whole.subarray(0, start) : Buffer.allocUnsafe(start)
  writeHeader(header, keys, {
    version,
    flags,
    storeId: options.storeId,
    counter: options.counter,
    kdf: options.kdf,
  })

  const cipher = newCipher(payloadKey(keys, header, version), nonceOf(header, version), header)
  if (whole) {
    // GCM output is as long as its input, and final() adds nothing.
    cipher.update(body).copy(whole, start)
    cipher.final()
    cipher.getAuthTag().copy(whole, start + body.length)
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

/** Encodes entries and seals them: the parts of a complete store file that holds exactly them. */
export function sealEntries(
  keys: DerivedKeys,
  entries: Iterable<[StoreKey, Entry]>,
  options: SealOptions,
): SealedFile {
  return seal(keys, encodePayload(entries), options)
}

/**
 * What picks the keys that open a file: the keys of one key, or a keyring (src/store/keyring.ts),
 * which tries each key it holds. `keysFor` throws WrongKeyError when none opens the file.
 */
export interface KeySource {
  keysFor(file: string, headerBytes: Buffer, header: FileHeader): DerivedKeys
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

/** `open`, then the payload's entries: what stash streams and backups are read with. */
export function openEntries(
  file: string,
  keys: DerivedKeys | KeySource,
  bytes: Uint8Array,
  options: { inPlace?: boolean; maxPayloadSize?: number } = {},
): { header: FileHeader; entries: PayloadMap } {
  const { header, payload } = open(file, keys, bytes, options)
  return { header, entries: entriesOf(file, payload) }
}

/** The entries of an authenticated payload; one that does not parse is CorruptFileError. */
export function entriesOf(file: string, payload: Buffer | Segments): PayloadMap {
  try {
    return new PayloadMap(payload)
  } catch (cause) {
    if (!(cause instanceof PayloadError)) throw cause
    throw new CorruptFileError(file, cause.message, { cause })
  }
}

/** Throws FileTooLargeError when `size` bytes are more than `maxFileSize`. */
export function checkFileSize(file: string, size: number, maxFileSize: number): void {
  if (size > maxFileSize) throw new FileTooLargeError(file, size, maxFileSize)
}

/**
 * Reads, authenticates and decrypts a whole store file that is not the store (a backup): no
 * lock, nothing written. A missing file is StoreFileNotFoundError.
 */
export function readStoreFile(
  file: string,
  keys: DerivedKeys | KeySource,
  maxFileSize: number,
): { header: FileHeader; entries: PayloadMap } {
  const fd = openExistingFile(file)
  try {
    const { size } = fstatSync(fd)
    checkFileSize(file, size, maxFileSize)
    const bytes = Buffer.allocUnsafe(size)
    let read = 0
    while (read < size) {
      const got = readSync(fd, bytes, read, size - read, read)
      if (got === 0) break
      read += got
    }
    return openEntries(file, keys, bytes.subarray(0, read), {
      inPlace: true,
      maxPayloadSize: maxFileSize,
    })
  } finally {
    closeSync(fd)
  }
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
  const keys = keysOpening(source, file, headerBytes, header)
  return newDecipher(
    payloadKey(keys, headerBytes, header.version),
    nonceOf(headerBytes, header.version),
    headerBytes,
  )
}

/**
 * The payload of a file whose (decrypted) body is `body`. `maxFileSize` bounds the bytes read,
 * not what they inflate to: deflate reaches about 1000:1, so a 1 MiB file of zeros would inflate
 * to 1 GiB. Inflating stops once the output passes `limit` (zlib throws ERR_BUFFER_TOO_LARGE
 * from its output loop), so memory stays bounded by the limit.
 */
function inflated(file: string, header: FileHeader, body: Buffer, limit: number): Buffer {
  if (!isDeflated(header)) return body
  // zlib wants an integer from 1 to the largest Buffer; any larger limit is no limit.
  const maxOutputLength = Math.max(1, Math.min(Math.floor(limit), bufferConstants.MAX_LENGTH))
  try {
    return zlib().inflateRawSync(body, { maxOutputLength })
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
  if (!isDeflated(header)) return { header, payload: body }
  return { header, payload: Segments.of(inflated(file, header, body.join(), maxPayloadSize)) }
}
