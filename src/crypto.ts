import * as nodeCrypto from 'node:crypto'
import {
  type CipherGCM,
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
import { InvalidKeyError } from './store/errors.js'

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
/** The key lengths of AES-128, -192 and -256. */
export const KEY_LENGTHS: ReadonlySet<number> = new Set([16, 24, 32])

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

/**
 * A 32-byte key for one purpose of a backend that keeps entries apart instead of in one file
 * (Redis: the key-name hashes, each entry's key): HKDF of K_commit with `info`, which names the
 * purpose. Derived from the derived keys, not the user's key, so that a passphrase's key is
 * never needed again; the info strings keep each purpose's key independent of the others and
 * of the file format's keys.
 */
export function backendSubkey(keys: DerivedKeys, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', keys.commitKeys, new Uint8Array(0), info, 32))
}

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

/** The scrypt salt of a passphrase store (docs/FORMAT.md, "Passphrases"). */
export const SCRYPT_SALT_SIZE = 16

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
export function scryptOutOfBounds(log2N: number, r: number, p: number): string | undefined {
  const b = SCRYPT_BOUNDS
  if (log2N < b.minLog2N || log2N > b.maxLog2N) return `N = 2^${log2N}`
  if (r < 1 || r > b.maxR) return `r = ${r}`
  if (p < 1 || p > b.maxP) return `p = ${p}`
  const N = 2 ** log2N
  if (128 * N * r > b.maxMemory) return `N = 2^${log2N} and r = ${r} (${(128 * N * r) / 2 ** 20} MiB)`
  if (N * r * p > b.maxWork) return `N = 2^${log2N}, r = ${r} and p = ${p} (work ${N * r * p})`
  return undefined
}

/** The parameters of a new passphrase: the default costs and a fresh random salt. */
export function newKdfParams(): KdfParams {
  const salt = Buffer.alloc(SCRYPT_SALT_SIZE)
  randomFillSync(salt)
  return { algorithm: 'scrypt', ...SCRYPT_DEFAULTS, salt }
}

/**
 * The key a passphrase yields under parameters that parseHeader accepted (or newKdfParams
 * made): scrypt, `keyLength` bytes. Synchronous, as every load is: it runs once per open (and
 * again only when a loaded version carries another block), never per read or commit.
 */
export function passphraseKey(
  passphrase: Uint8Array,
  params: KdfParams,
  keyLength: number,
): Uint8Array {
  const N = 2 ** params.log2N
  const { r, p, salt } = params
  // Node refuses scrypt above 32 MiB unless maxmem allows it: what OpenSSL allocates, 128·r·(N + p + 2) bytes, and some room.
  const maxmem = 128 * r * (N + p + 2) + 1024 * 1024
  return new Uint8Array(scryptSync(passphrase, salt, keyLength, { N, r, p, maxmem }))
}

type OneShotHash = (algorithm: string, data: Uint8Array, encoding: 'buffer') => Buffer
/** `crypto.hash` (Node 20.12+) builds no Hash object: a commit seals right after an fsync, when every object costs. */
const oneShot = (nodeCrypto as { hash?: OneShotHash }).hash

export function sha256(data: Uint8Array): Buffer {
  return oneShot ? oneShot('sha256', data, 'buffer') : createHash('sha256').update(data).digest()
}

const SHA256_BLOCK = 64
/**
 * The longest message an HMAC below covers: the version 3 header up to the key check
 * (docs/FORMAT.md), the longest a key check signs.
 */
const MAX_HMAC_MESSAGE = 140

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
  // A longer message would be cut at the end of the buffer: an HMAC of the wrong bytes.
  if (message.length > MAX_HMAC_MESSAGE) throw new RangeError('HMAC message longer than a header')
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

/** The key check of a header: HMAC-SHA256 under K_check of `signed` (the header's bytes before the key check field), 16 bytes. */
export function keyCheckValue(keys: DerivedKeys, signed: Buffer): Buffer {
  return hmac(padsOf(keys).keyCheck, signed).subarray(0, 16)
}

/** Whether `check` is the key check of `signed` under `keys`, compared in constant time. */
export function keyCheckEquals(keys: DerivedKeys, signed: Buffer, check: Buffer): boolean {
  return timingSafeEqual(keyCheckValue(keys, signed), check)
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

/** The AES-GCM tag: full length. */
export const TAG_SIZE = 16
/** The AES-GCM nonce. */
export const NONCE_SIZE = 12

function cipherName(keyLength: number): 'aes-128-gcm' | 'aes-192-gcm' | 'aes-256-gcm' {
  return keyLength === 16 ? 'aes-128-gcm' : keyLength === 24 ? 'aes-192-gcm' : 'aes-256-gcm'
}

/** AES-GCM encryption under `key` (its length picks AES-128, -192 or -256), authenticating `aad`. */
export function newCipher(key: Buffer, nonce: Buffer, aad: Buffer): CipherGCM {
  const cipher = newCipherWithoutAad(key, nonce)
  cipher.setAAD(aad)
  return cipher
}

/** As newCipher, for a caller that sets the AAD itself before the data. */
export function newCipherWithoutAad(key: Buffer, nonce: Buffer): CipherGCM {
  return createCipheriv(cipherName(key.length), key, nonce)
}

/** AES-GCM decryption under `key`, authenticating `aad`; the tag is set by the caller. */
export function newDecipher(key: Buffer, nonce: Buffer, aad: Buffer): DecipherGCM {
  const decipher = createDecipheriv(cipherName(key.length), key, nonce)
  decipher.setAAD(aad)
  return decipher
}
