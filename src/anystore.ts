import { AsyncLocalStorage } from 'node:async_hooks'
import {
  type Backend,
  type BackendTransaction,
  type Change,
  type ChangeResult,
  isPromise,
  type KeyQuery,
} from './backends/backend.js'
import { MemoryBackend } from './backends/memory.js'
import type { FileSystem } from './backends/file/fsio.js'
import { decodeValue, encodeValue } from './format/codec.js'
import { checkKey, type Entry } from './format/payload.js'
import { warnIfDefaultKey } from './store/default-key-warning.js'
import {
  InvalidOptionError,
  ReadOnlyError,
  ReentrantCallError,
  StoreClosedError,
  TransactionConflictError,
} from './store/errors.js'
import type { KeyRing } from './store/keyring.js'
import { openFileBackend } from './backends/open-backend.js'
import {
  type AnyStoreOptions,
  checkOptionNames,
  expandPath,
  type ResolvedOptions,
  resolveOptions,
} from './store/options.js'
import { TransactionView } from './store/transaction-view.js'
import {
  type ChangeStream,
  changeStream,
  type StoreChange,
  StoreWatchers,
  type WatchOptions,
  type Watcher,
} from './store/watch.js'
import type { StoreKey, Transaction } from './store/types.js'

interface Pending {
  change: Change
  resolve(result: ChangeResult): void
  reject(error: unknown): void
}

/** The writes waiting for one backend; they go out together in its next commit. */
interface CommitQueue {
  backend: Backend
  pending: Pending[]
  flushScheduled: boolean
}

/** What one attempt of a transaction gave: its value, or the conflict that refused its commit. */
type Attempt<T> = { committed: true; value: T } | { committed: false; conflict: string }

/**
 * Decoded primitives (strings, numbers, booleans, null, bigints) by entry. A primitive cannot be
 * mutated, so handing the same one out again is as good as a fresh decode, and repeated reads
 * of a key skip the MessagePack decoder. Entries are never mutated, so the cache never goes
 * stale; objects are decoded afresh on every read, because callers may mutate them.
 */
const decodedPrimitives = new WeakMap<Entry, unknown>()
const MAX_CACHED_BYTES = 4096

function readValue(entry: Entry, source: string): unknown {
  const cached = decodedPrimitives.get(entry)
  if (cached !== undefined) return cached
  const value = decodeValue(entry.value, source)
  if (typeof value !== 'object' || value === null) {
    if (entry.value.length <= MAX_CACHED_BYTES) decodedPrimitives.set(entry, value)
  }
  return value
}

function valueOf<T>(entry: Entry | undefined, source: string): T | undefined {
  return entry === undefined ? undefined : (readValue(entry, source) as T)
}

async function collect<T>(items: Iterable<T> | AsyncIterable<T>): Promise<T[]> {
  if (Array.isArray(items)) return items
  if (Symbol.iterator in items) return Array.from(items)
  const out: T[] = []
  for await (const item of items) out.push(item)
  return out
}

/** What the current async context holds exclusively (backends' scopes), to catch deadlocks. */
const heldScopes = new AsyncLocalStorage<ReadonlySet<unknown>>()

function withHeld(scope: unknown): ReadonlySet<unknown> {
  const held = new Set(heldScopes.getStore())
  held.add(scope)
  return held
}

/** Before attempt n + 1 of a transaction refused by a conflict: jittered, growing, capped. */
function backoffMs(attempt: number): number {
  return Math.random() * Math.min(100, 2 ** attempt)
}

/** Set by AnyStore's static block: opens a store from options already resolved. */
let openResolved: <V>(options: ResolvedOptions) => Promise<AnyStore<V>>

/**
 * A key/value store kept by a backend: in memory, in one encrypted file shared by any number of
 * processes, or in a backend passed in. See README.md for the API and docs/DESIGN.md for the
 * protocol.
 */
export class AnyStore<V = unknown> {
  readonly #options: ResolvedOptions
  #queue: CommitQueue
  /** Whether the backend was opened by enablePersistence() (and is this store's to close). */
  #persisting = false
  readonly #inFlight = new Set<Promise<unknown>>()
  #closing: Promise<void> | undefined
  readonly #watchers = new StoreWatchers(() => this.#source)

  private constructor(options: ResolvedOptions) {
    this.#options = options
    this.#queue = newQueue(options.backend ?? new MemoryBackend())
  }

  /** Opens a store; with a `file`, loads it (throwing WrongKeyError, CorruptFileError, ... right away). */
  static async open<V = unknown>(options: AnyStoreOptions = {}): Promise<AnyStore<V>> {
    checkOptionNames(options, 'open')
    return openResolved<V>(resolveOptions(options))
  }

  static {
    // Gives openWithFileSystem() (below) the private constructor without making it public.
    openResolved = async <V>(options: ResolvedOptions) => {
      const store = new AnyStore<V>(options)
      if (store.#options.persist) await store.enablePersistence()
      return store
    }
  }

  get #backend(): Backend {
    return this.#queue.backend
  }

  /** The file this store persists to, or undefined while it lives elsewhere. */
  get file(): string | undefined {
    return this.#backend.file
  }

  /** The cross-process lock in use, or undefined where there is none. */
  get lockMode(): 'flock' | 'proper-lockfile' | undefined {
    return this.#backend.lockMode
  }

  /** The kind of backend that keeps the store now: `'file'`, `'memory'`, ... */
  get backendKind(): string {
    return this.#backend.kind
  }

  get closed(): boolean {
    return this.#closing !== undefined
  }

  get readOnly(): boolean {
    return this.#options.readOnly || this.#backend.readOnly
  }

  /** `T` types this one value, unchecked like a cast: for a store whose values differ in type. */
  async get<T = V>(key: StoreKey): Promise<T | undefined> {
    const entry = this.#open().get(checkKey(key))
    return valueOf<T>(isPromise(entry) ? await entry : entry, this.#source)
  }

  async has(key: StoreKey): Promise<boolean> {
    return this.#open().has(checkKey(key))
  }

  /** The keys in insertion order; with `prefix`, only the string keys that start with it. */
  async keys(query?: KeyQuery): Promise<StoreKey[]> {
    return collect(this.#open().keys(checkQuery(query)))
  }

  async size(): Promise<number> {
    return this.#open().size()
  }

  async entries(query?: KeyQuery): Promise<[StoreKey, V][]> {
    const source = this.#source
    const entries = await collect(this.#open().entries(checkQuery(query)))
    return entries.map(([key, entry]) => [key, decodeValue(entry.value, source) as V])
  }

  /** The keys one by one, for a large store: nothing builds an array of them all. */
  async *iterateKeys(query?: KeyQuery): AsyncGenerator<StoreKey> {
    yield* this.#open().keys(checkQuery(query))
  }

  /** The entries one by one, each value decoded as it is reached. */
  async *iterateEntries(query?: KeyQuery): AsyncGenerator<[StoreKey, V]> {
    const source = this.#source
    for await (const [key, entry] of this.#open().entries(checkQuery(query))) {
      yield [key, decodeValue(entry.value, source) as V]
    }
  }

  /** Names the store in errors about its content. */
  get #source(): string {
    return this.#backend.location
  }

  /** Resolves once the value is committed (and, with `sync: 'always'`, durable). */
  async set(key: StoreKey, value: V): Promise<void> {
    const entry: Entry = { value: encodeValue(value) }
    await this.#write({ kind: 'set', key: checkKey(key), entry }, 'set')
  }

  /** Resolves to whether the key existed when the delete was committed. */
  async delete(key: StoreKey): Promise<boolean> {
    return (await this.#write({ kind: 'delete', key: checkKey(key) }, 'delete')) === true
  }

  async clear(): Promise<void> {
    await this.#write({ kind: 'clear' }, 'clear')
  }

  /**
   * Runs `fn` as one transaction. Reads through `tx` see the latest committed state plus the
   * transaction's own writes; the writes are committed together when `fn` resolves, and
   * dropped if it throws. On a file the cross-process lock is held throughout. On a backend
   * with optimistic concurrency, a commit refused because another writer changed what `fn`
   * read runs `fn` again (up to `maxRunAttempts` times).
   */
  async run<T>(fn: (tx: Transaction<V>) => Promise<T> | T): Promise<T> {
    this.#assertOpen()
    const backend = this.#backend
    this.#assertNotInside(backend, 'run')
    const source = this.#source
    const exclusive = backend.concurrency === 'exclusive'
    // Tracked before the backend can call `fn`, so a close() made from `fn` waits for it.
    const started = Promise.resolve()
    return this.#track(
      started.then(() => this.#transact(backend, async (btx): Promise<Attempt<T>> => {
        const view = new TransactionView(btx)
        const { tx, end } = createTransaction<V>(view, source, backend, this.readOnly)
        let value: T
        try {
          value = exclusive
            ? await heldScopes.run(withHeld(backend.exclusiveScope), () => fn(tx))
            : await fn(tx)
        } finally {
          end()
        }
        // An exclusive backend held what was read: nothing to check. An optimistic one must
        // check the reads even of a transaction that wrote nothing, or it could return a state
        // that never existed (a read before and a read after another commit).
        if (!view.hasChanges && exclusive) return { committed: true, value }
        const outcome = await btx.commit(view.changes())
        return outcome.committed ? { committed: true, value } : outcome
      })),
    )
  }

  /**
   * Calls `listener` after every commit that changed something, by this instance or any other
   * instance or process sharing the store, with the keys it added, changed and deleted
   * (README, "Change events"). Keeps the process running until closed, or the store is.
   */
  watch(listener: (change: StoreChange<V>) => unknown, options?: WatchOptions): Watcher {
    return this.#watchers.add(this.#open(), listener, options)
  }

  /**
   * The changes watch() would report, as an async iterable: watching starts with this call and
   * ends with the loop (or return(), or the store's close()).
   */
  changes(options?: WatchOptions): ChangeStream<V> {
    return changeStream<V>(
      (listener, checked, onClosed) => this.#watchers.add(this.#open(), listener, checked, onClosed),
      options,
    )
  }

  /**
   * Starts persisting to `file` (default: the `file` option). One commit merges the in-memory
   * entries into what the file holds; on a key present in both, the in-memory value wins.
   */
  async enablePersistence(file: string | undefined = this.#options.file): Promise<void> {
    this.#assertOpen()
    if (this.#options.backend !== undefined) {
      throw new InvalidOptionError('This store was opened on a `backend`: it cannot switch to a file')
    }
    if (file === undefined) {
      throw new InvalidOptionError('enablePersistence() needs a file: pass one or set `file`')
    }
    const path = expandPath(file)
    if (this.#persisting) {
      if (this.file === path) return
      throw new InvalidOptionError(
        `This store already persists to ${this.file}: call disablePersistence() first`,
      )
    }
    const memory = this.#backend
    const backend = openFileBackend(path, this.#options)
    try {
      // Inside a memory transaction, so no in-memory write lands between the copy and the switch.
      await memory.transaction(async (mtx) => {
        const inMemory = await collect(mtx.entries())
        if (inMemory.length === 0) return
        if (backend.readOnly) throw new ReadOnlyError(backend.location, 'enablePersistence')
        const changes = inMemory.map(([key, entry]): Change => ({ kind: 'set', key, entry }))
        await backend.transaction(async (ftx) => ftx.commit(changes))
      })
    } catch (error) {
      backend.close()
      throw error
    }
    this.#queue = newQueue(backend)
    this.#watchers.follow(backend)
    this.#persisting = true
    if (this.#options.keyring.current !== undefined) {
      warnIfDefaultKey(this.#options.keyring.current, backend.location)
    }
  }

  /**
   * Stops persisting: from now on the store lives in memory, starting from the last state this
   * instance loaded or committed. Writes already in flight still complete against the file
   * (await them first if the in-memory state should include them).
   */
  disablePersistence(): void {
    if (!this.#persisting) return
    const backend = this.#backend
    this.#queue = newQueue(new MemoryBackend(backend.snapshot?.() ?? []))
    this.#watchers.follow(this.#backend)
    this.#persisting = false
    const idle = Promise.allSettled([...this.#inFlight])
    void idle.then(() => backend.close())
  }

  /** Waits for writes in flight, then releases what the store opened. Never deletes the store. */
  close(): Promise<void> {
    // From inside run() on this store, waiting for the writes in flight would wait for itself.
    if (this.#closing === undefined && this.#insideOwnTransaction()) {
      return Promise.reject(new ReentrantCallError('close'))
    }
    this.#closing ??= (async () => {
      while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight])
      this.#watchers.close()
      if (this.#persisting) await this.#backend.close()
      this.#persisting = false
      this.#queue = newQueue(new MemoryBackend())
    })()
    return this.#closing
  }

  /**
   * `await using store = await AnyStore.open(...)` closes the store when the block ends.
   * Symbol.asyncDispose exists on every supported Node (20.4 and later).
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  #assertOpen(): void {
    if (this.#closing !== undefined) throw new StoreClosedError()
  }

  /** The backend to read from, once the store is known to be open. */
  #open(): Backend {
    this.#assertOpen()
    return this.#backend
  }

  /** A call that would wait for the transaction it is made from: refused instead. */
  #assertNotInside(backend: Backend, method: string): void {
    if (backend.concurrency !== 'exclusive') return
    if (heldScopes.getStore()?.has(backend.exclusiveScope)) throw new ReentrantCallError(method)
  }

  #insideOwnTransaction(): boolean {
    const backend = this.#backend
    return backend.concurrency === 'exclusive' && heldScopes.getStore()?.has(backend.exclusiveScope) === true
  }

  #track<T>(promise: Promise<T>): Promise<T> {
    this.#inFlight.add(promise)
    const forget = () => this.#inFlight.delete(promise)
    promise.then(forget, forget)
    return promise
  }

  /**
   * Runs `attempt` in a backend transaction until its commit applies: once on an exclusive
   * backend, up to maxRunAttempts times on an optimistic one, with a growing pause between.
   */
  async #transact<T>(
    backend: Backend,
    attempt: (tx: BackendTransaction) => Promise<Attempt<T>>,
  ): Promise<T> {
    const limit = this.#options.maxRunAttempts
    for (let attempts = 1; ; attempts++) {
      const outcome = await backend.transaction(attempt)
      if (outcome.committed) return outcome.value
      if (attempts >= limit) {
        throw new TransactionConflictError(backend.location, attempts, outcome.conflict)
      }
      await new Promise((resolve) => setTimeout(resolve, backoffMs(attempts)))
    }
  }

  #write(change: Change, method: string): Promise<ChangeResult> {
    this.#assertOpen()
    const queue = this.#queue
    if (this.readOnly) throw new ReadOnlyError(queue.backend.location, method)
    this.#assertNotInside(queue.backend, method)
    return new Promise((resolve, reject) => {
      queue.pending.push({ change, resolve, reject })
      if (!queue.flushScheduled) {
        queue.flushScheduled = true
        void this.#track(this.#flush(queue))
      }
    })
  }

  /**
   * Group commit: every write queued until this flush's transaction starts (on a file: until
   * it holds the lock) goes out in one commit; each caller's promise settles with the outcome.
   */
  async #flush(queue: CommitQueue): Promise<void> {
    // Let writes issued in the same turn of the event loop join this commit.
    await Promise.resolve()
    let batch: Pending[] | undefined
    const take = (): Pending[] => {
      if (batch === undefined) {
        batch = queue.pending.splice(0)
        queue.flushScheduled = false
      }
      return batch
    }
    try {
      const results = await this.#transact(
        queue.backend,
        async (btx): Promise<Attempt<readonly ChangeResult[]>> => {
          const writes = take()
          if (writes.length === 0) return { committed: true, value: [] }
          const outcome = await btx.commit(writes.map((p) => p.change))
          return outcome.committed ? { committed: true, value: outcome.results } : outcome
        },
      )
      for (const [i, p] of take().entries()) p.resolve(results[i])
    } catch (error) {
      // Before the transaction started (the lock was never ours), or in its commit: fail them.
      for (const p of take()) p.reject(error)
    }
  }
}

function newQueue(backend: Backend): CommitQueue {
  return { backend, pending: [], flushScheduled: false }
}

function checkQuery(query: KeyQuery | undefined): KeyQuery | undefined {
  if (query === undefined) return undefined
  if (typeof query !== 'object' || query === null) {
    throw new InvalidOptionError('Expected the query to be an object such as `{ prefix: "user:" }`')
  }
  if (query.prefix !== undefined && typeof query.prefix !== 'string') {
    throw new InvalidOptionError('Expected `prefix` to be a string')
  }
  return query.prefix === undefined ? undefined : query
}

/**
 * AnyStore.open() with every file-system call going through `fs`: the seam fault-injection
 * tests use to fail chosen calls. Internal on purpose: src/index.ts does not export it, so no
 * user can swap out the file system under the store's crash-safety guarantees.
 */
export function openWithFileSystem<V = unknown>(
  options: AnyStoreOptions,
  fs: FileSystem,
): Promise<AnyStore<V>> {
  checkOptionNames(options, 'open')
  return openResolved<V>({ ...resolveOptions(options), fs })
}

/**
 * AnyStore.open() with a keyring built by the caller, for config mode: editThing() reads and
 * writes through one keyring, so a passphrase's key is derived once, not once per open.
 * Key options in `options` are ignored.
 */
export function openWithKeyRing<V = unknown>(
  options: AnyStoreOptions,
  keyring: KeyRing,
): Promise<AnyStore<V>> {
  checkOptionNames(options, 'open')
  return openResolved<V>({ ...resolveOptions(options), keyring })
}

/**
 * The object a run() callback gets, and the function that ends it. Built from closures so that
 * the object has only the documented Transaction methods: ending it is the store's business,
 * and a public `end()` would let a caller drop the transaction's writes without an error.
 */
function createTransaction<V>(
  view: TransactionView,
  source: string,
  backend: Backend,
  readOnly: boolean,
): { tx: Transaction<V>; end: () => void } {
  let ended = false
  const open = (): TransactionView => {
    if (ended) throw new StoreClosedError('transaction')
    return view
  }
  const writable = (method: string): TransactionView => {
    const current = open()
    if (readOnly) throw new ReadOnlyError(backend.location, `tx.${method}`)
    return current
  }
  const tx: Transaction<V> = {
    async get<T = V>(key: StoreKey): Promise<T | undefined> {
      const entry = open().get(checkKey(key))
      return valueOf<T>(isPromise(entry) ? await entry : entry, source)
    },
    async has(key) {
      return open().has(checkKey(key))
    },
    async set(key, value) {
      const current = writable('set')
      current.set(checkKey(key), { value: encodeValue(value) })
    },
    async delete(key) {
      return writable('delete').delete(checkKey(key))
    },
    async keys(query?: KeyQuery) {
      const keys: StoreKey[] = []
      for await (const [key] of open().entries(checkQuery(query))) keys.push(key)
      return keys
    },
    async size() {
      return open().size()
    },
    async entries(query?: KeyQuery) {
      const entries: [StoreKey, V][] = []
      for await (const [key, entry] of open().entries(checkQuery(query))) {
        entries.push([key, decodeValue(entry.value, source) as V])
      }
      return entries
    },
    async clear() {
      writable('clear').clear()
    },
  }
  return {
    tx,
    end: () => {
      ended = true
    },
  }
}
