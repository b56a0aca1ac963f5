import { type DerivedKeys, deriveKeys, passphraseKey } from '../crypto.js'
import {
  type FileHeader,
  kdfBlockOf,
  kdfParamsOf,
  keyCheckMatches,
  newKdfBlock,
} from '../format/header.js'
import type { KeySource } from '../format/store-file.js'
import { WrongKeyError } from './errors.js'

/** The keys a commit is sealed with, and for a passphrase store the KDF block to write. */
export interface SealingKeys {
  keys: DerivedKeys
  kdf?: Buffer
}

/** The key length of passphrase stores: AES-256-GCM. */
const PASSPHRASE_KEY_LENGTH = 32

/** A raw key: derived (HKDF) once, when the ring is built. */
class RawKey {
  readonly kind = 'key'
  readonly bytes: Uint8Array
  readonly keys: DerivedKeys

  constructor(bytes: Uint8Array) {
    this.bytes = bytes
    this.keys = deriveKeys(bytes)
  }
}

/**
 * A passphrase: its key depends on the KDF block of the file (salt and costs), so it is
 * derived when a file is loaded, and kept with the block it was derived for. A store keeps its
 * block for life (commits copy it), so one derivation serves every later load and commit; a
 * version with another block (after a rekey) derives again.
 */
class Passphrase {
  readonly kind = 'passphrase'
  readonly #passphrase: Uint8Array
  #derived: { block: Buffer; keys: DerivedKeys } | undefined

  constructor(passphrase: Uint8Array) {
    this.#passphrase = passphrase
  }

  keysFor(block: Buffer, keyLength: number): DerivedKeys {
    const known = this.#derived
    if (known !== undefined && known.block.equals(block) && known.keys.keyLength === keyLength) {
      return known.keys
    }
    const keys = deriveKeys(passphraseKey(this.#passphrase, kdfParamsOf(block), keyLength))
    this.#derived = { block: Buffer.from(block), keys }
    return keys
  }

  /** The block and keys of the last file loaded or sealed, or a new block (new salt) for a first commit. */
  sealing(): SealingKeys {
    const known = this.#derived
    if (known !== undefined) return { keys: known.keys, kdf: known.block }
    const block = newKdfBlock()
    return { keys: this.keysFor(block, PASSPHRASE_KEY_LENGTH), kdf: block }
  }
}

type Secret = RawKey | Passphrase

/**
 * The secrets a store is opened with: the current one (a key or a passphrase), which seals
 * every new commit, and keys also accepted for reading (a key being rotated in or out, README
 * "Rotating the key"). A file is opened by the first secret that wrote it, found by the key
 * check of its header: one HMAC per key tried, the current secret first, so a store in steady
 * state pays for one. A file written with a passphrase is tried only with passphrases, a file
 * written with a key only with keys.
 */
export class KeyRing implements KeySource {
  /** The current key as given (undefined for a passphrase): for the default-key warning. */
  readonly current: Uint8Array | undefined
  readonly #sealing: Secret
  /** The current secret first, then the accepted ones, without duplicate keys. */
  readonly #secrets: readonly Secret[]

  private constructor(current: Secret, accepted: readonly Secret[]) {
    this.current = current instanceof RawKey ? current.bytes : undefined
    this.#sealing = current
    const secrets: Secret[] = [current]
    for (const secret of accepted) {
      const duplicate =
        secret instanceof RawKey &&
        secrets.some((s) => s instanceof RawKey && Buffer.from(s.bytes).equals(secret.bytes))
      if (!duplicate) secrets.push(secret)
    }
    this.#secrets = secrets
  }

  static ofKey(key: Uint8Array, accepted: readonly Uint8Array[] = []): KeyRing {
    return new KeyRing(new RawKey(key), accepted.map((k) => new RawKey(k)))
  }

  static ofPassphrase(passphrase: Uint8Array, accepted: readonly Uint8Array[] = []): KeyRing {
    return new KeyRing(new Passphrase(passphrase), accepted.map((k) => new RawKey(k)))
  }

  /**
   * A ring that reads with this one's secrets and then `other`'s current secret (rekey: the
   * file may already be under the new one), and seals like this one.
   */
  alsoReading(other: KeyRing): KeyRing {
    return new KeyRing(this.#sealing, [...this.#secrets.slice(1), other.#sealing])
  }

  /** The keys of the first secret of the ring that wrote this header; WrongKeyError if none did. */
  keysFor(file: string, headerBytes: Buffer, header: FileHeader): DerivedKeys {
    return this.keysMatching(file, kdfBlockOf(headerBytes, header), header.keyLength, (keys) =>
      keyCheckMatches(keys, headerBytes, header),
    )
  }

  /**
   * The keys of the first secret whose keys pass `check`, trying passphrases (with `kdf`, the
   * block the store was written with) or keys, as the store was written; WrongKeyError naming
   * `location` if none does. The file header is one such check, a Redis store's meta another
   * (`kind` 'store': the error then speaks of a store, not a file).
   */
  keysMatching(
    location: string,
    kdf: Buffer | undefined,
    keyLength: number,
    check: (keys: DerivedKeys) => boolean,
    kind: 'file' | 'store' = 'file',
  ): DerivedKeys {
    const needs = kdf === undefined ? 'key' : 'passphrase'
    let tried = 0
    for (const secret of this.#secrets) {
      if (secret.kind !== needs) continue
      tried++
      const keys = secret instanceof Passphrase ? secret.keysFor(kdf!, keyLength) : secret.keys
      if (check(keys)) return keys
    }
    if (tried === 0) throw new WrongKeyError(location, { keysTried: 0, needs, kind })
    throw new WrongKeyError(location, { keysTried: tried, passphrase: needs === 'passphrase', kind })
  }

  /** The keys new commits are sealed with: always the current secret's. */
  sealing(): SealingKeys {
    return this.#sealing instanceof RawKey
      ? { keys: this.#sealing.keys }
      : this.#sealing.sealing()
  }
}
