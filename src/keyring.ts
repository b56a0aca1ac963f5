import { type DerivedKeys, deriveKeys, type FileHeader, type KeySource, keyCheckMatches } from './crypto.js'
import { WrongKeyError } from './errors.js'

/** The keys a commit is sealed with. */
export interface SealingKeys {
  keys: DerivedKeys
}

/**
 * The keys a store is opened with: the current key, which seals every new commit, and the keys
 * also accepted for reading (a key being rotated in or out, docs/DESIGN.md "Key rotation").
 * A file is opened by the first key whose key check matches its header: one HMAC per key
 * tried, the current key first, so a store in steady state pays for one. Each key is derived
 * once, when the ring is built.
 */
export class KeyRing implements KeySource {
  /** The current key as given: for the warning about the public default key. */
  readonly current: Uint8Array
  readonly #sealing: DerivedKeys
  /** The current key's keys first, then the accepted keys', without duplicates. */
  readonly #reading: readonly DerivedKeys[]

  constructor(current: Uint8Array, accepted: readonly Uint8Array[] = []) {
    this.current = current
    this.#sealing = deriveKeys(current)
    const reading = [this.#sealing]
    const seen = [Buffer.from(current)]
    for (const key of accepted) {
      const bytes = Buffer.from(key)
      if (seen.some((other) => other.equals(bytes))) continue
      seen.push(bytes)
      reading.push(deriveKeys(key))
    }
    this.#reading = reading
  }

  /** The keys of the first key of the ring that wrote this header; WrongKeyError if none did. */
  keysFor(file: string, headerBytes: Buffer, header: FileHeader): DerivedKeys {
    for (const keys of this.#reading) {
      if (keyCheckMatches(keys, headerBytes, header)) return keys
    }
    throw new WrongKeyError(file, { keysTried: this.#reading.length })
  }

  /** The keys new commits are sealed with: always the current key's. */
  sealing(): SealingKeys {
    return { keys: this.#sealing }
  }
}
