import {
  MAX_COUNTER,
  newStoreId,
  type WritableFormatVersion,
} from '../../format/header.js'
import { seal } from '../../format/store-file.js'
import { type AnyStoreError, CorruptFileError } from '../../store/errors.js'
import { Committer } from './commit.js'
import type { FileSystem } from './fsio.js'
import { LoadedVersion } from './freshness.js'
import { type Lineage, lineageFailure } from './lineage.js'
import { prepareStorePath } from './store-path.js'
import { CommitWatcher, type WatchMode } from './watcher.js'
import type { KeyRing } from '../../store/keyring.js'
import { ReadOnlyError } from '../../store/errors.js'
import {
  type Backend,
  type BackendTransaction,
  type BackendWatcher,
  type Change,
  type ChangeResult,
  type EntryChange,
  type KeyQuery,
  matches,
} from '../backend.js'
import { ChangeFeed, changesOfCommit, diffStates } from '../change-feed.js'
import { applyChanges } from '../memory.js'
import { dropExpiredSets, ExpiryQueue, expiriesIn } from '../expiry.js'
import { type CrossProcessLock, createLock } from '../../lock.js'
import { withPathMutex } from '../../store/mutex.js'
import type { LockMode, SyncMode } from '../../store/options.js'
import { Overlay } from '../../store/overlay.js'
import { type Entry, type EntryMap } from '../../format/payload.js'
import { encodeOverlay, PayloadMap } from '../../format/payload-map.js'
import type { StoreKey } from '../../store/types.js'

export interface FileBackendOptions {
  /** Opens files written under any of its keys; seals commits under its current key. */
  keyring: KeyRing
  /** Seals commits under this keyring's current key instead (rekey). */
  sealWith?: KeyRing | undefined
  /** Refuses every write, and creates nothing: no directory, lockfile or temp file. */
  readOnly?: boolean | undefined
  compress: boolean
  sync: SyncMode
  lock: LockMode
  lockTimeoutMs: number
  maxFileSize: number
  staleMs: number
  io: FileSystem
  /**
   * The format version of new files: 3, or 2 while processes of the previous release share
   * the store. A store already in version 3 stays in version 3 either way.
   */
  formatVersion: WritableFormatVersion
}


/** Below this many entries (or changed keys), encoding them on each commit costs less than indexing once. */
const ADOPT_FROM_ENTRIES = 1024

/**
 * Whether the next refresh should index the payload just committed: when the map was encoded
 * entry by entry (it was filled in memory, or cleared), or when its loaded payload has drifted
 * far enough from the map that copying around the changes no longer saves much.
 */
function worthReindexing(entries: Iterable<[StoreKey, Entry]>, payload: Buffer): boolean {
  const count = payload.readUInt32BE(0)
  if (entries instanceof Overlay && entries.base instanceof PayloadMap && !entries.cleared) {
    return entries.base.drift >= Math.max(ADOPT_FROM_ENTRIES, count >> 3)
  }
  return count >= ADOPT_FROM_ENTRIES
}










/** The expiries in `map`; a PayloadMap knows from its load's scan whether it has any. */
function expiriesOf(map: EntryMap): Iterable<[StoreKey, number]> {
  return map instanceof PayloadMap ? map.expiries() : expiriesIn(map)
}

function keysIn(map: EntryMap, query: KeyQuery | undefined): StoreKey[] {
  const keys = map instanceof PayloadMap ? map.keyArray() : [...map.keys()]
  return query?.prefix === undefined ? keys : keys.filter((key) => matches(key, query))
}

function* entriesIn(map: EntryMap, query: KeyQuery | undefined): Generator<[StoreKey, Entry]> {
  for (const entry of map) if (matches(entry[0], query)) yield entry
}

export class FileBackend implements Backend {
  readonly kind = 'file'
  readonly concurrency = 'exclusive'
  readonly file: string
  readonly readOnly: boolean
  /** The last state loaded or committed, decrypted: what reads answer from once it is fresh. */
  #cache: EntryMap = new Map()
  readonly #options: FileBackendOptions
  readonly #io: FileSystem
  /** Undefined for a read-only store, which never locks. */
  readonly #lock: CrossProcessLock | undefined
  /** The version loaded or committed last, pinned, and whether it is still the one at the path. */
  readonly #version: LoadedVersion
  readonly #committer: Committer
  /** Set by exclusive(), taken by the one commit it allows. */
  #tempToken: string | undefined
  /**
   * The payload of our last commit when the next commits should be laid out over it (see
   * worthReindexing: the map was filled in memory, or drifted far from its loaded payload).
   * The next refresh indexes it into a PayloadMap, so later commits copy it around their
   * changes instead.
   */
  #adoptable: Buffer | undefined
  /** Whether a transaction holds the lock: its reads must not trust the status byte alone. */
  #locked = false
  /**
   * The expiries of the entries of #expiriesOf (the cache, normally), built when a read first
   * meets a newly loaded map. Reads remove what expired from the cache first (the file keeps it
   * until the next commit, which leaves it out), so they answer from the map as it is.
   */
  #expiries = new ExpiryQueue()
  #expiriesOf: EntryMap | undefined
  /**
   * Undefined until a version 3 file was loaded or written. Kept while the file is missing:
   * a copy put back after a delete is as old as it was before, and another store is as
   * foreign; a commit made meanwhile continues this store.
   */
  #lineage: Lineage | undefined
  /**
   * Set when a loaded file turned out to be another store or an older commit: every later
   * refresh and commit throws it, until the store is closed and opened again. Serving the
   * file after the error, or writing over it, would make the replacement silent after all.
   */
  #failure: AnyStoreError | undefined
  /**
   * The watchers of this instance. While one is open, commits report what they change, every
   * reload reports what differs from the cache it replaces, and #watcher looks for others'
   * commits; while none is, none of that costs anything.
   */
  readonly #feed = new ChangeFeed({
    start: () => {
      this.#watcher = new CommitWatcher({
        io: this.#io,
        file: this.file,
        check: () => this.#checkForCommits(),
      })
    },
    stop: () => {
      this.#watcher?.close()
      this.#watcher = undefined
    },
  })
  #watcher: CommitWatcher | undefined

  /**
   * Opens the store at `file` and loads it, so that a wrong key or a damaged file is reported
   * at open. A missing file is an empty store (created by the first commit).
   */
  static open(file: string, options: FileBackendOptions): FileBackend {
    const backend = new FileBackend(file, options)
    try {
      backend.#fresh()
    } catch (error) {
      backend.close()
      throw error
    }
    return backend
  }

  constructor(file: string, options: FileBackendOptions) {
    this.#io = options.io
    this.readOnly = options.readOnly === true
    this.file = prepareStorePath(this.#io, file, !this.readOnly)
    this.#options = options
    this.#lock = this.readOnly
      ? undefined
      : createLock(options.lock, this.#io, this.file, options.staleMs)
    this.#version = new LoadedVersion({
      io: this.#io,
      file: this.file,
      keyring: options.keyring,
      maxFileSize: options.maxFileSize,
      vet: (header) => {
        this.#failure = lineageFailure(this.file, this.#lineage, header)
        if (this.#failure !== undefined) throw this.#failure
      },
    })
    this.#committer = new Committer({
      io: this.#io,
      file: this.file,
      lock: this.#lock,
      sync: options.sync,
      version: this.#version,
    })
  }

  get location(): string {
    return this.file
  }

  /**
   * Transactions on one path exclude each other in this process, whichever instance runs them.
   * A read-only store's transactions take no lock, so they hold nothing anyone could wait for.
   */
  get exclusiveScope(): unknown {
    return this.readOnly ? this : this.file
  }

  get lockMode(): 'flock' | 'proper-lockfile' | undefined {
    return this.#lock?.mode
  }

  get(key: StoreKey): Entry | undefined {
    return this.#fresh().get(key)
  }

  has(key: StoreKey): boolean {
    return this.#fresh().has(key)
  }

  size(): number {
    return this.#fresh().size
  }

  keys(query?: KeyQuery): StoreKey[] {
    return keysIn(this.#fresh(), query)
  }

  entries(query?: KeyQuery): Iterable<[StoreKey, Entry]> {
    return entriesIn(this.#fresh(), query)
  }

  snapshot(): Iterable<[StoreKey, Entry]> {
    return this.#live(this.#cache)
  }

  /**
   * Our commits are reported from the commit (the cache holds what they replace); others' are
   * found by #watcher and reported as the difference between the cache and the version loaded.
   */
  watch(
    listener: (changes: readonly EntryChange[]) => void,
    onError?: (error: unknown) => void,
  ): BackendWatcher {
    // From the version at the path now: what was committed before watch() is no news to it.
    let failed: { error: unknown } | undefined
    try {
      this.#fresh(true)
    } catch (error) {
      failed = { error }
      this.#feed.fail(error)
    }
    const watcher = this.#feed.add(listener, onError)
    // The feed reports a failure once; one that started before this watcher is news to it.
    if (failed !== undefined) onError?.(failed.error)
    return watcher
  }

  /** How the open watchers learn of others' commits; undefined while none is open. */
  get watchMode(): WatchMode | undefined {
    return this.#watcher?.mode
  }

  /**
   * A directory event or the poll timer: the read path's check, fully (a program other than
   * anystore may have replaced the file without setting the status byte). A reload reports
   * what changed from #fresh(); a failure goes to the watchers, whose reads will meet it too.
   */
  #checkForCommits(): void {
    try {
      this.#fresh(true)
      this.#feed.ok()
    } catch (error) {
      this.#feed.fail(error)
    }
  }

  /**
   * Holds this thread's mutex for the file and then the cross-process lock while `fn` runs;
   * the transaction reads the state loaded under the lock and may commit once. A read-only
   * store takes no lock: its transactions read the latest state and cannot commit.
   */
  async transaction<T>(fn: (tx: BackendTransaction) => Promise<T>): Promise<T> {
    const lock = this.#lock
    if (lock === undefined) return fn(this.#transactionOn(this.#fresh(), false))
    return withPathMutex(this.file, async () => {
      await lock.acquire(this.#options.lockTimeoutMs)
      try {
        this.#tempToken = this.#committer.takeOverRecord()
        this.#locked = true
        this.#fresh()
        return await fn(this.#transactionOn(undefined, true))
      } finally {
        this.#locked = false
        this.#tempToken = undefined
        await lock.release()
      }
    })
  }

  /**
   * One commit of `changes` under the locks, taken without yielding: for the exit flush of
   * write-behind. The in-process mutex is not waited for, because an instance that holds it at
   * exit can never release it; if that instance holds the cross-process lock too, the wait
   * for it ends at lockTimeoutMs with LockTimeoutError. Its own lock (a transaction of this
   * instance cut short by the exit) is reused: that transaction will never commit.
   */
  commitSync(changes: readonly Change[]): ChangeResult[] {
    const lock = this.#lock
    if (lock === undefined) throw new ReadOnlyError(this.file, 'commit')
    lock.acquireSync(this.#options.lockTimeoutMs)
    try {
      this.#tempToken = this.#committer.takeOverRecord()
      this.#locked = true
      this.#fresh()
      return this.#commit(changes)
    } finally {
      this.#locked = false
      this.#tempToken = undefined
      lock.releaseSync()
    }
  }

  /**
   * A transaction reading `frozen`, or, under the lock, whatever this instance holds (a read
   * of the store during the transaction may swap in an equal map, indexed over our payload).
   */
  #transactionOn(frozen: EntryMap | undefined, mayCommit: boolean): BackendTransaction {
    const state = () => this.#live(frozen ?? this.#cache)
    let committed = false
    return {
      get: (key) => state().get(key),
      has: (key) => state().has(key),
      size: () => state().size,
      keys: (query) => keysIn(state(), query),
      entries: (query) => entriesIn(state(), query),
      commit: (changes) => {
        if (!mayCommit) throw new ReadOnlyError(this.file, 'commit')
        if (committed) throw new Error('commit() twice in one transaction')
        committed = true
        return { committed: true, results: this.#commit(changes) }
      },
    }
  }

  /** Under the lock: applies `changes` to the loaded state and writes the result. */
  #commit(changes: readonly Change[]): ChangeResult[] {
    // One time for the whole commit: what expired is gone before the changes apply (a set of an
    // expired key is the set of an absent one), and none of it is written.
    const now = Date.now()
    const base = this.#live(this.#cache, now)
    const overlay = new Overlay(base)
    const results = applyChanges(overlay, changes)
    dropExpiredSets(overlay, changes, now)
    if (overlay.hasChanges) {
      this.#write(overlay)
      // Before applyTo(), which changes the cache in place: it still holds the old entries.
      const reported = this.#feed.active ? changesOfCommit(base, changes) : undefined
      overlay.applyTo(base)
      this.#expiries.trackChanges(changes)
      if (reported !== undefined) this.#feed.emit(reported)
    }
    return results
  }

  /**
   * The loaded state, reloaded first if another process committed since. Takes no lock.
   * `full`: check without trusting the status byte alone, as under the lock.
   */
  #fresh(full = false): EntryMap {
    if (this.#failure !== undefined) throw this.#failure
    const adoptable = this.#adoptable
    const reloaded = this.#version.refresh(this.#locked || full)
    if (reloaded !== undefined) {
      const header = reloaded.header
      if (header?.storeId !== undefined) {
        this.#lineage = { storeId: header.storeId, counter: header.counter }
      }
      this.#adoptable = undefined
      const before = this.#cache
      this.#cache = reloaded.map
      // Whoever noticed the new version (a read, a transaction, #watcher), watchers hear of it.
      if (this.#feed.active) this.#feed.emit(diffStates(before, reloaded.map))
    } else if (adoptable !== undefined) {
      this.#adoptable = undefined
      // Still our own commit on disk: the same state, now indexed over its payload.
      this.#cache = new PayloadMap(adoptable)
    }
    return this.#live(this.#cache)
  }

  /**
   * `map` without what expired by `now` (by default the clock, read only when something may
   * have expired). The entries are removed from the map itself: they count nowhere any more,
   * and a PayloadMap that lost records leaves them out of the next payload it encodes.
   */
  #live(map: EntryMap, now?: number): EntryMap {
    if (this.#expiriesOf !== map) {
      this.#expiries = new ExpiryQueue(expiriesOf(map))
      this.#expiriesOf = map
    }
    return this.#expiries.purge(map, now)
  }

  /**
   * Writes `entries` as the new version of the file. With `sealWith`, under that keyring's
   * current key (rekey); this instance can read the result only if its own keyring accepts it.
   */
  #write(entries: Overlay): void {
    if (this.#failure !== undefined) throw this.#failure
    const token = this.#tempToken
    if (token === undefined) throw new Error('a commit outside a transaction, or twice in one')
    this.#tempToken = undefined
    // Whatever happens now, an older payload no longer describes the map.
    this.#adoptable = undefined
    // Encode before touching the disk: an encoding failure leaves nothing behind. A commit on
    // top of a loaded map copies the loaded payload around the changed records.
    const payload = encodeOverlay(entries)
    const reindex = worthReindexing(entries, payload)
    // The refresh under the lock made #lineage describe the file at the path, or the last one
    // seen there when it is missing: the new commit continues that store (a new one when none
    // was seen, or the file is in version 1 or 2).
    const { keys, kdf } = (this.#options.sealWith ?? this.#options.keyring).sealing()
    const seen = this.#lineage
    // A passphrase's parameters live in the version 3 header: such a store is always version 3.
    const formatVersion = seen !== undefined || kdf !== undefined ? 3 : this.#options.formatVersion
    const lineage =
      formatVersion === 3
        ? { storeId: seen?.storeId ?? newStoreId(), counter: (seen?.counter ?? 0n) + 1n }
        : undefined
    if (lineage !== undefined && lineage.counter > MAX_COUNTER) {
      throw new CorruptFileError(this.file, 'its commit counter is at its maximum, 2^64 - 1')
    }
    const sealed = seal(keys, payload, {
      compress: this.#options.compress,
      formatVersion,
      storeId: lineage?.storeId,
      counter: lineage?.counter,
      kdf,
    })
    this.#committer.write(token, sealed.parts, formatVersion, () => {
      // Published: this store's newest commit is ours, whatever happens next.
      if (lineage !== undefined) this.#lineage = lineage
    })
    if (reindex) this.#adoptable = payload
  }

  close(): void {
    this.#feed.close()
    this.#version.close()
    this.#adoptable = undefined
    this.#lineage = undefined
    this.#failure = undefined
    this.#committer.close()
    this.#cache = new Map()
    this.#expiries = new ExpiryQueue()
    this.#expiriesOf = undefined
    this.#lock?.close()
  }
}
