import {
  type Backend,
  type BackendTransaction,
  type BackendWatcher,
  type Change,
  type ChangeResult,
  type CommitOutcome,
  isExpired,
  type EntryChange,
  type KeyQuery,
  matches,
} from '../../src/backends/backend.js'
import { ChangeFeed, changesOfCommit } from '../../src/backends/change-feed.js'
import type { Entry } from '../../src/format/payload.js'
import type { StoreKey } from '../../src/store/types.js'
import { prng } from '../../fuzz/prng.js'

/**
 * A test-only backend with optimistic concurrency, standing in for a network store: one
 * `OptimisticServer` holds the entries, and every `OptimisticBackend` on it is a client of its
 * own. Nothing here is fast or durable; what it is for is making the store meet every behaviour
 * of the conformance suite without a lock: asynchronous reads, commits that can be refused, and
 * retries.
 */

/** Any misuse of the backend contract by the store, so that it fails a test loudly. */
export class BackendContractError extends Error {}

/** Entries cross the "network" as copies, so the store can rely on no shared object. */
function copy(entry: Entry): Entry {
  return entry.expiresAt === undefined
    ? { value: Uint8Array.from(entry.value) }
    : { value: Uint8Array.from(entry.value), expiresAt: entry.expiresAt }
}

export interface OptimisticServerOptions {
  /** Names the store in `location`. */
  name?: string
  /** Seeds the choice of delays; the same seed gives the same interleavings. */
  seed?: number
}

/**
 * What a transaction read: each key with the version it had, the store-wide version of a
 * listing, and the earliest expiry of an entry it was shown: past that, what it read no longer
 * holds, though no commit changed it.
 */
export interface ReadSet {
  readonly keys: Map<StoreKey, number>
  listedAt: number | undefined
  validUntil: number
}

/** The shared store: several backends on one server are several clients of one store. */
export class OptimisticServer {
  readonly name: string
  /** Counted for tests: commits applied and refused (injected refusals included). */
  readonly stats = { commits: 0, conflicts: 0, transactions: 0 }
  readonly #entries = new Map<StoreKey, Entry>()
  /** The version at which each key last changed; a key absent here last changed at #clearedAt or never. */
  readonly #keyVersions = new Map<StoreKey, number>()
  #clearedAt = 0
  /** Bumped by every commit that changes something: what a listing depends on. */
  #version = 0
  #injectedConflicts = 0
  readonly #random: () => number
  /** Every client's watchers: the server publishes each commit to them, as Redis pub/sub would. */
  readonly feed = new ChangeFeed()

  constructor(options: OptimisticServerOptions = {}) {
    this.name = options.name ?? 'test'
    this.#random = prng(options.seed ?? 1)
  }

  /** Makes the next `n` commits report a conflict, whatever they read. */
  injectConflicts(n: number): void {
    this.#injectedConflicts += n
  }

  /** Injected conflicts not yet reported. */
  get pendingInjectedConflicts(): number {
    return this.#injectedConflicts
  }

  get version(): number {
    return this.#version
  }

  /**
   * The delay of a round trip. Sometimes a microtask, sometimes a macrotask, so that concurrent
   * clients interleave differently from one round to the next instead of in one fixed pattern
   * (in which the same transaction could lose every race).
   */
  async roundTrip(): Promise<void> {
    if (this.#random() < 0.5) {
      await Promise.resolve()
    } else {
      await new Promise<void>((resolve) => setImmediate(resolve))
    }
  }

  keyVersion(key: StoreKey): number {
    return Math.max(this.#keyVersions.get(key) ?? 0, this.#clearedAt)
  }

  /** The entry of `key` unless it expired: an expired entry stays stored until a commit. */
  #live(key: StoreKey): Entry | undefined {
    const entry = this.#entries.get(key)
    return entry === undefined || isExpired(entry, Date.now()) ? undefined : entry
  }

  /** The entries that have not expired, in order. */
  #liveEntries(query: KeyQuery | undefined): [StoreKey, Entry][] {
    const now = Date.now()
    const out: [StoreKey, Entry][] = []
    for (const [key, entry] of this.#entries) {
      if (matches(key, query) && !isExpired(entry, now)) out.push([key, entry])
    }
    return out
  }

  get(key: StoreKey): Entry | undefined {
    const entry = this.#live(key)
    return entry === undefined ? undefined : copy(entry)
  }

  has(key: StoreKey): boolean {
    return this.#live(key) !== undefined
  }

  get size(): number {
    return this.#liveEntries(undefined).length
  }

  /** Every entry held, expired or not: what a commit has yet to drop shows here. */
  get storedCount(): number {
    return this.#entries.size
  }

  listEntries(query: KeyQuery | undefined): [StoreKey, Entry][] {
    return this.#liveEntries(query).map(([key, entry]) => [key, copy(entry)])
  }

  listKeys(query: KeyQuery | undefined): StoreKey[] {
    return this.#liveEntries(query).map(([key]) => key)
  }

  /** The earliest expiry among what a listing under `query` shows (Infinity: none). */
  earliestExpiry(query: KeyQuery | undefined): number {
    let earliest = Number.POSITIVE_INFINITY
    for (const [, entry] of this.#liveEntries(query)) {
      if (entry.expiresAt !== undefined && entry.expiresAt < earliest) earliest = entry.expiresAt
    }
    return earliest
  }

  /** Applies `changes` atomically if nothing in `reads` changed since it was read. */
  commit(reads: ReadSet, changes: readonly Change[]): CommitOutcome {
    if (this.#injectedConflicts > 0) {
      this.#injectedConflicts--
      this.stats.conflicts++
      return { committed: false, conflict: 'an injected conflict' }
    }
    if (reads.listedAt !== undefined && reads.listedAt !== this.#version) {
      this.stats.conflicts++
      return { committed: false, conflict: 'the store changed since it was listed' }
    }
    const now = Date.now()
    if (reads.validUntil <= now) {
      this.stats.conflicts++
      return { committed: false, conflict: 'an entry it read has expired since' }
    }
    for (const [key, version] of reads.keys) {
      if (this.keyVersion(key) !== version) {
        this.stats.conflicts++
        return { committed: false, conflict: `${JSON.stringify(key)} changed since it was read` }
      }
    }
    // Dropping what expired changes nothing anyone can read: no version moves.
    for (const [key, entry] of this.#entries) if (isExpired(entry, now)) this.#entries.delete(key)
    const next = this.#version + 1
    const reported = this.feed.active ? changesOfCommit(this.#entries, changes) : undefined
    let changed = false
    const results: ChangeResult[] = changes.map((change) => {
      switch (change.kind) {
        case 'set':
          // Map semantics: an existing key keeps its place; one deleted earlier goes to the end.
          this.#entries.set(change.key, copy(change.entry))
          this.#keyVersions.set(change.key, next)
          changed = true
          return undefined
        case 'delete': {
          const existed = this.#entries.delete(change.key)
          if (existed) {
            this.#keyVersions.set(change.key, next)
            changed = true
          }
          return existed
        }
        case 'clear':
          if (this.#entries.size > 0) {
            this.#entries.clear()
            // Every version recorded so far is now at most #clearedAt: they say nothing more.
            this.#keyVersions.clear()
            this.#clearedAt = next
            changed = true
          }
          return undefined
      }
    })
    for (const change of changes) {
      if (change.kind !== 'set') continue
      const entry = this.#entries.get(change.key)
      if (entry !== undefined && isExpired(entry, now)) this.#entries.delete(change.key)
    }
    if (changed) this.#version = next
    if (reported !== undefined) this.feed.emit(reported)
    this.stats.commits++
    return { committed: true, results }
  }
}

/** One client of an OptimisticServer. */
export class OptimisticBackend implements Backend {
  readonly kind = 'optimistic-test'
  readonly location: string
  readonly concurrency = 'optimistic'
  // Nothing is held during a transaction, so no call made inside one can wait for itself.
  readonly exclusiveScope = undefined
  readonly readOnly: boolean
  readonly server: OptimisticServer
  #closed = false
  readonly #watchers = new Set<BackendWatcher>()

  /** `readOnly`: a client the store must not write through (it refuses with ReadOnlyError). */
  constructor(server: OptimisticServer, options: { readOnly?: boolean } = {}) {
    this.server = server
    this.location = `optimistic://${server.name}`
    this.readOnly = options.readOnly === true
  }

  async get(key: StoreKey): Promise<Entry | undefined> {
    await this.#request()
    return this.server.get(key)
  }

  async has(key: StoreKey): Promise<boolean> {
    await this.#request()
    return this.server.has(key)
  }

  async size(): Promise<number> {
    await this.#request()
    return this.server.size
  }

  async *keys(query?: KeyQuery): AsyncIterable<StoreKey> {
    await this.#request()
    yield* this.server.listKeys(query)
  }

  async *entries(query?: KeyQuery): AsyncIterable<[StoreKey, Entry]> {
    await this.#request()
    yield* this.server.listEntries(query)
  }

  async transaction<T>(fn: (tx: BackendTransaction) => Promise<T>): Promise<T> {
    this.#assertOpen()
    this.server.stats.transactions++
    const server = this.server
    const reads: ReadSet = { keys: new Map(), listedAt: undefined, validUntil: Number.POSITIVE_INFINITY }
    let ended = false
    let committed = false
    const request = async () => {
      if (ended) throw new BackendContractError('a backend transaction was used after it ended')
      await server.roundTrip()
      // Checked again after the delay: a read that arrives once fn has settled is a misuse too.
      if (ended) throw new BackendContractError('a backend transaction was used after it ended')
    }
    // The version is taken together with the value, in the same turn, so the pair is consistent.
    const readKey = (key: StoreKey) => {
      if (!reads.keys.has(key)) reads.keys.set(key, server.keyVersion(key))
      const expiresAt = server.get(key)?.expiresAt
      if (expiresAt !== undefined) reads.validUntil = Math.min(reads.validUntil, expiresAt)
    }
    const list = (query?: KeyQuery) => {
      reads.listedAt ??= server.version
      reads.validUntil = Math.min(reads.validUntil, server.earliestExpiry(query))
    }
    const tx: BackendTransaction = {
      async get(key) {
        await request()
        readKey(key)
        return server.get(key)
      },
      async has(key) {
        await request()
        readKey(key)
        return server.has(key)
      },
      async size() {
        await request()
        list()
        return server.size
      },
      async *keys(query) {
        await request()
        list(query)
        yield* server.listKeys(query)
      },
      async *entries(query) {
        await request()
        list(query)
        yield* server.listEntries(query)
      },
      commit: async (changes) => {
        if (committed) throw new BackendContractError('commit() was called twice in one transaction')
        // An empty commit only checks what was read: a read-only client may make one.
        if (this.readOnly && changes.length > 0) {
          throw new BackendContractError('a commit of changes through a read-only backend')
        }
        committed = true
        await request()
        return server.commit(reads, changes)
      },
    }
    try {
      return await fn(tx)
    } finally {
      ended = true
    }
  }

  /**
   * Commits reach each client after a round trip of its own, as copies, in the order the server
   * applied them (a chain per watcher), whoever made them.
   */
  watch(
    listener: (changes: readonly EntryChange[]) => void,
    onError?: (error: unknown) => void,
  ): BackendWatcher {
    this.#assertOpen()
    let delivered = Promise.resolve()
    let open = true
    const subscription = this.server.feed.add((changes) => {
      const copies = changes.map(({ key, before, after }) => ({
        key,
        ...(before === undefined ? {} : { before: copy(before) }),
        ...(after === undefined ? {} : { after: copy(after) }),
      }))
      delivered = delivered
        .then(() => this.server.roundTrip())
        .then(() => {
          if (open) listener(copies)
        })
    }, onError)
    const watcher: BackendWatcher = {
      close: () => {
        open = false
        subscription.close()
        this.#watchers.delete(watcher)
      },
    }
    this.#watchers.add(watcher)
    return watcher
  }

  close(): void {
    this.#closed = true
    for (const watcher of [...this.#watchers]) watcher.close()
  }

  async #request(): Promise<void> {
    this.#assertOpen()
    await this.server.roundTrip()
  }

  #assertOpen(): void {
    if (this.#closed) throw new BackendContractError('the backend was used after close()')
  }
}
