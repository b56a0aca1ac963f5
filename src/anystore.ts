import { AsyncLocalStorage } from 'node:async_hooks'
import { decodeValue, encodeValue } from './format/codec.js'
import { warnIfDefaultKey } from './store/default-key-warning.js'
import type { KeyRing } from './store/keyring.js'
import { InvalidOptionError, ReentrantCallError, StoreClosedError } from './store/errors.js'
import { FileBackend, type Persistence } from './backends/file/file-backend.js'
import type { FileSystem } from './backends/file/fsio.js'
import { Mutex } from './store/mutex.js'
import {
  type AnyStoreOptions,
  checkOptionNames,
  expandPath,
  type ResolvedOptions,
  resolveOptions,
} from './store/options.js'
import { Overlay } from './store/overlay.js'
import { checkKey, type Entry, type EntryMap } from './format/payload.js'
import { PayloadMap } from './backends/file/payload-map.js'
import type { StoreKey, Transaction } from './store/types.js'

type Mutation =
  | { kind: 'set'; key: StoreKey; entry: Entry }
  | { kind: 'delete'; key: StoreKey }
  | { kind: 'clear' }

interface Pending {
  mutation: Mutation
  resolve(result: boolean | undefined): void
  reject(error: unknown): void
}

/** The writes waiting for one persistence target; they go out together in the next commit. */
interface CommitQueue {
  persistence: Persistence
  pending: Pending[]
  flushScheduled: boolean
}

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

/** Which files (or in-memory stores) the current async context holds exclusively, to catch deadlocks. */
const heldLocks = new AsyncLocalStorage<ReadonlySet<unknown>>()

function apply(overlay: Overlay, mutation: Mutation): boolean | undefined {
  switch (mutation.kind) {
    case 'set':
      overlay.set(mutation.key, mutation.entry)
      return undefined
    case 'delete':
      return overlay.delete(mutation.key)
    case 'clear':
      overlay.clear()
      return undefined
  }
}

/** Set by AnyStore's static block: opens a store from options already resolved. */
let openResolved: <V>(options: ResolvedOptions) => Promise<AnyStore<V>>

/**
 * A key/value store held in memory, optionally persisted to one encrypted file shared by any
 * number of processes. See README.md for the API and docs/DESIGN.md for the protocol.
 */
export class AnyStore<V = unknown> {
  readonly #options: ResolvedOptions
  /** The latest state this instance loaded or committed: never holds uncommitted writes. */
  #map: EntryMap = new Map()
  #queue: CommitQueue | undefined
  readonly #memoryMutex = new Mutex()
  readonly #inFlight = new Set<Promise<unknown>>()
  #closing: Promise<void> | undefined

  private constructor(options: ResolvedOptions) {
    this.#options = options
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

  /** The file this store persists to, or undefined while it lives in memory only. */
  get file(): string | undefined {
    return this.#queue?.persistence.file
  }

  /** The cross-process lock in use, or undefined while in memory only. */
  get lockMode(): 'flock' | 'proper-lockfile' | undefined {
    return this.#queue?.persistence.lockMode
  }

  get closed(): boolean {
    return this.#closing !== undefined
  }

  /** `T` types this one value, unchecked like a cast: for a store whose values differ in type. */
  async get<T = V>(key: StoreKey): Promise<T | undefined> {
    const entry = this.#current().get(checkKey(key))
    return entry === undefined ? undefined : (readValue(entry, this.#source) as T)
  }

  async has(key: StoreKey): Promise<boolean> {
    return this.#current().has(checkKey(key))
  }

  async keys(): Promise<StoreKey[]> {
    const map = this.#current()
    return map instanceof PayloadMap ? map.keyArray() : [...map.keys()]
  }

  async size(): Promise<number> {
    return this.#current().size
  }

  async entries(): Promise<[StoreKey, V][]> {
    const map = this.#current()
    return Array.from(map, ([key, entry]) => [key, decodeValue(entry.value, this.#source) as V])
  }

  /** Names the store in errors about its content. */
  get #source(): string {
    return this.file ?? 'the in-memory store'
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
   * Runs `fn` as one transaction, holding the cross-process lock throughout. Reads through
   * `tx` see the latest committed state plus the transaction's own writes; the writes are
   * committed in one file write when `fn` resolves, and dropped if it throws.
   */
  async run<T>(fn: (tx: Transaction<V>) => Promise<T> | T): Promise<T> {
    this.#assertOpen()
    const queue = this.#queue
    const lockId = queue === undefined ? this : queue.persistence.file
    this.#assertNotInside(lockId, 'run')
    const body = async () => {
      if (queue !== undefined) this.#refreshFrom(queue.persistence)
      const overlay = new Overlay(this.#map)
      const { tx, end } = createTransaction<V>(overlay, this.#source)
      let result: T
      try {
        result = await heldLocks.run(withHeld(lockId), () => fn(tx))
      } finally {
        end()
      }
      if (overlay.hasChanges) {
        queue?.persistence.commit(overlay)
        overlay.applyTo(overlay.base)
      }
      return result
    }
    return this.#track(
      queue === undefined ? this.#memoryMutex.run(body) : queue.persistence.exclusive(body),
    )
  }

  /**
   * Starts persisting to `file` (default: the `file` option). One commit merges the in-memory
   * entries into what the file holds; on a key present in both, the in-memory value wins.
   */
  async enablePersistence(file: string | undefined = this.#options.file): Promise<void> {
    this.#assertOpen()
    if (file === undefined) {
      throw new InvalidOptionError('enablePersistence() needs a file: pass one or set `file`')
    }
    const path = expandPath(file)
    if (this.#queue !== undefined) {
      if (this.#queue.persistence.file === path) return
      throw new InvalidOptionError(
        `This store already persists to ${this.#queue.persistence.file}: call disablePersistence() first`,
      )
    }
    const o = this.#options
    const persistence = new FileBackend(path, {
      keyring: o.keyring,
      compress: o.compress,
      sync: o.sync,
      lock: o.lock,
      lockTimeoutMs: o.lockTimeoutMs,
      maxFileSize: o.maxFileSize,
      staleMs: o.staleMs,
      io: o.fs,
      formatVersion: o.formatVersion,
    })
    try {
      const inMemory = this.#map
      if (inMemory.size === 0) {
        this.#map = persistence.refresh() ?? new Map()
      } else {
        await this.#memoryMutex.run(() =>
          persistence.exclusive(async () => {
            const overlay = new Overlay(persistence.refresh() ?? new Map())
            for (const [key, entry] of inMemory) overlay.set(key, entry)
            persistence.commit(overlay)
            overlay.applyTo(overlay.base)
            this.#map = overlay.base
          }),
        )
      }
    } catch (error) {
      persistence.close()
      throw error
    }
    this.#queue = { persistence, pending: [], flushScheduled: false }
    if (o.keyring.current !== undefined) warnIfDefaultKey(o.keyring.current, path)
  }

  /**
   * Stops persisting: from now on the store lives in memory, starting from the last state this
   * instance loaded or committed. Writes already in flight still complete against the file
   * (await them first if the in-memory state should include them).
   */
  disablePersistence(): void {
    const queue = this.#queue
    if (queue === undefined) return
    this.#queue = undefined
    this.#map = new Map(this.#map)
    const idle = Promise.allSettled([...this.#inFlight])
    void idle.then(() => queue.persistence.close())
  }

  /** Waits for writes in flight, then releases file descriptors. Never deletes the lockfile. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight])
      this.#queue?.persistence.close()
      this.#queue = undefined
      this.#map = new Map()
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

  #assertNotInside(lockId: unknown, method: string): void {
    if (heldLocks.getStore()?.has(lockId)) throw new ReentrantCallError(method)
  }

  /** The state to read from: reloaded first if another process committed since. */
  #current(): EntryMap {
    this.#assertOpen()
    if (this.#queue !== undefined) this.#refreshFrom(this.#queue.persistence)
    return this.#map
  }

  #refreshFrom(persistence: Persistence): void {
    const fresh = persistence.refresh()
    if (fresh !== undefined) this.#map = fresh
  }

  #track<T>(promise: Promise<T>): Promise<T> {
    this.#inFlight.add(promise)
    const forget = () => this.#inFlight.delete(promise)
    promise.then(forget, forget)
    return promise
  }

  #write(mutation: Mutation, method: string): Promise<boolean | undefined> {
    this.#assertOpen()
    const queue = this.#queue
    if (queue === undefined) {
      this.#assertNotInside(this, method)
      // Through the mutex, so a write never lands in the middle of a run() transaction.
      return this.#track(
        this.#memoryMutex.run(async () => {
          const overlay = new Overlay(this.#map)
          const result = apply(overlay, mutation)
          overlay.applyTo(overlay.base)
          return result
        }),
      )
    }
    this.#assertNotInside(queue.persistence.file, method)
    return new Promise((resolve, reject) => {
      queue.pending.push({ mutation, resolve, reject })
      if (!queue.flushScheduled) {
        queue.flushScheduled = true
        void this.#track(this.#flush(queue))
      }
    })
  }

  /**
   * Group commit: every write queued until this flush holds the lock goes out in one file
   * write; each caller's promise settles with the outcome of that commit.
   */
  async #flush(queue: CommitQueue): Promise<void> {
    // Let writes issued in the same turn of the event loop join this commit.
    await Promise.resolve()
    let batch: Pending[] = []
    try {
      await queue.persistence.exclusive(async () => {
        batch = queue.pending.splice(0)
        queue.flushScheduled = false
        if (batch.length === 0) return
        this.#refreshFrom(queue.persistence)
        const overlay = new Overlay(this.#map)
        const results = batch.map((p) => apply(overlay, p.mutation))
        if (overlay.hasChanges) {
          queue.persistence.commit(overlay)
          overlay.applyTo(overlay.base)
        }
        for (const [i, p] of batch.entries()) p.resolve(results[i])
      })
    } catch (error) {
      if (batch.length === 0) {
        // The lock was never ours: fail everything that was waiting for it.
        batch = queue.pending.splice(0)
        queue.flushScheduled = false
      }
      for (const p of batch) p.reject(error)
    }
  }
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

function withHeld(lockId: unknown): ReadonlySet<unknown> {
  const held = new Set(heldLocks.getStore())
  held.add(lockId)
  return held
}

/**
 * The object a run() callback gets, and the function that ends it. Built from closures so that
 * the object has only the documented Transaction methods: ending it is the store's business,
 * and a public `end()` would let a caller drop the transaction's writes without an error.
 */
function createTransaction<V>(
  overlay: Overlay,
  source: string,
): { tx: Transaction<V>; end: () => void } {
  let ended = false
  const open = (): Overlay => {
    if (ended) throw new StoreClosedError('transaction')
    return overlay
  }
  const tx: Transaction<V> = {
    async get<T = V>(key: StoreKey): Promise<T | undefined> {
      const entry = open().get(checkKey(key))
      return entry === undefined ? undefined : (readValue(entry, source) as T)
    },
    async has(key) {
      return open().has(checkKey(key))
    },
    async set(key, value) {
      const current = open()
      current.set(checkKey(key), { value: encodeValue(value) })
    },
    async delete(key) {
      return open().delete(checkKey(key))
    },
    async keys() {
      return Array.from(open().entries(), ([key]) => key)
    },
    async size() {
      return open().size
    },
    async entries() {
      return Array.from(open().entries(), ([key, entry]) => [
        key,
        decodeValue(entry.value, source) as V,
      ])
    },
    async clear() {
      open().clear()
    },
  }
  return {
    tx,
    end: () => {
      ended = true
    },
  }
}
