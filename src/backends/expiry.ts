import type { Entry } from '../format/payload.js'
import type { StoreKey } from '../store/types.js'
import { type Change, isExpired } from './backend.js'

/** What purging needs of a map of entries: a `Map`, a PayloadMap, an Overlay. */
export interface PurgeableEntries {
  get(key: StoreKey): Entry | undefined
  delete(key: StoreKey): boolean
}

/**
 * After a commit's changes were applied to `map`: removes the keys whose final entry is already
 * expired (a set with an expiry in the past, or one that passed while the commit was under way),
 * so that the commit never stores what no read would return.
 */
export function dropExpiredSets(map: PurgeableEntries, changes: readonly Change[], now: number): void {
  for (const change of changes) {
    if (change.kind !== 'set' || change.entry.expiresAt === undefined) continue
    const entry = map.get(change.key)
    if (entry !== undefined && isExpired(entry, now)) map.delete(change.key)
  }
}

/** The keys of `entries` that carry an expiry, with it. */
export function* expiriesIn(entries: Iterable<[StoreKey, Entry]>): Generator<[StoreKey, number]> {
  for (const [key, entry] of entries) {
    if (entry.expiresAt !== undefined) yield [key, entry.expiresAt]
  }
}

/** Below this many stale times in the heap, rebuilding it would cost more than it saves. */
const SLACK = 64

/**
 * The expiry times of the entries of one map, earliest first (a binary min-heap), so that a read
 * learns from one comparison that nothing has expired since the last purge, and a purge visits
 * only what expired instead of every entry. A store without expiries keeps it empty, and its
 * reads never even look at the clock.
 *
 * The heap is not searched when a key is overwritten or deleted: `#current` holds each key's
 * current time, and a time that comes up which is no longer its key's is dropped then. When
 * stale times outnumber current ones (a key re-set with a new expiry again and again), the heap
 * is rebuilt from `#current`, so it stays within twice the number of expiring entries.
 */
export class ExpiryQueue {
  #times: number[] = []
  #keys: StoreKey[] = []
  readonly #current = new Map<StoreKey, number>()

  constructor(expiries: Iterable<[StoreKey, number]> = []) {
    for (const [key, at] of expiries) this.#current.set(key, at)
    this.#rebuild()
  }

  /** The earliest time in the heap (maybe stale, never later than the earliest current one). */
  get next(): number {
    return this.#times.length === 0 ? Number.POSITIVE_INFINITY : (this.#times[0] as number)
  }

  /** Records the expiry of `key` as its entry now has it (undefined: none). */
  track(key: StoreKey, at: number | undefined): void {
    if (at === undefined) {
      this.#current.delete(key)
      return
    }
    if (this.#current.get(key) === at) return
    this.#current.set(key, at)
    this.#push(at, key)
    if (this.#times.length > 2 * this.#current.size + SLACK) this.#rebuild()
  }

  /** Follows a commit's changes, applied in order, as `track` would one by one. */
  trackChanges(changes: readonly Change[]): void {
    for (const change of changes) {
      if (change.kind === 'set') this.track(change.key, change.entry.expiresAt)
      else if (change.kind === 'delete') this.#current.delete(change.key)
      else this.clear()
    }
  }

  clear(): void {
    this.#current.clear()
    this.#times = []
    this.#keys = []
  }

  /**
   * Deletes from `map` the entries that expired by `now` (by default the clock, read only when
   * the earliest time in the heap may have passed). Returns `map`.
   */
  purge<M extends PurgeableEntries>(map: M, now?: number): M {
    if (this.#times.length === 0) return map
    const time = now ?? Date.now()
    while (this.#times.length > 0 && (this.#times[0] as number) <= time) {
      const at = this.#times[0] as number
      const key = this.#keys[0] as StoreKey
      this.#pop()
      if (this.#current.get(key) !== at) continue
      this.#current.delete(key)
      const entry = map.get(key)
      if (entry !== undefined && isExpired(entry, time)) map.delete(key)
    }
    return map
  }

  #rebuild(): void {
    this.#times = []
    this.#keys = []
    for (const [key, at] of this.#current) {
      this.#times.push(at)
      this.#keys.push(key)
    }
    for (let i = (this.#times.length >> 1) - 1; i >= 0; i--) this.#siftDown(i)
  }

  #push(at: number, key: StoreKey): void {
    const times = this.#times
    const keys = this.#keys
    let i = times.length
    times.push(at)
    keys.push(key)
    while (i > 0) {
      const parent = (i - 1) >> 1
      if ((times[parent] as number) <= at) break
      times[i] = times[parent] as number
      keys[i] = keys[parent] as StoreKey
      i = parent
    }
    times[i] = at
    keys[i] = key
  }

  #pop(): void {
    const lastTime = this.#times.pop() as number
    const lastKey = this.#keys.pop() as StoreKey
    if (this.#times.length === 0) return
    this.#times[0] = lastTime
    this.#keys[0] = lastKey
    this.#siftDown(0)
  }

  #siftDown(start: number): void {
    const times = this.#times
    const keys = this.#keys
    const n = times.length
    const at = times[start] as number
    const key = keys[start] as StoreKey
    let i = start
    for (;;) {
      let child = 2 * i + 1
      if (child >= n) break
      if (child + 1 < n && (times[child + 1] as number) < (times[child] as number)) child++
      if ((times[child] as number) >= at) break
      times[i] = times[child] as number
      keys[i] = keys[child] as StoreKey
      i = child
    }
    times[i] = at
    keys[i] = key
  }
}
