import {
  type Backend,
  type BackendTransaction,
  type Change,
  type ChangeResult,
  isPromise,
  type KeyQuery,
} from './backends/backend.js'
import { MemoryBackend } from './backends/memory.js'
import { type Attempt, collect, transactUntilCommitted } from './backends/retry.js'
import type { FileSystem } from './backends/file/fsio.js'
import { decodeValue } from './format/codec.js'
import { checkKey, type Entry } from './format/payload.js'
import { warnIfDefaultKey } from './store/default-key-warning.js'
import {
  InvalidOptionError,
  ReadOnlyError,
  ReentrantCallError,
  StoreClosedError,
} from './store/errors.js'
import type { KeyRing } from './store/keyring.js'
import { openFileBackend, openRedisBackend } from './backends/open-backend.js'
import {
  type AnyStoreOptions,
  checkOptionNames,
  expandPath,
  type ResolvedOptions,
  resolveOptions,
} from './store/options.js'
import {
  expireIn,
  expiryAfter,
  newEntry,
  remainingMs,
  setIfAbsentIn,
} from './store/expiry.js'
import { insideRunOf, refuseInside, runHolding } from './store/held-scopes.js'
import { TransactionView } from './store/transaction-view.js'
import { finishWriteBehind, WriteBehind, withSyncPolicy } from './store/write-behind.js'
import {
  type ChangeStream,
  changeStream,
  type StoreChange,
  StoreWatchers,
  type WatchOptions,
  type Watcher,
} from './store/watch.js'
import type { SetOptions, StoreKey, Transaction } from './store/types.js'

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
  /**
   * The flushes of this queue, one after another: a batch retried after a conflict (optimistic
   * backends) must commit before a later batch, or an older value would overwrite a newer one.
   */
  flushes: Promise<void>
  /** While set, writes wait here without a flush (enablePersistence() is moving the store). */
  held: boolean
}

/** What one attempt of a transaction gave: its value, or the conflict that refused its commit. */

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
  /** The enablePersistence() in progress, if any. */
  #enabling: Promise<void> | undefined
  /** Whether open() opened the backend (Redis): this store's to close, for its whole life. */
  #ownsBackend = false
  readonly #inFlight = new Set<Promise<unknown>>()
  #closing: Promise<void> | undefined
  readonly #watchers = new StoreWatchers(() => this.#source)

  private constructor(options: ResolvedOptions) {
    this.#options = options
    this.#queue = newQueue(
      options.backend === undefined ? new MemoryBackend() : withSyncPolicy(options.backend, options),
    )
  }

  /** Opens a store; with a `file`, loads it (throwing WrongKeyError, CorruptFileError, ... right away). */
  static async open<V = unknown>(options: AnyStoreOptions = {}): Promise<AnyStore<V>> {
    checkOptionNames(options, 'open')
    return openResolved<V>(resolveOptions(options))
  }

  static {
    // Gives openWithFileSystem() (below) the private constructor without making it public.
    openResolved = async <V>(options: ResolvedOptions) => {
      if (options.redis !== undefined) {
        const backend = await openRedisBackend(options)
        const store = new AnyStore<V>({ ...options, backend })
        store.#ownsBackend = true
        if (options.keyring.current !== undefined) {
          warnIfDefaultKey(options.keyring.current, backend.location)
        }
        return store
      }
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

  /** The milliseconds `key` has left before it expires; undefined when it has no expiry or is absent. */
  async ttl(key: StoreKey): Promise<number | undefined> {
    const entry = this.#open().get(checkKey(key))
    return remainingMs(isPromise(entry) ? await entry : entry)
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

  /**
   * Resolves once the value is committed (and, with `sync: 'always'`, durable); with
   * `sync: { everyMs }`, once this instance holds it, to be committed within `everyMs`. With
   * `ttlMs` or `expiresAt` it expires then; without, it never does (whatever expiry the key had).
   */
  async set(key: StoreKey, value: V, options?: SetOptions): Promise<void> {
    const entry = this.#checkExpiry(newEntry(value, options))
    await this.#write({ kind: 'set', key: checkKey(key), entry }, 'set')
  }

  /** Sets `key` only if it is absent or expired, in one transaction; resolves to whether it did. */
  async setIfAbsent(key: StoreKey, value: V, options?: SetOptions): Promise<boolean> {
    const checked = checkKey(key)
    const entry = this.#checkExpiry(newEntry(value, options))
    return this.#update('setIfAbsent', (view) => setIfAbsentIn(view, checked, entry))
  }

  /**
   * Gives `key` a new expiry, `ttlMs` from now, or removes its expiry (undefined), in one
   * transaction; resolves to whether the key existed (an absent key stays absent).
   */
  async expire(key: StoreKey, ttlMs: number | undefined): Promise<boolean> {
    const checked = checkKey(key)
    // A read-only store refuses the write itself before judging its expiry.
    if (this.readOnly) throw new ReadOnlyError(this.#backend.location, 'expire')
    const expiresAt = expiryKeptBy(this.#backend, expiryAfter(ttlMs))
    return this.#update('expire', (view) => expireIn(view, checked, expiresAt))
  }

  /**
   * Resolves to whether the key existed when the delete was committed; with
   * `sync: { everyMs }`, whether this instance saw it when delete() was called.
   */
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
    const scope = exclusive ? backend.exclusiveScope : undefined
    // Tracked before the backend can call `fn`, so a close() made from `fn` waits for it.
    const started = Promise.resolve()
    return this.#track(
      started.then(() => this.#transact(backend, async (btx): Promise<Attempt<T>> => {
        const view = new TransactionView(btx)
        const { tx, end } = createTransaction<V>(view, source, backend, this.readOnly)
        let value: T
        try {
          value = await runHolding(this, scope, () => fn(tx))
        } finally {
          end()
        }
        const outcome = await view.commit(exclusive)
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
    if (this.#options.redis !== undefined) {
      throw new InvalidOptionError('This store was opened on Redis: it cannot switch to a file')
    }
    if (this.#options.backend !== undefined) {
      throw new InvalidOptionError('This store was opened on a `backend`: it cannot switch to a file')
    }
    if (file === undefined) {
      throw new InvalidOptionError('enablePersistence() needs a file: pass one or set `file`')
    }
    const path = expandPath(file)
    if (this.#persisting) {
      if (this.file === path) return this.#enabling
      throw new InvalidOptionError(
        `This store already persists to ${this.file}: call disablePersistence() first`,
      )
    }
    // The copy below runs in a memory transaction, which a run() of this store already holds.
    this.#assertNotInside(this.#backend, 'enablePersistence')
    const memoryQueue = this.#queue
    const backend = openFileBackend(path, this.#options)
    // From here on writes go to the file, but wait (held) until the in-memory entries, and
    // every write made before this call, are in it: none lands on the memory store after the
    // copy, and none reaches the file before the entries it may overwrite.
    const fileQueue = newQueue(withSyncPolicy(backend, this.#options))
    fileQueue.held = true
    this.#queue = fileQueue
    this.#persisting = true
    this.#enabling = this.#track(this.#moveToFile(memoryQueue, fileQueue))
    return this.#enabling
  }

  /** One commit of the in-memory entries into the file; on failure the store stays in memory. */
  async #moveToFile(memoryQueue: CommitQueue, fileQueue: CommitQueue): Promise<void> {
    const memory = memoryQueue.backend
    const backend = fileQueue.backend
    try {
      await memoryQueue.flushes
      await memory.transaction(async (mtx) => {
        const inMemory = await collect(mtx.entries())
        if (inMemory.length === 0) return
        if (this.readOnly) throw new ReadOnlyError(backend.location, 'enablePersistence')
        const changes = inMemory.map(([key, entry]): Change => ({ kind: 'set', key, entry }))
        await backend.transaction(async (ftx) => ftx.commit(changes))
      })
    } catch (error) {
      // Back to memory, with the writes that waited for the file.
      this.#queue = memoryQueue
      this.#persisting = false
      this.#release(fileQueue, memoryQueue)
      await backend.close()
      throw error
    } finally {
      this.#enabling = undefined
    }
    this.#release(fileQueue, fileQueue)
    this.#watchers.follow(backend)
    if (this.#options.keyring.current !== undefined) {
      warnIfDefaultKey(this.#options.keyring.current, backend.location)
    }
  }

  /** Hands the writes held in `from` to `to` and lets them flush. */
  #release(from: CommitQueue, to: CommitQueue): void {
    from.held = false
    const waiting = from.pending.splice(0)
    for (const write of waiting) this.#enqueue(to, write)
  }

  /**
   * Stops persisting: from now on the store lives in memory, starting from the last state this
   * instance loaded or committed. Writes already in flight still complete against the file
   * (await them first if the in-memory state should include them).
   */
  disablePersistence(): void {
    if (!this.#persisting) return
    if (this.#enabling !== undefined) {
      throw new InvalidOptionError('enablePersistence() is still in progress: await it first')
    }
    const backend = this.#backend
    this.#queue = newQueue(new MemoryBackend(backend.snapshot?.() ?? []))
    this.#watchers.follow(this.#backend)
    this.#persisting = false
    const idle = Promise.allSettled([...this.#inFlight])
    void idle.then(() => backend.close())
  }

  /**
   * Resolves once every write acknowledged so far is committed. Only `sync: { everyMs }`
   * acknowledges writes before their commit: elsewhere there is nothing to wait for.
   */
  async flush(): Promise<void> {
    const backend = this.#open()
    if (backend instanceof WriteBehind) await backend.flush()
  }

  /**
   * Waits for writes in flight, commits what write-behind holds, then releases what the store
   * opened. Never deletes the store.
   */
  close(): Promise<void> {
    // From inside run() on this store, waiting for the writes in flight would wait for itself.
    if (insideRunOf(this)) return Promise.reject(new ReentrantCallError('close'))
    this.#closing ??= (async () => {
      while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight])
      const failure = await finishWriteBehind(this.#backend)
      // After the last commit, so that its changes are still reported.
      this.#watchers.close()
      if (this.#persisting || this.#ownsBackend) await this.#backend.close()
      this.#persisting = false
      this.#queue = newQueue(new MemoryBackend())
      // Closed all the same: what the last commit could not write is dropped, and this says so.
      if (failure !== undefined) throw failure.error
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

  /** `entry`, unless it carries an expiry the backend cannot keep. */
  #checkExpiry(entry: Entry): Entry {
    return refuseUnsupportedExpiry(this.#backend, entry)
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
    if (backend.concurrency === 'exclusive') refuseInside(backend.exclusiveScope, method)
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
  #transact<T>(
    backend: Backend,
    attempt: (tx: BackendTransaction) => Promise<Attempt<T>>,
  ): Promise<T> {
    return transactUntilCommitted(backend, attempt, this.#options.maxRunAttempts)
  }

  /**
   * One transaction the store makes itself (setIfAbsent, expire): `fn` reads and writes through
   * the view, which is committed when it resolves; run again where the backend is optimistic.
   */
  #update<T>(method: string, fn: (view: TransactionView) => Promise<T>): Promise<T> {
    this.#assertOpen()
    const backend = this.#backend
    if (this.readOnly) throw new ReadOnlyError(backend.location, method)
    this.#assertNotInside(backend, method)
    const exclusive = backend.concurrency === 'exclusive'
    return this.#track(
      this.#transact(backend, async (btx): Promise<Attempt<T>> => {
        const view = new TransactionView(btx)
        const value = await fn(view)
        const outcome = await view.commit(exclusive)
        return outcome.committed ? { committed: true, value } : outcome
      }),
    )
  }

  #write(change: Change, method: string): Promise<ChangeResult> {
    this.#assertOpen()
    const queue = this.#queue
    if (this.readOnly) throw new ReadOnlyError(queue.backend.location, method)
    this.#assertNotInside(queue.backend, method)
    if (queue.backend instanceof WriteBehind && !queue.held) {
      return Promise.resolve(queue.backend.write(change))
    }
    return new Promise((resolve, reject) => this.#enqueue(queue, { change, resolve, reject }))
  }

  #enqueue(queue: CommitQueue, write: Pending): void {
    queue.pending.push(write)
    if (queue.held || queue.flushScheduled) return
    queue.flushScheduled = true
    queue.flushes = this.#track(queue.flushes.then(() => this.#flush(queue)))
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
      const { backend } = queue
      if (backend.commitWrites !== undefined) {
        const writes = take()
        const results = writes.length === 0 ? [] : await backend.commitWrites(writes.map((p) => p.change))
        for (const [i, p] of writes.entries()) p.resolve(results[i])
        return
      }
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

/** `expiresAt`, unless it is an expiry `backend` cannot keep: then InvalidOptionError. */
function expiryKeptBy(backend: Backend, expiresAt: number | undefined): number | undefined {
  if (expiresAt !== undefined && backend.supportsExpiry === false) {
    throw new InvalidOptionError(
      `The ${backend.kind} backend does not keep expiries yet: leave out \`ttlMs\`, \`expiresAt\` and expire()`,
    )
  }
  return expiresAt
}

function refuseUnsupportedExpiry(backend: Backend, entry: Entry): Entry {
  expiryKeptBy(backend, entry.expiresAt)
  return entry
}

function newQueue(backend: Backend): CommitQueue {
  return { backend, pending: [], flushScheduled: false, flushes: Promise.resolve(), held: false }
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
  const supported = (entry: Entry) => refuseUnsupportedExpiry(backend, entry)
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
    async ttl(key) {
      const entry = open().get(checkKey(key))
      return remainingMs(isPromise(entry) ? await entry : entry)
    },
    async set(key, value, options?: SetOptions) {
      const current = writable('set')
      current.set(checkKey(key), supported(newEntry(value, options)))
    },
    async setIfAbsent(key, value, options?: SetOptions) {
      const current = writable('setIfAbsent')
      return setIfAbsentIn(current, checkKey(key), supported(newEntry(value, options)))
    },
    async expire(key, ttlMs) {
      const current = writable('expire')
      return expireIn(current, checkKey(key), expiryKeptBy(backend, expiryAfter(ttlMs)))
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
