import { type Cipher, type CipherGCM, createCipheriv, createHmac, timingSafeEqual } from 'node:crypto'
import {
  backendSubkey,
  type DerivedKeys,
  fillRandom,
  keyCheckValue,
  NONCE_SIZE,
  newCipherWithoutAad,
  newDecipher,
  TAG_SIZE,
} from '../../crypto.js'
import { type Entry, readRecord, recordSize, writeEntry } from '../../format/payload.js'
import type { StoreKey } from '../../store/types.js'

/**
 * What the server holds of a store, and nothing it can read (docs/DESIGN.md, "The Redis
 * backend"): key names only as keyed hashes, entries sealed with AES-GCM under a key of their
 * own, bound to the store and to their field.
 */

/** The meta's magic: a store of ours, as opposed to another program's hash under the name. */
export const MAGIC = 'anystore-kv'
/** The layout version in the meta; a store in a higher one needs a newer anystore. */
export const LAYOUT_VERSION = 1
/** The bytes of a field: a truncated HMAC-SHA256 of the key name. */
export const FIELD_SIZE = 16
/** The bytes of a store id. */
export const STORE_ID_SIZE = 16

/** A sealed entry: version, salt, nonce, then the AES-GCM ciphertext and its tag. */
const SEALING_VERSION = 1
/** 15 bytes: with the counter byte, one AES block of the key derivation (see EntryKeys). */
const SALT_SIZE = 15
const SALT_AT = 1
const NONCE_AT = SALT_AT + SALT_SIZE
const CIPHERTEXT_AT = NONCE_AT + NONCE_SIZE
export const SEALING_OVERHEAD = CIPHERTEXT_AT + TAG_SIZE

/**
 * An entry's mark: 16 of the random bytes each sealing draws (the salt and a byte of the
 * nonce), which name one write of an entry. A transaction's read holds while the entry's mark
 * is the one read (the commit script compares them), so no per-key version is stored.
 */
export const MARK_AT = SALT_AT
export const MARK_SIZE = 16

/** The mark of a sealed entry (see MARK_AT). */
export function markOf(sealed: Buffer): Buffer {
  return sealed.subarray(MARK_AT, MARK_AT + MARK_SIZE)
}

const NAMES_INFO = 'anystore/redis/v1/key-names'
const ENTRIES_INFO = 'anystore/redis/v1/entries'
const AAD_LABEL = Buffer.from('anystore/redis/v1/entry\0', 'ascii')
const CHECK_LABEL = Buffer.from('anystore/redis/v1/key-check\0', 'ascii')

/** The keys of a Redis store: derived once per store and secret. */
export interface RedisKeys {
  readonly derived: DerivedKeys
  /** HMAC key of the fields. */
  readonly names: Buffer
  /** What derives each entry's own key from its salt. */
  readonly entries: EntryKeys
  /** The ciphers the next sealings use, made ahead. */
  readonly ciphers: ReadyCiphers
}

/**
 * Each entry's own AES key, from its random salt: the key derivation function in counter mode
 * of NIST SP 800-108r1, with AES-256-CMAC as the pseudorandom function, one fixed-length block
 * of input per 16 bytes of output (the counter byte, then the salt), as XAES-256-GCM derives
 * its keys. CMAC of a single complete block is AES of that block XOR the subkey k1, so one
 * AES-ECB cipher, kept for the store, computes both blocks in one call: a write derives its
 * key for a fraction of what an HMAC object per write cost (a fifth of a set's CPU time).
 */
export class EntryKeys {
  readonly #ecb: Cipher
  readonly #k1: Buffer

  constructor(key: Buffer) {
    this.#ecb = createCipheriv('aes-256-ecb', key, null)
    this.#ecb.setAutoPadding(false)
    this.#k1 = doubled(this.#ecb.update(Buffer.alloc(16)))
  }

  /** CMAC under the key of each 16-byte block of `blocks`, in place of them. */
  cmacBlocks(blocks: Buffer): Buffer {
    // A partial block would stay buffered in the kept cipher and shift every later derivation.
    if (blocks.length % 16 !== 0) throw new RangeError('cmacBlocks takes whole 16-byte blocks')
    for (let i = 0; i < blocks.length; i++) blocks[i]! ^= this.#k1[i % 16]!
    return this.#ecb.update(blocks)
  }

  /** The key of the entry with this salt (SALT_SIZE bytes), `length` bytes (16, 24 or 32). */
  derive(salt: Buffer, length: number): Buffer {
    return this.deriveMany([salt])[0]!.subarray(0, length)
  }

  /** The 32-byte keys of the entries with these salts, in one call of the cipher. */
  deriveMany(salts: readonly Buffer[]): Buffer[] {
    const input = Buffer.allocUnsafe(32 * salts.length)
    for (const [i, salt] of salts.entries()) {
      input[32 * i] = 1
      salt.copy(input, 32 * i + 1, 0, SALT_SIZE)
      input[32 * i + 16] = 2
      salt.copy(input, 32 * i + 17, 0, SALT_SIZE)
    }
    const keys = this.cmacBlocks(input)
    return salts.map((_, i) => keys.subarray(32 * i, 32 * i + 32))
  }
}

/** How many ciphers ReadyCiphers keeps made ahead. */
export const READY_CIPHERS = 8

/** A cipher for one sealing, with the random bytes it was made from. */
export interface ReadyCipher {
  /** The salt and the nonce: SALT_SIZE + NONCE_SIZE fresh random bytes, used by this cipher only. */
  readonly random: Buffer
  /** AES-GCM under the key derived from the salt, with the nonce; no AAD or data yet. */
  readonly cipher: CipherGCM
}

/**
 * AES-GCM ciphers made ahead for the next sealings of a store key. Making one (drawing its
 * salt and nonce, deriving its key, creating the cipher) is most of what a set costs the
 * client; the Redis backend has them made while a commit is on its way to the server, when
 * the process would otherwise wait for the answer. Each is taken once, so each salt and nonce
 * seals one entry, as when made on the spot. Made in batches: one cipher call derives a batch's
 * keys.
 */
export class ReadyCiphers {
  readonly #entries: EntryKeys
  readonly #keyLength: number
  #ready: ReadyCipher[] = []
  #scheduled = false

  constructor(entries: EntryKeys, keyLength: number) {
    this.#entries = entries
    this.#keyLength = keyLength
  }

  /** A cipher for one sealing: made ahead if there is one, else now. */
  take(): ReadyCipher {
    return this.#ready.pop() ?? this.#make(1)[0]!
  }

  /**
   * Makes ciphers up to READY_CIPHERS on the next turn of the event loop, after what is already
   * queued for it: called right after a command is queued, so its socket write (node-redis
   * writes on setImmediate) goes first and the making overlaps the server's work.
   */
  prepareSoon(): void {
    if (this.#scheduled || this.#ready.length >= READY_CIPHERS) return
    this.#scheduled = true
    setImmediate(() => {
      this.#scheduled = false
      const missing = READY_CIPHERS - this.#ready.length
      if (missing > 0) this.#ready.push(...this.#make(missing))
    }).unref()
  }

  /** How many are made ahead now. */
  get ready(): number {
    return this.#ready.length
  }

  #make(count: number): ReadyCipher[] {
    const random = Buffer.allocUnsafe(count * (SALT_SIZE + NONCE_SIZE))
    fillRandom(random, 0, random.length)
    const randoms = Array.from({ length: count }, (_, i) =>
      random.subarray(i * (SALT_SIZE + NONCE_SIZE), (i + 1) * (SALT_SIZE + NONCE_SIZE)),
    )
    const keys = this.#entries.deriveMany(randoms)
    return randoms.map((bytes, i) => ({
      random: bytes,
      cipher: newCipherWithoutAad(keys[i]!.subarray(0, this.#keyLength), bytes.subarray(SALT_SIZE)),
    }))
  }
}

/** CMAC's doubling in GF(2^128) (NIST SP 800-38B): the subkey k1 from AES of zeros. */
function doubled(block: Buffer): Buffer {
  const out = Buffer.allocUnsafe(16)
  let carry = 0
  for (let i = 15; i >= 0; i--) {
    out[i] = ((block[i]! << 1) | carry) & 0xff
    carry = block[i]! >> 7
  }
  if (block[0]! & 0x80) out[15]! ^= 0x87
  return out
}

const cache = new WeakMap<DerivedKeys, RedisKeys>()

export function redisKeys(derived: DerivedKeys): RedisKeys {
  let keys = cache.get(derived)
  if (keys === undefined) {
    const entries = new EntryKeys(backendSubkey(derived, ENTRIES_INFO))
    keys = {
      derived,
      names: backendSubkey(derived, NAMES_INFO),
      entries,
      ciphers: new ReadyCiphers(entries, derived.keyLength),
    }
    cache.set(derived, keys)
  }
  return keys
}

/** `Map` treats -0 as 0 and every NaN as one key: so does a store. */
export function normalizeKey(key: StoreKey): StoreKey {
  if (typeof key === 'number') return Number.isNaN(key) ? Number.NaN : key === 0 ? 0 : key
  return key
}

/**
 * The field of a key: HMAC-SHA256 under the names key of the store id and the key's type and
 * bytes, 16 bytes. Equal names give equal fields (a get needs no listing); without the key the
 * server learns nothing of a name but whether two writes were to the same key, and, with the
 * store id in it, not even whether two stores under one key hold the same name. 128 bits: a
 * collision between two names of one store is out of reach (2^64 names for an even chance).
 */
export function fieldOf(keys: RedisKeys, storeId: Buffer, key: StoreKey): Buffer {
  const hmac = createHmac('sha256', keys.names)
  hmac.update(storeId)
  if (typeof key === 'string') {
    hmac.update(Buffer.of(1))
    hmac.update(key, 'utf8')
  } else {
    const bytes = Buffer.alloc(9)
    bytes[0] = 2
    bytes.writeDoubleBE(normalizeKey(key) as number, 1)
    hmac.update(bytes)
  }
  return hmac.digest().subarray(0, FIELD_SIZE)
}

/** The AES key of the entry with this salt, as long as the store's key (see EntryKeys). */
function entryKey(keys: RedisKeys, salt: Buffer): Buffer {
  return keys.entries.derive(salt, keys.derived.keyLength)
}

/** What the tag binds besides the plaintext: the sealing version, the store and the field. */
function aadOf(storeId: Buffer, field: Buffer): Buffer {
  const aad = Buffer.allocUnsafe(AAD_LABEL.length + 1 + storeId.length + field.length)
  let at = AAD_LABEL.copy(aad, 0)
  aad[at++] = SEALING_VERSION
  at += storeId.copy(aad, at)
  field.copy(aad, at)
  return aad
}

/**
 * The sealed form of `entry` under `key` (already normalized), for `field` of the store
 * `storeId`: the entry record of the file format (key name, flags, value), encrypted.
 */
export function sealEntry(
  keys: RedisKeys,
  storeId: Buffer,
  field: Buffer,
  key: StoreKey,
  entry: Entry,
): Buffer {
  const plaintext = Buffer.allocUnsafe(recordSize(key, entry))
  writeEntry(plaintext, 0, key, entry)
  const out = Buffer.allocUnsafe(SEALING_OVERHEAD + plaintext.length)
  out[0] = SEALING_VERSION
  const { random, cipher } = keys.ciphers.take()
  random.copy(out, SALT_AT)
  cipher.setAAD(aadOf(storeId, field))
  let at = CIPHERTEXT_AT
  at += cipher.update(plaintext).copy(out, at)
  at += cipher.final().copy(out, at)
  cipher.getAuthTag().copy(out, at)
  return out
}

/** Why a sealed entry does not open: the caller names the store. */
export class SealError extends Error {}

/**
 * The key and entry sealed in `sealed` for `field` of `storeId`. Throws SealError for bytes
 * that do not authenticate (tampered, moved from another field or store, or sealed under
 * another key) or do not parse.
 */
export function openEntry(
  keys: RedisKeys,
  storeId: Buffer,
  field: Buffer,
  sealed: Buffer,
): [StoreKey, Entry] {
  if (sealed.length < SEALING_OVERHEAD) throw new SealError('an entry is truncated')
  if (sealed[0] !== SEALING_VERSION) {
    throw new SealError(`an entry has an unknown sealing version ${sealed[0]}`)
  }
  const tagAt = sealed.length - TAG_SIZE
  const decipher = newDecipher(
    entryKey(keys, sealed.subarray(SALT_AT, NONCE_AT)),
    sealed.subarray(NONCE_AT, CIPHERTEXT_AT),
    aadOf(storeId, field),
  )
  decipher.setAuthTag(sealed.subarray(tagAt))
  let plaintext: Buffer
  try {
    plaintext = Buffer.concat([decipher.update(sealed.subarray(CIPHERTEXT_AT, tagAt)), decipher.final()])
  } catch {
    throw new SealError('an entry does not authenticate')
  }
  try {
    return readRecord(plaintext)
  } catch (error) {
    throw new SealError((error as Error).message)
  }
}

/** The fields the key check covers, as the meta holds them. */
export interface CheckedFields {
  readonly storeId: Buffer
  readonly keyLength: number
  readonly kdf: Buffer | undefined
}

function checkedBytes(fields: CheckedFields): Buffer {
  return Buffer.concat([
    CHECK_LABEL,
    Buffer.of(LAYOUT_VERSION, fields.keyLength, fields.kdf === undefined ? 0 : 1),
    fields.storeId,
    fields.kdf ?? Buffer.alloc(0),
  ])
}

/**
 * The meta's key check, as a file header's: HMAC-SHA256 under K_check over the store id, the
 * key length and the KDF block, 16 bytes. Opening with another key fails on it before any entry
 * is read, and a meta with another store id or KDF block swapped in fails it too.
 */
export function keyCheck(keys: DerivedKeys, fields: CheckedFields): Buffer {
  return keyCheckValue(keys, checkedBytes(fields))
}

export function keyCheckEquals(keys: DerivedKeys, fields: CheckedFields, check: Buffer): boolean {
  return check.length === 16 && timingSafeEqual(keyCheck(keys, fields), check)
}
