import type { Entry } from '../format/payload.js'
import { Mutex } from '../store/mutex.js'
import type { StoreKey } from '../store/types.js'
import {
  type Backend,
  type BackendTransaction,
  type BackendWatcher,
  type Change,
  type ChangeResult,
  type CommitOutcome,
  type EntryChange,
  type KeyQuery,
  matches,
} from './backend.js'
import { dropExpiredSets, ExpiryQueue, expiriesIn } from './expiry.js'
import { ChangeFeed, changesOfCommit } from './change-feed.js'

/** What applyChanges() needs of a map: a `Map`, or the file backend's overlay. */
export interface MutableEntries {
  set(key: StoreKey, entry: Entry): unknown
  delete(key: StoreKey): boolean
  clear(): void
}

/** Applies `changes` to `map` in order, with a result per change: what a commit does. */
export function applyChanges(map: MutableEntries, changes: readonly Change[]): ChangeResult[] {
  return changes.map((change) => {
    switch (change.kind) {
      case 'set':
        map.set(change.key, change.entry)
        return undefined
      case 'delete':
        return map.delete(change.key)
      case 'clear':
        map.clear()
        return undefined
    }
  })
}

function* keysOf(map: Map<StoreKey, Entry>, query: KeyQuery | undefined): Generator<StoreKey> {
  for (const key of map.keys()) if (matches(key, query)) yield key
}

function* entriesOf(
  map: Map<StoreKey, Entry>,
  query: KeyQuery | undefined,
): Generator<[StoreKey, Entry]> {
  for (const entry of map) if (matches(entry[0], query)) yield entry
}

/**
 * A store that lives in this process only: a `Map`, with transactions run one at a time. What
 * `persist: false` opens, and what the store switches to on disablePersistence(). Pass an
 * instance as `backend` to share one in-memory store between several AnyStore instances.
 */
export class MemoryBackend implements Backend {
  readonly kind = 'memory'
  readonly location = 'the in-memory store'
  readonly concurrency = 'exclusive'
  readonly readOnly = false
  readonly #map: Map<StoreKey, Entry>
  readonly #mutex = new Mutex()
  /** The expiries in #map: every read first removes what expired, so the map only holds what counts. */
  readonly #expiries: ExpiryQueue
  /** Every watcher of this instance, so stores sharing it hear each other's commits. */
  readonly #feed = new ChangeFeed()

  constructor(entries: Iterable<[StoreKey, Entry]> = []) {
    this.#map = new Map(entries)
    this.#expiries = new ExpiryQueue(expiriesIn(this.#map))
  }

  /** The map without what expired by `now` (default: the clock, read only if something may have). */
  #live(now?: number): Map<StoreKey, Entry> {
    return this.#expiries.purge(this.#map, now)
  }

  /** Transactions on this store exclude each other, and only each other. */
  get exclusiveScope(): unknown {
    return this
  }

  get(key: StoreKey): Entry | undefined {
    return this.#live().get(key)
  }

  has(key: StoreKey): boolean {
    return this.#live().has(key)
  }

  size(): number {
    return this.#live().size
  }

  keys(query?: KeyQuery): Iterable<StoreKey> {
    return keysOf(this.#live(), query)
  }

  entries(query?: KeyQuery): Iterable<[StoreKey, Entry]> {
    return entriesOf(this.#live(), query)
  }

  transaction<T>(fn: (tx: BackendTransaction) => Promise<T>): Promise<T> {
    return this.#mutex.run(() => {
      const feed = this.#feed
      let committed = false
      const tx: BackendTransaction = {
        get: (key) => this.#live().get(key),
        has: (key) => this.#live().has(key),
        size: () => this.#live().size,
        keys: (query) => keysOf(this.#live(), query),
        entries: (query) => entriesOf(this.#live(), query),
        commit: (changes): CommitOutcome => {
          if (committed) throw new Error('commit() twice in one transaction')
          committed = true
          // One time for the whole commit: what expired is gone before the changes apply (a
          // set of an expired key is the set of an absent one), and stays gone after.
          const now = Date.now()
          const map = this.#live(now)
          const reported = feed.active ? changesOfCommit(map, changes) : undefined
          const results = applyChanges(map, changes)
          dropExpiredSets(map, changes, now)
          this.#expiries.trackChanges(changes)
          if (reported !== undefined) feed.emit(reported)
          return { committed: true, results }
        },
      }
      return fn(tx)
    })
  }

  /** The map as it is: expired entries still in it are dropped by whoever reads the snapshot. */
  snapshot(): Iterable<[StoreKey, Entry]> {
    return this.#map
  }

  /** Without the mutex: at exit, a transaction holding it will never run on. */
  commitSync(changes: readonly Change[]): ChangeResult[] {
    return applyChanges(this.#map, changes)
  }

  /** Every commit is made through this instance, so each is reported as it is applied. */
  watch(
    listener: (changes: readonly EntryChange[]) => void,
    onError?: (error: unknown) => void,
  ): BackendWatcher {
    return this.#feed.add(listener, onError)
  }

  /**
   * The map lives as long as someone holds this backend, and so do its watchers: a store
   * sharing it closes its own when it closes.
   */
  close(): void {}
}
