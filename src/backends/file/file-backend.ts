import { constants, type Stats } from 'node:fs'
import { basename, dirname } from 'node:path'
import {
  type FileHeader,
  fillRandom,
  MAX_COUNTER,
  newStoreId,
  open,
  openSlices,
  SLICE_SIZE,
  STATUS_CURRENT,
  STATUS_SIZE,
  SUPERSEDED,
  seal,
  type WritableFormatVersion,
} from '../../crypto.js'
import {
  type AnyStoreError,
  CorruptFileError,
  FileTooLargeError,
  InvalidPathError,
  RollbackError,
  StoreReplacedError,
} from '../../store/errors.js'
import { closeQuietly, type FileSystem, readFully, unlinkQuietly, writeFully } from './fsio.js'
import { linkCountRevealsReplacement } from './link-count.js'
import type { KeyRing } from '../../store/keyring.js'
import { ReadOnlyError } from '../../store/errors.js'
import {
  type Backend,
  type BackendTransaction,
  type Change,
  type ChangeResult,
  type KeyQuery,
  matches,
} from '../backend.js'
import { applyChanges } from '../memory.js'
import { type CrossProcessLock, createLock } from '../../lock.js'
import { withPathMutex } from '../../store/mutex.js'
import type { LockMode, SyncMode } from '../../store/options.js'
import { Overlay } from '../../store/overlay.js'
import { type Entry, type EntryMap, PayloadError } from '../../format/payload.js'
import { encodeOverlay, PayloadMap } from './payload-map.js'
import type { Segments } from '../../format/segments.js'
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

/**
 * The store this instance has seen (docs/DESIGN.md, "Store identity and rollback"): the store
 * id of the last version 3 file it loaded or wrote, and the highest commit counter of that
 * store it has served or written.
 */
interface Lineage {
  storeId: Buffer
  counter: bigint
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

const TEMP_NAME = /^\.?(.+)\.([0-9a-f]{16})\.tmp$/

/** A temp file is always a new file of ours: never an existing name, never through a link. */
const TEMP_FLAGS =
  constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0)

/** 8 random bytes as 16 hex digits. */
function newToken(): string {
  const bytes = Buffer.alloc(8)
  fillRandom(bytes, 0, 8)
  return bytes.toString('hex')
}

/** What identifies one version of the file: the inode (pinned open, so never reused) plus size and mtime. */
interface Identity {
  dev: number
  ino: number
  size: number
  mtimeMs: number
  /** For the link-count check: rename over the file, link(2) and unlink(2) all change both. */
  nlink: number
  ctimeMs: number
  /** Where the status byte of this version is (format version 2), else undefined. */
  statusAt: number | undefined
  /** Whether its status byte was seen set: from then on only the fstat check is used. */
  superseded: boolean
}

function sameIdentity(stats: Stats, known: Identity): boolean {
  return (
    stats.ino === known.ino &&
    stats.dev === known.dev &&
    stats.size === known.size &&
    stats.mtimeMs === known.mtimeMs
  )
}

function identityOf(stats: Stats, statusAt: number | undefined): Identity {
  return {
    dev: stats.dev,
    ino: stats.ino,
    size: stats.size,
    mtimeMs: stats.mtimeMs,
    nlink: stats.nlink,
    ctimeMs: stats.ctimeMs,
    statusAt,
    superseded: false,
  }
}

/**
 * How long the status byte alone may vouch for a version. It tells of every anystore commit at
 * once; this bounds how long a file replaced or rewritten by some other program goes unnoticed
 * (a timer marks when the next read must check fully, so reads never read the clock).
 */
const FULL_CHECK_EVERY_MS = 100

/**
 * The fast read check (docs/DESIGN.md, "The read check in detail"): the loaded version, seen through its kept
 * descriptor, still has its one link and is otherwise untouched. A commit renames a new file
 * over it, which drops its link count to 0 and changes its ctime.
 */
function stillTheOnlyLink(pinned: Stats, known: Identity): boolean {
  return (
    pinned.nlink === 1 &&
    known.nlink === 1 &&
    pinned.ctimeMs === known.ctimeMs &&
    sameIdentity(pinned, known)
  )
}

/** Resolves the store path to the real file to replace, creating missing directories (0700). */
export function prepareStorePath(io: FileSystem, file: string, create = true): string {
  if (file.includes('\0')) {
    throw new InvalidPathError(JSON.stringify(file), 'it contains a NUL byte, which no path may')
  }
  const dir = dirname(file)
  try {
    if (create) io.mkdirSync(dir, 0o700)
  } catch (cause) {
    throw new InvalidPathError(file, `its directory cannot be created (${String(cause)})`, {
      cause,
    })
  }
  let realDir: string
  try {
    realDir = io.realpathSync(dir)
  } catch (error) {
    // Read-only: a missing directory holds no store yet, and is not created.
    if (create || (error as { code?: string }).code !== 'ENOENT') throw error
    return file
  }
  const path = `${realDir}/${basename(file)}`
  const link = io.lstatSync(path)
  if (link === undefined) return path
  if (link.isSymbolicLink()) {
    let target: Stats | undefined
    try {
      target = io.statSync(path)
    } catch (cause) {
      // ELOOP (a link cycle) and the like: no store file can live behind this link.
      throw new InvalidPathError(file, `its symbolic link cannot be followed (${String(cause)})`, {
        cause,
      })
    }
    if (target === undefined) throw new InvalidPathError(file, 'it is a dangling symbolic link')
    if (!target.isFile()) throw new InvalidPathError(file, 'its link target is not a regular file')
    // Replace the link's target, not the link: renaming over the link would turn it into a file.
    return prepareStorePath(io, io.realpathSync(path), create)
  }
  if (!link.isFile()) throw new InvalidPathError(file, 'it exists and is not a regular file')
  return path
}

function keysOf(map: EntryMap, query: KeyQuery | undefined): StoreKey[] {
  const keys = map instanceof PayloadMap ? map.keyArray() : [...map.keys()]
  return query?.prefix === undefined ? keys : keys.filter((key) => matches(key, query))
}

function* entriesOf(map: EntryMap, query: KeyQuery | undefined): Generator<[StoreKey, Entry]> {
  for (const entry of map) if (matches(entry[0], query)) yield entry
}

export class FileBackend implements Backend {
  readonly kind = 'file'
  readonly concurrency = 'exclusive'
  readonly file: string
  readonly readOnly: boolean
  /** The last state loaded or committed, decrypted: what reads answer from once it is fresh. */
  #cache: EntryMap = new Map()
  readonly #dir: string
  readonly #options: FileBackendOptions
  readonly #io: FileSystem
  /** Undefined for a read-only store, which never locks. */
  readonly #lock: CrossProcessLock | undefined
  /** The descriptor of the loaded version, kept open so its inode number cannot be reused. */
  #pinnedFd: number | undefined
  /** Whether #pinnedFd was opened for writing (its status byte can be set through it). */
  #pinnedWritable = false
  /** undefined: never loaded; null: loaded while the file did not exist. */
  #loaded: Identity | null | undefined
  #dirFd: number | undefined
  /** This instance's temp name token, random, drawn once: `<file>.<token>.tmp`. */
  #token: string | undefined
  /** Set by exclusive(), taken by the one commit it allows. */
  #tempToken: string | undefined
  /** A failed commit could not remove our temp file: the next takeover removes it. */
  #ownTempLeft = false
  #sweptTemps = false
  /**
   * The payload of our last commit when the next commits should be laid out over it (see
   * worthReindexing: the map was filled in memory, or drifted far from its loaded payload).
   * The next refresh indexes it into a PayloadMap, so later commits copy it around their
   * changes instead.
   */
  #adoptable: Buffer | undefined
  /** Whether a transaction holds the lock: its reads must not trust the status byte alone. */
  #locked = false
  /** Whether refresh() may use one fstat on the pinned descriptor instead of stat on the path. */
  readonly #linkCountCheck: boolean
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
    this.#dir = dirname(this.file)
    this.#options = options
    this.#lock = this.readOnly
      ? undefined
      : createLock(options.lock, this.#io, this.file, options.staleMs)
    this.#linkCountCheck = linkCountRevealsReplacement(this.#dir)
  }

  get location(): string {
    return this.file
  }

  /** Transactions on one path exclude each other in this process, whichever instance runs them. */
  get exclusiveScope(): unknown {
    return this.file
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
    return keysOf(this.#fresh(), query)
  }

  entries(query?: KeyQuery): Iterable<[StoreKey, Entry]> {
    return entriesOf(this.#fresh(), query)
  }

  snapshot(): Iterable<[StoreKey, Entry]> {
    return this.#cache
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
        this.#takeOverRecord()
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
   * A transaction reading `frozen`, or, under the lock, whatever this instance holds (a read
   * of the store during the transaction may swap in an equal map, indexed over our payload).
   */
  #transactionOn(frozen: EntryMap | undefined, mayCommit: boolean): BackendTransaction {
    const state = () => frozen ?? this.#cache
    let committed = false
    return {
      get: (key) => state().get(key),
      has: (key) => state().has(key),
      size: () => state().size,
      keys: (query) => keysOf(state(), query),
      entries: (query) => entriesOf(state(), query),
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
    const base = this.#cache
    const overlay = new Overlay(base)
    const results = applyChanges(overlay, changes)
    if (overlay.hasChanges) {
      this.#write(overlay)
      overlay.applyTo(base)
    }
    return results
  }

  /** The loaded state, reloaded first if another process committed since. Takes no lock. */
  #fresh(): EntryMap {
    if (this.#failure !== undefined) throw this.#failure
    const adoptable = this.#adoptable
    const fresh = this.#refresh()
    if (fresh !== undefined) {
      this.#adoptable = undefined
      this.#cache = fresh
    } else if (adoptable !== undefined) {
      this.#adoptable = undefined
      // Still our own commit on disk: the same state, now indexed over its payload.
      this.#cache = new PayloadMap(adoptable)
    }
    return this.#cache
  }

  #refresh(): EntryMap | undefined {
    const known = this.#loaded
    if (known && this.#linkCountCheck && this.#pinnedFd !== undefined) {
      if (this.#statusSaysCurrent(known, this.#pinnedFd)) return undefined
      if (stillTheOnlyLink(this.#io.fstatSync(this.#pinnedFd), known)) {
        this.#verified()
        return undefined
      }
    }
    const stats = this.#io.statSync(this.file)
    if (stats === undefined) {
      if (this.#loaded === null) return undefined
      this.#missing()
      return new Map()
    }
    if (known && sameIdentity(stats, known)) {
      // Same inode, so same version (a hard link or chmod only changed nlink or ctime): take
      // those as they are now, so the next read can use the fast check again.
      this.#loaded = { ...identityOf(stats, known.statusAt), superseded: known.superseded }
      this.#verified()
      return undefined
    }
    // Changed: until a load succeeds, the status byte of the old version vouches for nothing.
    if (known) known.superseded = true
    return this.#load()
  }

  /**
   * The fastest read check (docs/DESIGN.md, "The status byte"): one pread of the loaded
   * version's status byte, which every anystore commit sets before renaming a new version over
   * it. Not used inside exclusive(), where a commit is about to be based on what was loaded,
   * nor once the byte was seen set, nor once a full check is due.
   */
  #statusSaysCurrent(known: Identity, fd: number): boolean {
    if (known.statusAt === undefined || known.superseded || this.#locked) return false
    if (this.#fullCheckDue) return false
    const status = this.#statusByte
    if (this.#io.readSync(fd, status, 0, 1, known.statusAt) === 1 && status[0] === STATUS_CURRENT) {
      return true
    }
    known.superseded = true
    return false
  }

  readonly #statusByte = Buffer.alloc(1)
  #fullCheckDue = true
  #fullCheckTimer: NodeJS.Timeout | undefined

  /** A full check (or a load or commit) just found the loaded version current. */
  #verified(): void {
    this.#fullCheckDue = false
    if (this.#fullCheckTimer !== undefined) return
    this.#fullCheckTimer = setTimeout(() => {
      this.#fullCheckTimer = undefined
      this.#fullCheckDue = true
    }, FULL_CHECK_EVERY_MS)
    this.#fullCheckTimer.unref()
  }

  #load(): EntryMap {
    let opened: { fd: number; writable: boolean }
    try {
      opened = this.#openForMarking()
    } catch (error) {
      if ((error as { code?: string }).code !== 'ENOENT') throw error
      this.#missing()
      return new Map()
    }
    let fd: number | undefined = opened.fd
    try {
      const stats = this.#io.fstatSync(fd)
      if (!stats.isFile()) throw new InvalidPathError(this.file, 'it is not a regular file')
      if (stats.size > this.#options.maxFileSize) {
        throw new FileTooLargeError(this.file, stats.size, this.#options.maxFileSize)
      }
      const { payload, header } = this.#decrypt(fd, stats.size)
      this.#checkLineage(header)
      let map: PayloadMap
      try {
        map = new PayloadMap(payload)
      } catch (cause) {
        if (!(cause instanceof PayloadError)) throw cause
        throw new CorruptFileError(this.file, cause.message, { cause })
      }
      this.#pin(fd, stats, header.version, opened.writable)
      if (header.storeId !== undefined) {
        this.#lineage = { storeId: header.storeId, counter: header.counter }
      }
      fd = undefined
      return map
    } finally {
      closeQuietly(this.#io, fd)
    }
  }

  /**
   * The file is gone: it reads as empty. The lineage stays: otherwise deleting the file, then
   * putting an old copy back once readers had seen it missing, would be an undetected rollback.
   */
  #missing(): void {
    this.#unpin()
    this.#loaded = null
  }

  /**
   * Refuses a loaded file that is another store, or an older commit of this one, than what
   * this instance already served or wrote; the refusal sticks (#failure). Runs only when a new
   * version is loaded, never on the read path of an unchanged store. A version 1 or 2 file
   * carries no id or counter: it is accepted only while no version 3 file was seen, because
   * after one it can only be older (every process that can read version 3 keeps writing it).
   */
  #checkLineage(header: FileHeader): void {
    const seen = this.#lineage
    if (seen === undefined) return
    if (header.storeId === undefined) {
      this.#failure = new RollbackError(this.file, seen.counter, undefined, header.version)
    } else if (!header.storeId.equals(seen.storeId)) {
      this.#failure = new StoreReplacedError(
        this.file,
        seen.storeId.toString('hex'),
        header.storeId.toString('hex'),
      )
    } else if (header.counter < seen.counter) {
      this.#failure = new RollbackError(this.file, seen.counter, header.counter, header.version)
    }
    if (this.#failure !== undefined) throw this.#failure
  }

  /**
   * Opens the store file to load it, for reading and writing where permitted: whoever later
   * commits over this version sets its status byte through this descriptor. Read-only where
   * writing is refused; a commit then fails before replacing the file (see #markReplaced).
   */
  #openForMarking(): { fd: number; writable: boolean } {
    try {
      return { fd: this.#io.openSync(this.file, 'r+'), writable: true }
    } catch (error) {
      const code = (error as { code?: string }).code
      if (code !== 'EACCES' && code !== 'EPERM' && code !== 'EROFS') throw error
    }
    return { fd: this.#io.openSync(this.file, 'r'), writable: false }
  }

  /** The plaintext of the file open at `fd`: a small file in one read, a large one slice by slice. */
  #decrypt(fd: number, size: number): { payload: Buffer | Segments; header: FileHeader } {
    const io = this.#io
    if (size > SLICE_SIZE) {
      const readAt = (buffer: Buffer, length: number, position: number) =>
        readFully(io, fd, buffer, length, position)
      return openSlices(this.file, this.#options.keyring, readAt, size, this.#options.maxFileSize)
    }
    const bytes = Buffer.allocUnsafe(size)
    const read = readFully(io, fd, bytes, size, 0)
    return open(this.file, this.#options.keyring, bytes.subarray(0, read), {
      inPlace: true,
      maxPayloadSize: this.#options.maxFileSize,
    })
  }

  #pin(fd: number, stats: Stats, version: number, writable: boolean): void {
    this.#unpin()
    this.#pinnedFd = fd
    this.#pinnedWritable = writable
    this.#loaded = identityOf(stats, version >= 2 ? stats.size - STATUS_SIZE : undefined)
    this.#verified()
  }

  /**
   * Sets the status byte of the version about to be replaced, so that every reader still
   * holding it sees the commit with one pread. Runs under the lock, after the refresh that
   * made the loaded version the one at the path. A version 1 file has no status byte: its
   * readers use the fstat check. Throws (and the commit with it) where the file may not be
   * written: replacing it unmarked would leave its readers unaware.
   */
  #markReplaced(): void {
    const known = this.#loaded
    if (!known || known.statusAt === undefined || this.#pinnedFd === undefined) return
    const io = this.#io
    let fd = this.#pinnedFd
    if (!this.#pinnedWritable) {
      // Loaded read-only: open the path again for writing, which fails (and the commit with it)
      // where the file may not be written. Never through a link, and only if the path still
      // holds the version loaded under this lock: the byte must not land in another file.
      try {
        fd = io.openSync(this.file, constants.O_RDWR | (constants.O_NOFOLLOW ?? 0))
      } catch (error) {
        if ((error as { code?: string }).code !== 'ELOOP') throw error
        throw new InvalidPathError(
          this.file,
          'a symbolic link was put at its path while this commit held the lock; nothing was written',
          { cause: error },
        )
      }
      const now = io.fstatSync(fd)
      if (now.dev !== known.dev || now.ino !== known.ino) {
        closeQuietly(io, fd)
        throw new InvalidPathError(
          this.file,
          'another file was put at its path while this commit held the lock; nothing was written',
        )
      }
    }
    try {
      writeFully(io, fd, Buffer.of(SUPERSEDED), known.statusAt)
    } finally {
      if (fd !== this.#pinnedFd) closeQuietly(io, fd)
    }
  }

  #unpin(): void {
    const fd = this.#pinnedFd
    this.#pinnedFd = undefined
    if (fd === undefined) return
    // Usually the last descriptor of a replaced version: closing it frees the file, which
    // need not hold up the commit or read that made it obsolete.
    if (this.#io.closeInBackground) this.#io.closeInBackground(fd)
    else closeQuietly(this.#io, fd)
  }

  /**
   * Runs once per lock acquisition: removes the temp file a killed holder may have left (its
   * name is in the lock record), and records us as the holder with our temp name.
   * The first acquisition of each instance also sweeps the directory for older temps: while we
   * hold the lock no live writer has one.
   *
   * When the record already names this instance, no one else held the lock since our last
   * acquisition (every holder writes its record before it creates a temp file), and our own
   * last commit renamed or removed its temp: then there is nothing to remove or rewrite.
   */
  #takeOverRecord(): void {
    const lock = this.#lock as CrossProcessLock
    const previous = lock.record.read()
    const token = (this.#token ??= newToken())
    if (this.#ownTempLeft) {
      unlinkQuietly(this.#io, this.#tempPath(token))
      this.#ownTempLeft = false
    }
    if (previous?.token !== token || previous.pid !== process.pid) {
      if (previous !== undefined) {
        // Normally the holder renamed its temp away: look before unlinking, because a failing
        // unlinkSync costs more (a thrown error with a stack) than the lstat.
        const leftover = this.#tempPath(previous.token)
        if (this.#io.lstatSync(leftover) !== undefined) unlinkQuietly(this.#io, leftover)
      }
      lock.record.write({ pid: process.pid, token })
    }
    if (!this.#sweptTemps) {
      this.#sweepTemps()
      this.#sweptTemps = true
    }
    this.#tempToken = token
  }

  #sweepTemps(): void {
    const name = basename(this.file)
    for (const entry of this.#io.readdirSync(this.#dir)) {
      const match = TEMP_NAME.exec(entry)
      if (match && match[1] === name) unlinkQuietly(this.#io, `${this.#dir}/${entry}`)
    }
  }

  #tempPath(token: string): string {
    return `${this.file}.${token}.tmp`
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
    const temp = this.#tempPath(token)
    const io = this.#io
    const fd = this.#createTemp(temp)
    try {
      let position = 0
      for (const part of sealed.parts) {
        writeFully(io, fd, part, position)
        position += part.length
      }
      if (this.#options.sync === 'always') io.fsyncSync(fd)
      this.#lock?.assertHeld()
      this.#markReplaced()
      io.renameSync(temp, this.file)
      // Published: this store's newest commit is ours, whatever happens next.
      if (lineage !== undefined) this.#lineage = lineage
    } catch (error) {
      closeQuietly(io, fd)
      try {
        io.unlinkSync(temp)
      } catch (unlinkError) {
        // Our temp name is reused by our next commit: remove it then, under the lock.
        if ((unlinkError as { code?: string }).code !== 'ENOENT') this.#ownTempLeft = true
      }
      throw error
    }
    // The new version is visible to everyone now. If making the rename durable fails, the
    // caller is told, and this instance forgets what it loaded so its next read reloads.
    let stats: Stats
    try {
      // After the rename, which changes the new file's ctime on some file systems.
      stats = io.fstatSync(fd)
      if (this.#options.sync === 'always') io.fsyncSync(this.#directoryFd())
    } catch (error) {
      closeQuietly(io, fd)
      this.#unpin()
      this.#loaded = undefined
      throw error
    }
    this.#pin(fd, stats, formatVersion, true)
    if (reindex) this.#adoptable = payload
  }

  /**
   * Creates our temp file. O_EXCL alone already refuses any existing name, a symbolic link
   * included (dangling or not); O_NOFOLLOW says the same thing explicitly, so that the flags
   * keep refusing links should O_EXCL ever be dropped from them. The name is this
   * instance's for its lifetime and we hold the lock, so a file already there is a temp of ours
   * that a failed commit could not remove, or was put there by someone else: either way it is
   * removed (a link itself, not its target) and the create retried once. Opened for reading
   * too: after the rename this descriptor is pinned, and read checks pread it.
   */
  #createTemp(temp: string): number {
    try {
      return this.#io.openSync(temp, TEMP_FLAGS, 0o600)
    } catch (error) {
      if ((error as { code?: string }).code !== 'EEXIST') throw error
      this.#io.unlinkSync(temp)
      return this.#io.openSync(temp, TEMP_FLAGS, 0o600)
    }
  }

  #directoryFd(): number {
    if (this.#dirFd === undefined) this.#dirFd = this.#io.openSync(this.#dir, 'r')
    return this.#dirFd
  }

  close(): void {
    clearTimeout(this.#fullCheckTimer)
    this.#fullCheckTimer = undefined
    this.#adoptable = undefined
    this.#unpin()
    this.#loaded = undefined
    this.#lineage = undefined
    this.#failure = undefined
    closeQuietly(this.#io, this.#dirFd)
    this.#dirFd = undefined
    this.#cache = new Map()
    this.#lock?.close()
  }
}
