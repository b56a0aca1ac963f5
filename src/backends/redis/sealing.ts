import { createHmac, timingSafeEqual } from 'node:crypto'
import {
  backendSubkey,
  type DerivedKeys,
  fillRandom,
  keyCheckValue,
  NONCE_SIZE,
  newCipher,
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
const SALT_SIZE = 16
const SALT_AT = 1
const NONCE_AT = SALT_AT + SALT_SIZE
const CIPHERTEXT_AT = NONCE_AT + NONCE_SIZE
export const SEALING_OVERHEAD = CIPHERTEXT_AT + TAG_SIZE

const NAMES_INFO = 'anystore/redis/v1/key-names'
const ENTRIES_INFO = 'anystore/redis/v1/entries'
const ENTRY_KEY_INFO = Buffer.from('anystore/redis/v1/entry-key', 'ascii')
const AAD_LABEL = Buffer.from('anystore/redis/v1/entry\0', 'ascii')
const CHECK_LABEL = Buffer.from('anystore/redis/v1/key-check\0', 'ascii')

/** The keys of a Redis store: derived once per store and secret. */
export interface RedisKeys {
  readonly derived: DerivedKeys
  /** HMAC key of the fields. */
  readonly names: Buffer
  /** The key each entry's own key is derived from, with the entry's salt. */
  readonly entries: Buffer
  /** Entry keys derived lately, by salt (see entryKey). */
  readonly entryKeys: Map<string, Buffer>
}

/**
 * How many derived entry keys are kept. An entry's key depends only on its salt, which stays
 * while the entry does: reading the same entries again (the usual pattern) then skips an HMAC
 * per read. Each key is 16–32 bytes; the oldest goes first.
 */
const ENTRY_KEYS_KEPT = 4096

const cache = new WeakMap<DerivedKeys, RedisKeys>()

export function redisKeys(derived: DerivedKeys): RedisKeys {
  let keys = cache.get(derived)
  if (keys === undefined) {
    keys = {
      derived,
      names: backendSubkey(derived, NAMES_INFO),
      entries: backendSubkey(derived, ENTRIES_INFO),
      entryKeys: new Map(),
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

/**
 * An entry's own AES key: HKDF-Expand (RFC 5869) of the entries key with a fixed info and the
 * entry's random salt, one HMAC block. No two writes share a key (barring a 128-bit salt
 * collision), so the nonce budget of one AES-GCM key never comes near.
 */
function entryKey(keys: RedisKeys, salt: Buffer): Buffer {
  // The same derivation every time for a salt: a kept key is the key it would derive again.
  const id = salt.toString('latin1')
  let key = keys.entryKeys.get(id)
  if (key === undefined) {
    key = createHmac('sha256', keys.entries)
      .update(ENTRY_KEY_INFO)
      .update(salt)
      .update(Buffer.of(1))
      .digest()
      .subarray(0, keys.derived.keyLength)
    if (keys.entryKeys.size >= ENTRY_KEYS_KEPT) keys.entryKeys.delete(keys.entryKeys.keys().next().value!)
    keys.entryKeys.set(id, key)
  }
  return key
}

/** What the tag binds besides the plaintext: the sealing version, the store and the field. */
function aadOf(storeId: Buffer, field: Buffer): Buffer {
  return Buffer.concat([AAD_LABEL, Buffer.of(SEALING_VERSION), storeId, field])
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
  fillRandom(out, SALT_AT, SALT_SIZE + NONCE_SIZE)
  const cipher = newCipher(
    entryKey(keys, out.subarray(SALT_AT, NONCE_AT)),
    out.subarray(NONCE_AT, CIPHERTEXT_AT),
    aadOf(storeId, field),
  )
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
