import {
  ENTRY_FLAG_EXPIRES,
  KEY_NUMBER,
  KEY_STRING,
  KNOWN_ENTRY_FLAGS,
  PayloadError,
  StoredEntry,
} from './payload.js'
import type { StoreKey } from './types.js'

/** The smallest record: an empty string key (1 + 4 bytes), flags (1) and a value length (4). */
const MIN_RECORD_SIZE = 10

const FNV_OFFSET = 0x811c9dc5
const FNV_PRIME = 0x01000193

/** Spreads FNV-1a's weak low bits, which pick the slot. */
function finish(hash: number): number {
  let h = hash ^ (hash >>> 16)
  h = Math.imul(h, 0x85ebca6b)
  return h ^ (h >>> 13)
}

function hashBytes(bytes: Uint8Array, start: number, end: number): number {
  let h = FNV_OFFSET
  for (let i = start; i < end; i++) h = Math.imul(h ^ (bytes[i] as number), FNV_PRIME)
  return finish(h)
}

const numberScratch = new Float64Array(1)
const numberWords = new Uint32Array(numberScratch.buffer)

/** Hashes a number as `Map` compares keys: -0 is 0 and every NaN is one key. */
function hashNumber(n: number): number {
  if (Number.isNaN(n)) return 0x7ff80000
  numberScratch[0] = n === 0 ? 0 : n
  const h = Math.imul(FNV_OFFSET ^ (numberWords[0] as number), FNV_PRIME)
  return finish(Math.imul(h ^ (numberWords[1] as number), FNV_PRIME))
}

function readU32(bytes: Uint8Array, at: number): number {
  return (
    (((bytes[at] as number) << 24) |
      ((bytes[at + 1] as number) << 16) |
      ((bytes[at + 2] as number) << 8) |
      (bytes[at + 3] as number)) >>>
    0
  )
}

function sameNumber(a: number, b: number): boolean {
  return a === b || (Number.isNaN(a) && Number.isNaN(b))
}

/** See PayloadIndex.#slots. */
const LOOKUPS_BEFORE_TABLE = 32

/** Big enough for the UTF-8 form of any key of up to 1,365 UTF-16 units; longer keys get their own buffer. */
let keyScratch = Buffer.allocUnsafe(4096)

/**
 * A hash index over the records of a decrypted payload (docs/FORMAT.md): where each record
 * starts, and an open-addressing table from key to record number, built from the key bytes
 * without creating a string per key. Opening a store then costs decrypting and one pass over
 * the records; keys and values are decoded only when they are asked for.
 */
export class PayloadIndex {
  readonly payload: Buffer
  readonly count: number
  /** recordStarts[i] is where record i begins; recordStarts[count] is the payload's end. */
  readonly #recordStarts: Uint32Array
  /** The hash of each record's key, computed in the pass that checks the framing. */
  readonly #hashes: Int32Array
  /**
   * The hash table, built on the LOOKUPS_BEFORE_TABLE-th lookup (until then a lookup scans
   * #hashes, which costs about 1% of building the table): a cold open followed by a few reads
   * does not pay for random writes all over a table as large as the payload's key count.
   * Two numbers per slot, side by side so that one cache line holds both: the record number + 1
   * (0: empty slot) and the key's hash, compared before any key bytes. Never more than half full.
   */
  #slots: Int32Array | undefined
  #lookups = 0

  /** Checks the whole payload's framing; throws PayloadError where it does not parse. */
  constructor(payload: Buffer) {
    this.payload = payload
    if (payload.length < 4) throw new PayloadError('payload ends inside its entry count')
    const count = payload.readUInt32BE(0)
    if (count > (payload.length - 4) / MIN_RECORD_SIZE) {
      throw new PayloadError(`${count} entries cannot fit in ${payload.length} bytes`)
    }
    this.count = count
    this.#recordStarts = new Uint32Array(count + 1)
    this.#hashes = new Int32Array(count)
    this.#scan()
  }

  /** One pass over the records; kept to local variables and inline reads, as it runs per entry on open. */
  #scan(): void {
    const payload = this.payload
    const end = payload.length
    const starts = this.#recordStarts
    const hashes = this.#hashes
    const truncated = (at: number) => new PayloadError(`payload ends inside an entry at byte ${at}`)
    let at = 4
    for (let i = 0; i < this.count; i++) {
      starts[i] = at
      if (at + 1 > end) throw truncated(at)
      const keyType = payload[at++]
      let hash: number
      if (keyType === KEY_STRING) {
        if (at + 4 > end) throw truncated(at)
        const length = readU32(payload, at)
        at += 4
        if (at + length > end) throw truncated(at)
        let h = FNV_OFFSET
        for (let j = at; j < at + length; j++) h = Math.imul(h ^ (payload[j] as number), FNV_PRIME)
        hash = finish(h)
        at += length
      } else if (keyType === KEY_NUMBER) {
        if (at + 8 > end) throw truncated(at)
        hash = hashNumber(payload.readDoubleBE(at))
        at += 8
      } else {
        throw new PayloadError(`unknown key type ${keyType} at byte ${at - 1}`)
      }
      if (at + 1 > end) throw truncated(at)
      const flags = payload[at++] as number
      if ((flags & ~KNOWN_ENTRY_FLAGS) !== 0) throw new PayloadError(`unknown entry flags ${flags}`)
      if (flags & ENTRY_FLAG_EXPIRES) at += 8
      if (at + 4 > end) throw truncated(at)
      const length = readU32(payload, at)
      at += 4
      if (at + length > end) throw truncated(at)
      at += length
      hashes[i] = hash
    }
    if (at !== end) throw new PayloadError(`${end - at} bytes after the last entry`)
    starts[this.count] = at
  }

  /** Throws PayloadError if two records hold the same key. */
  #buildTable(): Int32Array {
    let capacity = 8
    while (capacity < this.count * 2) capacity *= 2
    const mask = capacity - 1
    const slots = new Int32Array(capacity * 2)
    const hashes = this.#hashes
    for (let i = 0; i < this.count; i++) {
      const hash = hashes[i] as number
      let slot = hash & mask
      while (slots[slot * 2] !== 0) {
        const other = (slots[slot * 2] as number) - 1
        if (slots[slot * 2 + 1] === hash && this.#sameRecordKey(other, i)) {
          throw new PayloadError(`the key of entry ${i} repeats entry ${other}`)
        }
        slot = (slot + 1) & mask
      }
      slots[slot * 2] = i + 1
      slots[slot * 2 + 1] = hash
    }
    return slots
  }

  /**
   * The records whose key hashes to `hash`, most likely first, until `matches` accepts one:
   * through the table once it exists, else by scanning the hashes. Throws PayloadError when
   * building the table finds a repeated key.
   */
  #probe(hash: number, matches: (record: number) => boolean): number {
    if (this.#slots === undefined && ++this.#lookups >= LOOKUPS_BEFORE_TABLE) {
      this.#slots = this.#buildTable()
    }
    const slots = this.#slots
    if (slots === undefined) {
      const hashes = this.#hashes
      for (let i = 0; i < this.count; i++) if (hashes[i] === hash && matches(i)) return i
      return -1
    }
    const mask = (slots.length >> 1) - 1
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const occupant = slots[slot * 2] as number
      if (occupant === 0) return -1
      if (slots[slot * 2 + 1] === hash && matches(occupant - 1)) return occupant - 1
    }
  }

  #sameRecordKey(a: number, b: number): boolean {
    const payload = this.payload
    const startA = this.#recordStarts[a] as number
    const startB = this.#recordStarts[b] as number
    const type = payload[startA]
    if (type !== payload[startB]) return false
    if (type === KEY_NUMBER) {
      return sameNumber(payload.readDoubleBE(startA + 1), payload.readDoubleBE(startB + 1))
    }
    const length = payload.readUInt32BE(startA + 1)
    if (length !== payload.readUInt32BE(startB + 1)) return false
    return payload.compare(payload, startB + 5, startB + 5 + length, startA + 5, startA + 5 + length) === 0
  }

  /** The record number holding `key`, or -1. */
  find(key: StoreKey): number {
    return typeof key === 'number' ? this.#findNumber(key) : this.#findString(key)
  }

  #findNumber(key: number): number {
    const payload = this.payload
    return this.#probe(hashNumber(key), (record) => {
      const start = this.#recordStarts[record] as number
      return payload[start] === KEY_NUMBER && sameNumber(payload.readDoubleBE(start + 1), key)
    })
  }

  #findString(key: string): number {
    if (key.length * 3 > keyScratch.length) keyScratch = Buffer.allocUnsafe(key.length * 3)
    const bytes = keyScratch
    const length = bytes.write(key, 0, 'utf8')
    const payload = this.payload
    return this.#probe(hashBytes(bytes, 0, length), (record) => {
      const start = this.#recordStarts[record] as number
      if (payload[start] !== KEY_STRING || readU32(payload, start + 1) !== length) return false
      let i = 0
      while (i < length && payload[start + 5 + i] === bytes[i]) i++
      return i === length
    })
  }

  recordStart(record: number): number {
    return this.#recordStarts[record] as number
  }

  /** Where the record ends: records are contiguous, so where the next one starts. */
  recordEnd(record: number): number {
    return this.#recordStarts[record + 1] as number
  }

  keyAt(record: number): StoreKey {
    const start = this.#recordStarts[record] as number
    if (this.payload[start] === KEY_NUMBER) return this.payload.readDoubleBE(start + 1)
    const length = this.payload.readUInt32BE(start + 1)
    return this.payload.toString('utf8', start + 5, start + 5 + length)
  }

  entryAt(record: number): StoredEntry {
    const payload = this.payload
    const start = this.#recordStarts[record] as number
    let at = start + (payload[start] === KEY_NUMBER ? 9 : 5 + payload.readUInt32BE(start + 1))
    const flags = payload[at++] as number
    let expiresAt: number | undefined
    if (flags & ENTRY_FLAG_EXPIRES) {
      expiresAt = payload.readDoubleBE(at)
      at += 8
    }
    const valueStart = at + 4
    return new StoredEntry(payload, start, valueStart, this.recordEnd(record), expiresAt)
  }
}
