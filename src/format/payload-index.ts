import { isUtf8 } from 'node:buffer'
import { randomBytes } from 'node:crypto'
import {
  ENTRY_FLAG_EXPIRES,
  KEY_NUMBER,
  KEY_STRING,
  KNOWN_ENTRY_FLAGS,
  PayloadError,
  StoredEntry,
} from './payload.js'
import { Segments } from './segments.js'
import type { StoreKey } from '../store/types.js'

/** The smallest record: an empty string key (1 + 4 bytes), flags (1) and a value length (4). */
const MIN_RECORD_SIZE = 10

/**
 * Whoever writes a file chooses its keys, and a file under the public default key can be made
 * by anyone: keys made to share a slot would make indexing quadratic, in every process, on
 * every reload. So which keys share a slot must not be predictable without a key drawn at
 * random once per process.
 *
 * Two hashes use that key. The fast one, FNV-1a mixed under the key, indexes ordinary files:
 * a cold open runs mostly in code V8 has not optimized yet, where HalfSipHash costs several
 * times what FNV-1a does (a fresh process's open of 100,000 entries took 40-50% longer with
 * it alone). The mixing hides which slots keys land in; what it cannot hide is keys with one
 * FNV-1a value, which anyone can make offline (thousands in a second), since FNV-1a itself is
 * not keyed. Those show up as many pairs of distinct keys with equal hashes (#checkUnique), and
 * the index is then hashed again with the strong one: HalfSipHash-1-3, the 32-bit SipHash that
 * Linux uses for its hash tables (`hsiphash`), under which nothing collides predictably.
 */
const hashKey = randomBytes(16)
const K0 = hashKey.readInt32LE(0)
const K1 = hashKey.readInt32LE(4)
const M0 = hashKey.readInt32LE(8)
const M1 = hashKey.readInt32LE(12)

const FNV_OFFSET = 0x811c9dc5
const FNV_PRIME = 0x01000193

/** MurmurHash3's finalizer, with the key mixed in before each of its two passes. */
function mixUnderKey(hash: number): number {
  let h = hash ^ M0
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= (h >>> 16) ^ M1
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  return h ^ (h >>> 16)
}

/** Set by fastHash: the bits of every byte it hashed last, OR-ed (bit 7: not all ASCII). */
let hashedBits = 0

/** The fast hash of bytes [start, end): FNV-1a, mixed under the key. */
function fastHash(bytes: Uint8Array, start: number, end: number): number {
  let h = FNV_OFFSET
  let bits = 0
  for (let i = start; i < end; i++) {
    const byte = bytes[i] as number
    bits |= byte
    h = Math.imul(h ^ byte, FNV_PRIME)
  }
  hashedBits = bits
  return mixUnderKey(h)
}

/**
 * HalfSipHash-1-3 of bytes [start, end): one SipRound per little-endian 4-byte word, the last
 * word holding the 0 to 3 bytes left and the length in its top byte, then three more rounds.
 * The state stays in local variables (a helper function for the round would keep it in
 * module variables, several times slower), so the round is written out twice.
 */
function strongHash(bytes: Uint8Array, start: number, end: number): number {
  let v0 = K0
  let v1 = K1
  let v2 = 0x6c796765 ^ K0
  let v3 = 0x74656462 ^ K1
  const length = end - start
  const wordsEnd = end - (length & 3)
  for (let i = start; i <= wordsEnd; i += 4) {
    let word: number
    if (i < wordsEnd) {
      word =
        (bytes[i] as number) |
        ((bytes[i + 1] as number) << 8) |
        ((bytes[i + 2] as number) << 16) |
        ((bytes[i + 3] as number) << 24)
    } else {
      word = length << 24
      if (i + 2 < end) word |= (bytes[i + 2] as number) << 16
      if (i + 1 < end) word |= (bytes[i + 1] as number) << 8
      if (i < end) word |= bytes[i] as number
    }
    v3 ^= word
    v0 = (v0 + v1) | 0
    v1 = (v1 << 5) | (v1 >>> 27)
    v1 ^= v0
    v0 = (v0 << 16) | (v0 >>> 16)
    v2 = (v2 + v3) | 0
    v3 = (v3 << 8) | (v3 >>> 24)
    v3 ^= v2
    v0 = (v0 + v3) | 0
    v3 = (v3 << 7) | (v3 >>> 25)
    v3 ^= v0
    v2 = (v2 + v1) | 0
    v1 = (v1 << 13) | (v1 >>> 19)
    v1 ^= v2
    v2 = (v2 << 16) | (v2 >>> 16)
    v0 ^= word
  }
  v2 ^= 0xff
  for (let round = 0; round < 3; round++) {
    v0 = (v0 + v1) | 0
    v1 = (v1 << 5) | (v1 >>> 27)
    v1 ^= v0
    v0 = (v0 << 16) | (v0 >>> 16)
    v2 = (v2 + v3) | 0
    v3 = (v3 << 8) | (v3 >>> 24)
    v3 ^= v2
    v0 = (v0 + v3) | 0
    v3 = (v3 << 7) | (v3 >>> 25)
    v3 ^= v0
    v2 = (v2 + v1) | 0
    v1 = (v1 << 13) | (v1 >>> 19)
    v1 ^= v2
    v2 = (v2 << 16) | (v2 >>> 16)
  }
  return v1 ^ v3
}

function hashBytes(bytes: Uint8Array, start: number, end: number, strong: boolean): number {
  return strong ? strongHash(bytes, start, end) : fastHash(bytes, start, end)
}

const numberScratch = new Float64Array(1)
/**
 * A Buffer, like every other input of the hashes: one kind of byte array keeps them monomorphic
 * (a Uint8Array here made V8 deoptimize them in the middle of a cold open's first scan).
 */
const numberBytes = Buffer.from(numberScratch.buffer)

/** Hashes a number as `Map` compares keys: -0 is 0 and every NaN is one key. */
function hashNumber(n: number, strong: boolean): number {
  numberScratch[0] = Number.isNaN(n) ? Number.NaN : n === 0 ? 0 : n
  return hashBytes(numberBytes, 0, 8, strong)
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

/** Set by parseRecord: the fast hash of the key of the record it parsed last. */
let parsedHash = 0
/**
 * Set by parseRecord to the expiry of a record that has one; left at Infinity otherwise, and put
 * back by whoever reads it, so a payload without expiries costs the scan one comparison a record.
 */
let parsedExpiry = Number.POSITIVE_INFINITY

/**
 * Checks the framing of the record at `at` in `bytes`, which holds data up to `end`, and hashes
 * its key: returns where the record ends, or -1 if it runs past `end`. Throws PayloadError for
 * what no record may hold.
 */
function parseRecord(bytes: Buffer, start: number, end: number): number {
  let at = start
  if (at + 1 > end) return -1
  const keyType = bytes[at++]
  if (keyType === KEY_STRING) {
    if (at + 4 > end) return -1
    const length = readU32(bytes, at)
    at += 4
    if (at + length > end) return -1
    parsedHash = fastHash(bytes, at, at + length)
    // Keys are compared by their bytes, but read as strings: two invalid byte sequences would
    // read as one string (U+FFFD), a key that repeats unseen. No writer makes them (set()
    // refuses lone surrogates); only an ASCII-only key, the usual one, skips the check.
    if ((hashedBits & 0x80) !== 0 && !isUtf8(bytes.subarray(at, at + length))) {
      throw new PayloadError('a key is not valid UTF-8')
    }
    at += length
  } else if (keyType === KEY_NUMBER) {
    if (at + 8 > end) return -1
    parsedHash = hashNumber(bytes.readDoubleBE(at), false)
    at += 8
  } else {
    throw new PayloadError(`unknown key type ${keyType}`)
  }
  if (at + 1 > end) return -1
  const flags = bytes[at++] as number
  if ((flags & ~KNOWN_ENTRY_FLAGS) !== 0) throw new PayloadError(`unknown entry flags ${flags}`)
  if (flags & ENTRY_FLAG_EXPIRES) {
    if (at + 8 > end) return -1
    const expiry = bytes.readDoubleBE(at)
    // No writer stores one: a NaN would never expire, yet sort before and after every time.
    if (Number.isNaN(expiry)) throw new PayloadError('an entry expires at NaN')
    parsedExpiry = expiry
    at += 8
  }
  if (at + 4 > end) return -1
  const length = readU32(bytes, at)
  at += 4
  if (at + length > end) return -1
  return at + length
}

/**
 * A hash index over the records of a decrypted payload (docs/FORMAT.md): where each record
 * starts, and an open-addressing table from key to record number, built from the key bytes
 * without creating a string per key. Opening a store then costs decrypting and one pass over
 * the records; keys and values are decoded only when they are asked for.
 */
export class PayloadIndex {
  readonly payload: Segments
  readonly count: number
  /** recordStarts[i] is where record i begins; recordStarts[count] is the payload's end. */
  readonly #recordStarts: Float64Array
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
  /**
   * Steps taken through the table (building it and looking up) plus key comparisons made by
   * the check for repeated keys: a measure of how evenly keys hash, read by tests, which expect
   * it to grow linearly with the key count whatever the keys are.
   */
  #probes = 0
  /** Whether the keys are hashed with the strong hash (see fastHash): they were made to collide. */
  #strong = false
  /**
   * Each record's expiry (Infinity: none), allocated when the scan meets the first record that
   * has one: a store that uses no expiry never pays for it.
   */
  #expiries: Float64Array | undefined
  /** The earliest expiry of any record; Infinity when none has one. */
  #earliestExpiry = Number.POSITIVE_INFINITY

  /**
   * Checks the whole payload's framing and that no key repeats; throws PayloadError where it
   * does not parse.
   */
  constructor(payload: Buffer | Segments) {
    this.payload = payload instanceof Segments ? payload : Segments.of(payload)
    if (this.payload.length < 4) throw new PayloadError('payload ends inside its entry count')
    const [countBytes, at] = this.payload.locate(0, 4)
    const count = readU32(countBytes, at)
    if (count > (this.payload.length - 4) / MIN_RECORD_SIZE) {
      throw new PayloadError(`${count} entries cannot fit in ${this.payload.length} bytes`)
    }
    this.count = count
    this.#recordStarts = new Float64Array(count + 1)
    this.#hashes = new Int32Array(count)
    this.#scan()
    // Pairs of distinct keys with one fast hash: about count² / 2^33 for ordinary keys.
    if (!this.#checkUnique(16 + count / 256)) {
      this.#rehashStrongly()
      this.#checkUnique(Number.POSITIVE_INFINITY)
    }
  }

  get probes(): number {
    return this.#probes
  }

  /** Whether the keys turned out to be made to collide under the fast hash (for tests). */
  get hashedStrongly(): boolean {
    return this.#strong
  }

  /** Hashes every record's key again, with the strong hash. */
  #rehashStrongly(): void {
    this.#strong = true
    for (let i = 0; i < this.count; i++) {
      const [bytes, start] = this.#record(i)
      this.#hashes[i] =
        bytes[start] === KEY_NUMBER
          ? hashNumber(bytes.readDoubleBE(start + 1), true)
          : hashBytes(bytes, start + 5, start + 5 + readU32(bytes, start + 1), true)
    }
  }

  /**
   * Throws PayloadError if two records hold the same key: at open, not at whichever lookup would
   * trip on it. A hash table over every key would cost as much as the scan before it (random
   * writes all over megabytes), so each hash sets its bit in a bitset of 16 bits per key, small
   * enough to stay in cache, and only the records whose bit was met twice are put in a table of
   * their own, where the keys of those with equal hashes are compared. Returns false, unfinished,
   * once more than `clashLimit` pairs of distinct keys have turned out to share a hash.
   */
  #checkUnique(clashLimit: number): boolean {
    const hashes = this.#hashes
    let bits = 64
    while (bits < this.count * 16) bits *= 2
    const mask = bits - 1
    const seen = new Int32Array(bits >>> 5)
    const seenTwice = new Int32Array(bits >>> 5)
    let repeats = 0
    for (let i = 0; i < this.count; i++) {
      // Without a branch: one that is rarely taken deoptimizes the loop the first time it is.
      const bit = (hashes[i] as number) & mask
      const word = bit >>> 5
      const before = seen[word] as number
      const again = (before >>> (bit & 31)) & 1
      seen[word] = before | (1 << (bit & 31))
      seenTwice[word] = (seenTwice[word] as number) | (again << (bit & 31))
      repeats += again
    }
    if (repeats === 0) return true
    // At most 2 × repeats records have a bit met twice: the table stays at most half full.
    let capacity = 8
    while (capacity < repeats * 4) capacity *= 2
    const tableMask = capacity - 1
    const slots = new Int32Array(capacity)
    let probes = 0
    let clashes = 0
    for (let i = 0; i < this.count; i++) {
      const hash = hashes[i] as number
      const bit = hash & mask
      if (((seenTwice[bit >>> 5] as number) & (1 << (bit & 31))) === 0) continue
      let slot = (hash >>> 16) & tableMask
      while (slots[slot] !== 0) {
        probes++
        const other = (slots[slot] as number) - 1
        if (hashes[other] === hash) {
          if (this.#sameRecordKey(other, i)) {
            throw new PayloadError(`the key of entry ${i} repeats entry ${other}`)
          }
          if (++clashes > clashLimit) {
            this.#probes += probes
            return false
          }
        }
        slot = (slot + 1) & tableMask
      }
      slots[slot] = i + 1
    }
    this.#probes += probes
    return true
  }

  /** One pass over the records, part by part; a record that spans two parts is parsed from a copy. */
  #scan(): void {
    const segments = this.payload
    const starts = this.#recordStarts
    const hashes = this.#hashes
    let partNumber = 0
    let part = segments.parts[0] as Buffer
    let base = 0
    let at = 4
    for (let i = 0; i < this.count; i++) {
      starts[i] = at
      while (at >= base + part.length && partNumber < segments.parts.length - 1) {
        base += part.length
        part = segments.parts[++partNumber] as Buffer
      }
      const end = parseRecord(part, at - base, part.length)
      at = end >= 0 ? base + end : this.#parseAcrossParts(at)
      hashes[i] = parsedHash
      if (parsedExpiry !== Number.POSITIVE_INFINITY) this.#noteExpiry(i)
    }
    if (at !== segments.length) {
      throw new PayloadError(`${segments.length - at} bytes after the last entry`)
    }
    starts[this.count] = at
  }

  #noteExpiry(record: number): void {
    const at = parsedExpiry
    parsedExpiry = Number.POSITIVE_INFINITY
    if (this.#expiries === undefined) {
      this.#expiries = new Float64Array(this.count).fill(Number.POSITIVE_INFINITY)
    }
    this.#expiries[record] = at
    if (at < this.#earliestExpiry) this.#earliestExpiry = at
  }

  /** The earliest expiry of any record (live or not), learnt at load; Infinity when none has one. */
  get earliestExpiry(): number {
    return this.#earliestExpiry
  }

  /** When record `record` expires; Infinity when it has no expiry. */
  expiryAt(record: number): number {
    return this.#expiries === undefined
      ? Number.POSITIVE_INFINITY
      : (this.#expiries[record] as number)
  }

  /** Parses a record that runs past its part from a copy of a growing window; returns its end. */
  #parseAcrossParts(start: number): number {
    const total = this.payload.length
    for (let window = 4096; ; window *= 2) {
      const stop = Math.min(total, start + window)
      const [bytes, offset] = this.payload.locate(start, stop)
      const end = parseRecord(bytes, offset, offset + stop - start)
      if (end >= 0) return start + end - offset
      if (stop === total) throw new PayloadError(`payload ends inside an entry at byte ${start}`)
    }
  }

  /** Record `record`'s bytes as [buffer, offset of the record in it]. */
  #record(record: number): [Buffer, number] {
    return this.payload.locate(
      this.#recordStarts[record] as number,
      this.#recordStarts[record + 1] as number,
    )
  }

  /** The keys are known to be distinct (#checkUnique): each goes in the first free slot. */
  #buildTable(): Int32Array {
    let capacity = 8
    while (capacity < this.count * 2) capacity *= 2
    const mask = capacity - 1
    const slots = new Int32Array(capacity * 2)
    const hashes = this.#hashes
    let probes = 0
    for (let i = 0; i < this.count; i++) {
      const hash = hashes[i] as number
      let slot = hash & mask
      while (slots[slot * 2] !== 0) {
        probes++
        slot = (slot + 1) & mask
      }
      slots[slot * 2] = i + 1
      slots[slot * 2 + 1] = hash
    }
    this.#probes += probes
    return slots
  }

  /**
   * The first record whose key hashes to `hash` and that `matches` accepts, or -1: through the
   * table once it exists, else by scanning the hashes.
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
      this.#probes++
      const occupant = slots[slot * 2] as number
      if (occupant === 0) return -1
      if (slots[slot * 2 + 1] === hash && matches(occupant - 1)) return occupant - 1
    }
  }

  #sameRecordKey(a: number, b: number): boolean {
    const [bytesA, startA] = this.#record(a)
    const [bytesB, startB] = this.#record(b)
    const type = bytesA[startA]
    if (type !== bytesB[startB]) return false
    if (type === KEY_NUMBER) {
      return sameNumber(bytesA.readDoubleBE(startA + 1), bytesB.readDoubleBE(startB + 1))
    }
    const length = readU32(bytesA, startA + 1)
    if (length !== readU32(bytesB, startB + 1)) return false
    return bytesA.compare(bytesB, startB + 5, startB + 5 + length, startA + 5, startA + 5 + length) === 0
  }

  /** The record number holding `key`, or -1. */
  find(key: StoreKey): number {
    return typeof key === 'number' ? this.#findNumber(key) : this.#findString(key)
  }

  #findNumber(key: number): number {
    return this.#probe(hashNumber(key, this.#strong), (record) => {
      const [bytes, start] = this.#record(record)
      return bytes[start] === KEY_NUMBER && sameNumber(bytes.readDoubleBE(start + 1), key)
    })
  }

  #findString(key: string): number {
    if (key.length * 3 > keyScratch.length) keyScratch = Buffer.allocUnsafe(key.length * 3)
    const wanted = keyScratch
    const length = wanted.write(key, 0, 'utf8')
    return this.#probe(hashBytes(wanted, 0, length, this.#strong), (record) => {
      const [bytes, start] = this.#record(record)
      if (bytes[start] !== KEY_STRING || readU32(bytes, start + 1) !== length) return false
      let i = 0
      while (i < length && bytes[start + 5 + i] === wanted[i]) i++
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

  /**
   * Whether the `count` records from `record` here hold the same bytes as the `count` from
   * `otherRecord` of `other`: pairwise the same keys with the same entries. Equal bytes from a
   * record start parse into equal records, so a run of them is compared in one piece.
   */
  sameRecordsAs(record: number, other: PayloadIndex, otherRecord: number, count = 1): boolean {
    const start = this.recordStart(record)
    const length = this.recordStart(record + count) - start
    const otherStart = other.recordStart(otherRecord)
    if (other.recordStart(otherRecord + count) - otherStart !== length) return false
    return this.payload.sameBytes(start, other.payload, otherStart, length)
  }

  keyAt(record: number): StoreKey {
    const [bytes, start] = this.#record(record)
    if (bytes[start] === KEY_NUMBER) return bytes.readDoubleBE(start + 1)
    const length = readU32(bytes, start + 1)
    return bytes.toString('utf8', start + 5, start + 5 + length)
  }

  /** The record as an entry whose value is cut from the payload on first read. */
  entryAt(record: number): StoredEntry {
    const [bytes, start] = this.#record(record)
    let at = start + (bytes[start] === KEY_NUMBER ? 9 : 5 + readU32(bytes, start + 1))
    const flags = bytes[at++] as number
    let expiresAt: number | undefined
    if (flags & ENTRY_FLAG_EXPIRES) {
      expiresAt = bytes.readDoubleBE(at)
      at += 8
    }
    const valueStart = at + 4
    const end = start + this.recordEnd(record) - this.recordStart(record)
    return new StoredEntry(bytes, start, valueStart, end, expiresAt)
  }
}
