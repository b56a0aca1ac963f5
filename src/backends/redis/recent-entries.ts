import type { Entry } from '../../format/payload.js'
import type { StoreKey } from '../../store/types.js'

/** How many entries a store instance keeps opened (see RecentEntries). */
export const RECENT_ENTRIES = 1024
/** The largest sealed entry kept: past it, opening costs mostly the bytes, and memory matters more. */
export const RECENT_ENTRY_BYTES = 1024

interface Recent {
  readonly sealed: Buffer
  readonly item: [StoreKey, Entry]
}

/**
 * The entries an instance opened or sealed lately, with their sealed bytes, by field. A read
 * that gets exactly the same bytes from the server again takes the entry from here instead of
 * deriving a key and decrypting: AES-GCM opens the same bytes, under the same store id and
 * field, to the same entry, so nothing is trusted that opening would not have given. The whole
 * sealed entry is compared, not its mark: bytes changed on the server behind an unchanged mark
 * miss here and fail to open as before. The read itself still goes to the server every time.
 * The least recently used goes first; at most RECENT_ENTRIES of at most RECENT_ENTRY_BYTES each.
 */
export class RecentEntries {
  readonly #recent = new Map<string, Recent>()

  /** The entry sealed in `sealed` under `field`, if it is one kept. */
  get(field: Buffer, sealed: Buffer): [StoreKey, Entry] | undefined {
    const at = field.toString('latin1')
    const recent = this.#recent.get(at)
    if (recent === undefined || !recent.sealed.equals(sealed)) return undefined
    this.#recent.delete(at)
    this.#recent.set(at, recent)
    return recent.item
  }

  /** Keeps what `sealed` holds under `field`, opened or just sealed. */
  remember(field: Buffer, sealed: Buffer, item: [StoreKey, Entry]): void {
    const at = field.toString('latin1')
    this.#recent.delete(at)
    if (sealed.length > RECENT_ENTRY_BYTES) return
    // Copies of their own, sealed bytes and value: what is given may be a slice of a larger
    // buffer (a reply, Node's pool, a whole decrypted file), which would stay alive with it.
    const own = Buffer.allocUnsafeSlow(sealed.length)
    sealed.copy(own)
    const [key, entry] = item
    const value = Buffer.allocUnsafeSlow(entry.value.length)
    value.set(entry.value)
    const kept: Entry = entry.expiresAt === undefined ? { value } : { value, expiresAt: entry.expiresAt }
    this.#recent.set(at, { sealed: own, item: [key, kept] })
    if (this.#recent.size > RECENT_ENTRIES) this.#recent.delete(this.#recent.keys().next().value!)
  }

  get size(): number {
    return this.#recent.size
  }
}
