import { isUtf8 } from 'node:buffer'
import { UnsupportedKeyError } from '../store/errors.js'
import type { StoreKey } from '../store/types.js'

/**
 * One stored entry. `value` holds the encoded value (see codec.ts) and is never mutated, so
 * entries can be shared between maps and copied into a commit as they are. `expiresAt`, in
 * milliseconds since the epoch, is when the entry stops counting (src/backends/backend.ts).
 */
export interface Entry {
  readonly value: Uint8Array
  readonly expiresAt?: number | undefined
}

/**
 * What the store needs of its map of entries: a `Map` is one; so is a PayloadMap, which answers
 * from a loaded payload without building a `Map` of every key.
 */
export interface EntryMap extends Iterable<[StoreKey, Entry]> {
  readonly size: number
  get(key: StoreKey): Entry | undefined
  has(key: StoreKey): boolean
  set(key: StoreKey, entry: Entry): unknown
  delete(key: StoreKey): boolean
  clear(): void
  keys(): IterableIterator<StoreKey>
  entries(): IterableIterator<[StoreKey, Entry]>
}

export const KEY_STRING = 1
export const KEY_NUMBER = 2
export const ENTRY_FLAG_EXPIRES = 0x01
export const KNOWN_ENTRY_FLAGS = ENTRY_FLAG_EXPIRES

export function checkKey(key: unknown): StoreKey {
  if (typeof key === 'number') return key
  if (typeof key === 'string') {
    // A lone surrogate has no UTF-8 form: the file would hold U+FFFD, a different key.
    if (!key.isWellFormed()) throw new UnsupportedKeyError('a string with a lone surrogate')
    return key
  }
  throw new UnsupportedKeyError(key === null ? 'null' : `a value of type ${typeof key}`)
}

/** Thrown for a payload that authenticated but does not parse; the caller names the file. */
export class PayloadError extends Error {}

/**
 * An entry parsed from a loaded payload. It records where its bytes are instead of cutting a
 * view for its value up front: a cold open of 100k entries then allocates one small object per
 * entry, and a commit can copy the unchanged records of the payload in long runs.
 */
export class StoredEntry implements Entry {
  readonly payload: Buffer
  /** Offsets in `payload`: the record starts at its key type byte; the value ends the record. */
  readonly recordStart: number
  readonly valueStart: number
  readonly valueEnd: number
  readonly expiresAt: number | undefined
  #value: Uint8Array | undefined

  constructor(
    payload: Buffer,
    recordStart: number,
    valueStart: number,
    valueEnd: number,
    expiresAt: number | undefined,
  ) {
    this.payload = payload
    this.recordStart = recordStart
    this.valueStart = valueStart
    this.valueEnd = valueEnd
    this.expiresAt = expiresAt
  }

  get value(): Uint8Array {
    this.#value ??= this.payload.subarray(this.valueStart, this.valueEnd)
    return this.#value
  }
}

/**
 * Lays out entries as described in docs/FORMAT.md: a u32 count, then per entry its key, flags,
 * optional expiry and the value bytes, each length-prefixed. Sized first, then filled by
 * copying: consecutive records that sit next to each other in a loaded payload are copied in
 * one piece, so a commit does no per-value encoding and little per-entry work.
 */
export function encodePayload(entries: Iterable<[StoreKey, Entry]>): Buffer {
  const keys: StoreKey[] = []
  const items: Entry[] = []
  const keyLengths: number[] = []
  let size = 4
  for (const [key, entry] of entries) {
    keys.push(key)
    items.push(entry)
    if (entry instanceof StoredEntry) {
      keyLengths.push(0)
      size += entry.valueEnd - entry.recordStart
      continue
    }
    const keyLength = typeof key === 'string' ? Buffer.byteLength(key) : 8
    keyLengths.push(keyLength)
    size += freshRecordSize(key, keyLength, entry)
  }
  const out = Buffer.allocUnsafe(size)
  let at = out.writeUInt32BE(items.length, 0)
  // The run of stored records waiting to be copied: [runStart, runEnd) of runSource.
  let runSource: Buffer | undefined
  let runStart = 0
  let runEnd = 0
  for (let i = 0; i < items.length; i++) {
    const entry = items[i] as Entry
    if (entry instanceof StoredEntry) {
      if (entry.payload === runSource && entry.recordStart === runEnd) {
        runEnd = entry.valueEnd
        continue
      }
      if (runSource !== undefined) at += runSource.copy(out, at, runStart, runEnd)
      runSource = entry.payload
      runStart = entry.recordStart
      runEnd = entry.valueEnd
      continue
    }
    if (runSource !== undefined) {
      at += runSource.copy(out, at, runStart, runEnd)
      runSource = undefined
    }
    at = writeRecord(out, at, keys[i] as StoreKey, keyLengths[i] as number, entry)
  }
  if (runSource !== undefined) runSource.copy(out, at, runStart, runEnd)
  return out
}

function freshRecordSize(key: StoreKey, keyLength: number, entry: Entry): number {
  const keyBytes = 1 + (typeof key === 'string' ? 4 : 0) + keyLength
  return keyBytes + 1 + (entry.expiresAt === undefined ? 0 : 8) + 4 + entry.value.length
}

/** The bytes `key` and `entry` take in a payload. */
export function recordSize(key: StoreKey, entry: Entry): number {
  if (entry instanceof StoredEntry) return entry.valueEnd - entry.recordStart
  return freshRecordSize(key, typeof key === 'string' ? Buffer.byteLength(key) : 8, entry)
}

/** Writes one record at `at` (copying it whole if it was parsed from a payload); returns the end. */
export function writeEntry(out: Buffer, at: number, key: StoreKey, entry: Entry): number {
  if (entry instanceof StoredEntry) {
    return at + entry.payload.copy(out, at, entry.recordStart, entry.valueEnd)
  }
  return writeRecord(out, at, key, typeof key === 'string' ? Buffer.byteLength(key) : 8, entry)
}

function writeRecord(
  out: Buffer,
  start: number,
  key: StoreKey,
  keyLength: number,
  entry: Entry,
): number {
  let at = start
  if (typeof key === 'string') {
    at = out.writeUInt8(KEY_STRING, at)
    at = out.writeUInt32BE(keyLength, at)
    at += out.write(key, at, 'utf8')
  } else {
    at = out.writeUInt8(KEY_NUMBER, at)
    at = out.writeDoubleBE(key, at)
  }
  if (entry.expiresAt === undefined) {
    at = out.writeUInt8(0, at)
  } else {
    at = out.writeUInt8(ENTRY_FLAG_EXPIRES, at)
    at = out.writeDoubleBE(entry.expiresAt, at)
  }
  at = out.writeUInt32BE(entry.value.length, at)
  out.set(entry.value, at)
  return at + entry.value.length
}

/**
 * The one record that `bytes` holds from start to end, as writeEntry() laid it out: for stores
 * that keep each entry apart (Redis). Throws PayloadError for bytes no writer makes.
 */
export function readRecord(bytes: Buffer): [StoreKey, Entry] {
  const fail = (what: string) => new PayloadError(`an entry record ${what}`)
  const need = (at: number, length: number) => {
    if (at + length > bytes.length) throw fail('is truncated')
  }
  let at = 0
  need(at, 1)
  const keyType = bytes[at++]
  let key: StoreKey
  if (keyType === KEY_STRING) {
    need(at, 4)
    const length = bytes.readUInt32BE(at)
    at += 4
    need(at, length)
    const keyBytes = bytes.subarray(at, at + length)
    // Two invalid byte sequences would read as one string (U+FFFD): no writer makes them.
    if (!isUtf8(keyBytes)) throw fail('has a key that is not valid UTF-8')
    key = keyBytes.toString('utf8')
    at += length
  } else if (keyType === KEY_NUMBER) {
    need(at, 8)
    key = bytes.readDoubleBE(at)
    at += 8
  } else {
    throw fail(`has an unknown key type ${keyType}`)
  }
  need(at, 1)
  const flags = bytes[at++] as number
  if ((flags & ~KNOWN_ENTRY_FLAGS) !== 0) throw fail(`has unknown flags ${flags}`)
  let expiresAt: number | undefined
  if (flags & ENTRY_FLAG_EXPIRES) {
    need(at, 8)
    expiresAt = bytes.readDoubleBE(at)
    at += 8
  }
  need(at, 4)
  const length = bytes.readUInt32BE(at)
  at += 4
  if (at + length !== bytes.length) throw fail('does not end where its value ends')
  const value = bytes.subarray(at)
  return [key, expiresAt === undefined ? { value } : { value, expiresAt }]
}

/**
 * Whether two entries hold the same bytes (value and expiry time): a commit that writes one
 * over the other changes nothing. Bytes, not decoded values, decide: the codec encodes equal
 * values equally, and comparing bytes needs no decoding.
 */
export function sameEntry(a: Entry, b: Entry): boolean {
  return a === b || (a.expiresAt === b.expiresAt && Buffer.compare(a.value, b.value) === 0)
}
