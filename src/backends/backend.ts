import type { Entry } from '../format/payload.js'
import type { KeyQuery, StoreKey } from '../store/types.js'

export type { KeyQuery }

/**
 * The seam between the store and the place its entries live (docs/DESIGN.md, "The backend
 * seam"). The store (src/anystore.ts) deals in encoded entries and knows nothing else of a
 * backend; a backend knows nothing of the API, group commit or transactions' buffering.
 *
 * Reads may answer synchronously: the file backend checks freshness with one pread and answers
 * from its decrypted cache, and a promise there would cost every read a turn of the event loop.
 * A network backend returns promises. Callers must accept both.
 */
export type MaybePromise<T> = T | Promise<T>

/** One change of a commit, applied in order: the result of a list is what `Map` would give. */
export type Change =
  | { readonly kind: 'set'; readonly key: StoreKey; readonly entry: Entry }
  | { readonly kind: 'delete'; readonly key: StoreKey }
  | { readonly kind: 'clear' }

/** Per change: for a delete, whether the key existed just before it; undefined for the others. */
export type ChangeResult = boolean | undefined

/** What a commit did: applied with a result per change, or refused because of a conflict. */
export type CommitOutcome =
  | { readonly committed: true; readonly results: readonly ChangeResult[] }
  | { readonly committed: false; readonly conflict: string }

/**
 * What a commit did to one key, for change events: `before` is the entry the key held just
 * before the commit (absent: the key did not exist), `after` the entry it holds after it
 * (absent: deleted). A key whose entry keeps the same bytes (value and expiry time) is not
 * listed: setting a key to an identical value is no change. A list names each key once, in
 * no particular order.
 *
 * Reserved for the expiry work: a key removed because its entry expired is not reported as a
 * change by any backend now; if that is ever reported, it is marked `expired: true`.
 */
export interface EntryChange {
  readonly key: StoreKey
  readonly before?: Entry | undefined
  readonly after?: Entry | undefined
}

/** A subscription to a backend's change events; close() ends it and what it holds open. */
export interface BackendWatcher {
  close(): void
}

/** Reads of one store, all in insertion order, none of them showing an expired entry (see Backend). */
export interface EntryReader {
  get(key: StoreKey): MaybePromise<Entry | undefined>
  has(key: StoreKey): MaybePromise<boolean>
  size(): MaybePromise<number>
  keys(query?: KeyQuery): Iterable<StoreKey> | AsyncIterable<StoreKey>
  entries(query?: KeyQuery): Iterable<[StoreKey, Entry]> | AsyncIterable<[StoreKey, Entry]>
}

/**
 * A transaction's view of the store. Exclusive backends answer from the state they hold locked;
 * optimistic ones record what was read, so that `commit` can refuse when any of it changed.
 */
export interface BackendTransaction extends EntryReader {
  /**
   * Applies `changes` atomically, in order, if nothing this transaction read has changed since
   * it was read; at most once per transaction. An exclusive backend never reports a conflict.
   * An optimistic backend gets `commit([])` from a transaction that only read: it must accept
   * it (even when read-only) and answer whether the reads still hold.
   */
  commit(changes: readonly Change[]): MaybePromise<CommitOutcome>
}

/**
 * A place to keep a store: a file, memory, a server. Reads outside a transaction see every
 * commit acknowledged before they began (by any instance or process sharing the store).
 *
 * Expiry. An entry may carry `expiresAt`, a time in milliseconds since the epoch, stored with
 * it (never a duration: every process reading the store must reach the same verdict from the
 * same bytes). Measured by the wall clock (`Date.now()`) at the moment of each read, an entry
 * whose `expiresAt <= now` is absent, everywhere, in and out of transactions:
 * - `get` never returns it and `has` answers false;
 * - `size` does not count it, and `keys` and `entries` do not list it;
 * - `commit` takes one time for the whole list of changes and drops every entry expired by then
 *   from storage before applying them, so a `delete` of an expired key reports false and a
 *   `set` of one is the set of an absent key (it goes to the end of the order); an entry the
 *   list itself sets that is expired by then is not stored either. A commit that writes
 *   nothing is not required to write just to drop expired entries.
 * Nothing is required to remove an expired entry before the next commit, only to hide it. A
 * transaction's reads judge expiry as they happen, like any read; an optimistic backend may
 * count an entry that it returned and that expired before the commit as a change (the commit
 * then reports a conflict), an exclusive one cannot.
 */
export interface Backend extends EntryReader {
  /** `'file'`, `'memory'`, ...: for messages and `AnyStore.backend`. */
  readonly kind: string
  /** Names the store in messages: a path, a URL and name. */
  readonly location: string
  /**
   * `'exclusive'`: a transaction holds the store (a lock) from its first read to its commit, so a
   * commit always applies. `'optimistic'`: transactions run side by side and a commit applies
   * only if what it read is unchanged; the store retries the transaction otherwise.
   */
  readonly concurrency: 'exclusive' | 'optimistic'
  /**
   * For an exclusive backend: what a transaction holds, shared by every instance on the same
   * store in this process (a resolved path). A store call made inside a transaction on the same
   * scope would wait for itself: the store refuses it with ReentrantCallError.
   */
  readonly exclusiveScope: unknown
  /** Whether writes are refused (ReadOnlyError): nothing is created or changed. */
  readonly readOnly: boolean
  /**
   * False for a backend that cannot keep expiries yet: the store then refuses `ttlMs`,
   * `expiresAt` and `expire()` with InvalidOptionError instead of storing entries that would
   * never expire. Undefined means true.
   */
  readonly supportsExpiry?: boolean | undefined
  /** The file of a file backend: `AnyStore.file`. */
  readonly file?: string | undefined
  /** The cross-process lock of a file backend: `AnyStore.lockMode`. */
  readonly lockMode?: 'flock' | 'proper-lockfile' | undefined
  /**
   * Runs `fn` with a transaction. The transaction is valid only until `fn` settles; an exclusive
   * backend holds its lock until then.
   */
  transaction<T>(fn: (tx: BackendTransaction) => Promise<T>): Promise<T>
  /**
   * Commits `changes`, which depend on no read, as a transaction that reads nothing would, in
   * fewer steps: for a backend whose commits are checked where the data lives, a group commit
   * of plain writes has nothing to check and nothing to retry. Optional: without it, the store
   * runs such writes through transaction().
   */
  commitWrites?(changes: readonly Change[]): Promise<readonly ChangeResult[]>
  /**
   * The last state this instance loaded or committed, without I/O: what the store keeps when
   * persistence is switched off. Undefined where the backend keeps no local copy.
   */
  snapshot?(): Iterable<[StoreKey, Entry]> | undefined
  /**
   * Applies `changes` as one commit before returning, without giving up the thread (a lock is
   * waited for with a bounded synchronous wait). Only for where no promise or timer will run
   * again: the flush of write-behind changes when the process exits (`sync: { everyMs }`).
   * A backend that cannot (one behind a network) leaves it out; its users must call flush()
   * or close() before the process exits.
   */
  commitSync?(changes: readonly Change[]): readonly ChangeResult[]
  /**
   * Optional: reports every commit to this store that changed something, made through this
   * instance or any other (another instance, process or machine), as the list of keys it
   * changed (docs/DESIGN.md, "Change events"). One call per commit, in commit order; commits
   * by others that land between two of this backend's checks may arrive as one call. No call
   * for a commit that changed nothing. `listener` may be called synchronously from inside a
   * read or a commit of this backend: it must return quickly and must not call the backend.
   * `onError` hears of what keeps changes from being read (a file that no longer opens, a
   * lost connection); watching goes on. Costs nothing while no watcher is open; close() of
   * the last one releases what watching holds (a directory watch, a timer, a subscription).
   */
  watch?(
    listener: (changes: readonly EntryChange[]) => void,
    onError?: (error: unknown) => void,
  ): BackendWatcher
  /** Releases what the backend opened. Never deletes the store. */
  close(): MaybePromise<void>
}

/** Whether `entry` no longer counts at `now` (see Backend, "Expiry"). */
export function isExpired(entry: Entry, now: number): boolean {
  const at = entry.expiresAt
  return at !== undefined && at <= now
}

/** `entry` if it still counts now, else undefined; reads the clock only for an entry with an expiry. */
export function unlessExpired(entry: Entry | undefined): Entry | undefined {
  const at = entry?.expiresAt
  return at === undefined || at > Date.now() ? entry : undefined
}

export function isPromise<T>(value: MaybePromise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}

/** Whether `key` falls under `query`. */
export function matches(key: StoreKey, query: KeyQuery | undefined): boolean {
  const prefix = query?.prefix
  return prefix === undefined || (typeof key === 'string' && key.startsWith(prefix))
}
