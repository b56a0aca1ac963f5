import type { Entry, EntryMap } from '../format/payload.js'
import type { StoreKey } from './types.js'

const DELETED = Symbol('deleted')

/**
 * Pending changes on top of a base map, read through as if applied, with the base left alone
 * until `applyTo` is called after a successful commit. A failed commit simply drops the overlay.
 * Iteration follows `Map` order exactly: an overwritten key keeps its place; a key deleted and
 * set again moves to the end.
 */
export class Overlay {
  readonly base: EntryMap
  #cleared = false
  readonly #changes = new Map<StoreKey, Entry | typeof DELETED>()
  /** Base keys that were deleted (and maybe set again): they lost their place in the base order. */
  readonly #moved = new Set<StoreKey>()

  constructor(base: EntryMap) {
    this.base = base
  }

  /** Whether clear() was called: nothing of the base is kept. */
  get cleared(): boolean {
    return this.#cleared
  }

  get hasChanges(): boolean {
    return this.#cleared || this.#changes.size > 0
  }

  get(key: StoreKey): Entry | undefined {
    const change = this.#changes.get(key)
    if (change === DELETED) return undefined
    if (change !== undefined) return change
    return this.#cleared ? undefined : this.base.get(key)
  }

  has(key: StoreKey): boolean {
    return this.get(key) !== undefined
  }

  set(key: StoreKey, entry: Entry): void {
    if (!this.has(key)) this.#changes.delete(key)
    this.#changes.set(key, entry)
  }

  delete(key: StoreKey): boolean {
    if (!this.has(key)) return false
    if (!this.#cleared && this.base.has(key)) this.#moved.add(key)
    this.#changes.delete(key)
    this.#changes.set(key, DELETED)
    return true
  }

  clear(): void {
    this.#cleared = true
    this.#changes.clear()
    this.#moved.clear()
  }

  get size(): number {
    let size = this.#cleared ? 0 : this.base.size
    for (const [key, change] of this.#changes) {
      const inBase = !this.#cleared && this.base.has(key)
      if (change === DELETED) {
        if (inBase) size--
      } else if (!inBase) {
        size++
      }
    }
    return size
  }

  *entries(): IterableIterator<[StoreKey, Entry]> {
    if (!this.#cleared) {
      for (const [key, entry] of this.base) {
        if (this.#moved.has(key)) continue
        // Base keys that were deleted are in #moved, so a change here is always an entry.
        const change = this.#changes.get(key) as Entry | undefined
        yield [key, change ?? entry]
      }
    }
    for (const [key, change] of this.#changes) {
      if (change === DELETED) continue
      if (this.#cleared || !this.base.has(key) || this.#moved.has(key)) yield [key, change]
    }
  }

  /** The overlay iterates as its entries, so it can be handed to a commit as it is. */
  [Symbol.iterator](): IterableIterator<[StoreKey, Entry]> {
    return this.entries()
  }

  /**
   * The changes in the order `applyTo` applies them (undefined: deleted), and the base keys
   * that lose their place: what `encodeOverImage` needs to lay out a commit without visiting
   * every entry.
   */
  pendingChanges(): {
    cleared: boolean
    moved: ReadonlySet<StoreKey>
    changes: Iterable<[StoreKey, Entry | undefined]>
  } {
    const changes = Array.from(this.#changes, ([key, change]): [StoreKey, Entry | undefined] => [
      key,
      change === DELETED ? undefined : change,
    ])
    return { cleared: this.#cleared, moved: this.#moved, changes }
  }

  /** Makes `map` (normally the base) equal to what `entries()` yields, in the same order. */
  applyTo(map: EntryMap): void {
    if (this.#cleared) map.clear()
    for (const [key, change] of this.#changes) {
      if (change === DELETED) {
        map.delete(key)
      } else {
        if (this.#moved.has(key)) map.delete(key)
        map.set(key, change)
      }
    }
  }
}
