import { constants, type Stats } from 'node:fs'
import { dirname } from 'node:path'
import {
  type FileHeader,
  STATUS_CURRENT,
  STATUS_SIZE,
  SUPERSEDED,
} from '../../format/header.js'
import type { EntryMap } from '../../format/payload.js'
import type { Segments } from '../../format/segments.js'
import { checkFileSize, entriesOf, open, openSlices, SLICE_SIZE } from '../../format/store-file.js'
import { InvalidPathError } from '../../store/errors.js'
import type { KeyRing } from '../../store/keyring.js'
import { closeQuietly, type FileSystem, readFully, writeFully } from './fsio.js'
import { linkCountRevealsReplacement } from './link-count.js'

/** What identifies one version of the file: the inode (pinned open, so never reused) plus size and mtime. */
export interface Identity {
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

export function sameIdentity(stats: Stats, known: Identity): boolean {
  return (
    stats.ino === known.ino &&
    stats.dev === known.dev &&
    stats.size === known.size &&
    stats.mtimeMs === known.mtimeMs
  )
}

export function identityOf(stats: Stats, statusAt: number | undefined): Identity {
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
export const FULL_CHECK_EVERY_MS = 100

/**
 * The fast read check (docs/DESIGN.md, "The read check in detail"): the loaded version, seen through its kept
 * descriptor, still has its one link and is otherwise untouched. A commit renames a new file
 * over it, which drops its link count to 0 and changes its ctime.
 */
export function stillTheOnlyLink(pinned: Stats, known: Identity): boolean {
  return (
    pinned.nlink === 1 &&
    known.nlink === 1 &&
    pinned.ctimeMs === known.ctimeMs &&
    sameIdentity(pinned, known)
  )
}

/**
 * A file newly loaded by a refresh: its entries, and its header (undefined when the file was
 * missing, which reads as an empty store).
 */
export interface Reloaded {
  map: EntryMap
  header: FileHeader | undefined
}

export interface LoadedVersionOptions {
  io: FileSystem
  /** The store file, its path already prepared. */
  file: string
  /** Opens files written under any of its keys. */
  keyring: KeyRing
  maxFileSize: number
  /**
   * Runs on the header of each version loaded, after decryption and before its entries are
   * read; throws to refuse the file (the store's lineage check).
   */
  vet: (header: FileHeader) => void
}

/**
 * The version of the store file this instance loaded or committed last, pinned open, and the
 * checks that tell whether it is still the one at the path: the status byte, the link count,
 * and stat(2) on the path (docs/DESIGN.md, "The read check in detail").
 */
export class LoadedVersion {
  readonly #io: FileSystem
  readonly #file: string
  readonly #keyring: KeyRing
  readonly #maxFileSize: number
  readonly #vet: (header: FileHeader) => void
  /** Whether refresh() may use one fstat on the pinned descriptor instead of stat on the path. */
  readonly #linkCountCheck: boolean
  /** The descriptor of the loaded version, kept open so its inode number cannot be reused. */
  #pinnedFd: number | undefined
  /** Whether #pinnedFd was opened for writing (its status byte can be set through it). */
  #pinnedWritable = false
  /** undefined: never loaded; null: loaded while the file did not exist. */
  #loaded: Identity | null | undefined

  constructor(options: LoadedVersionOptions) {
    this.#io = options.io
    this.#file = options.file
    this.#keyring = options.keyring
    this.#maxFileSize = options.maxFileSize
    this.#vet = options.vet
    this.#linkCountCheck = linkCountRevealsReplacement(dirname(options.file))
  }

  /**
   * Undefined while the loaded version is still the one at the path; otherwise the file now
   * there, loaded and pinned (an empty map when it is missing). `locked`: a transaction holds
   * the lock, and its reads must not trust the status byte alone.
   */
  refresh(locked: boolean): Reloaded | undefined {
    const known = this.#loaded
    if (known && this.#linkCountCheck && this.#pinnedFd !== undefined) {
      if (this.#statusSaysCurrent(known, this.#pinnedFd, locked)) return undefined
      if (stillTheOnlyLink(this.#io.fstatSync(this.#pinnedFd), known)) {
        this.#verified()
        return undefined
      }
    }
    const stats = this.#io.statSync(this.#file)
    if (stats === undefined) {
      if (this.#loaded === null) return undefined
      this.#missing()
      return { map: new Map(), header: undefined }
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
  #statusSaysCurrent(known: Identity, fd: number, locked: boolean): boolean {
    if (known.statusAt === undefined || known.superseded || locked) return false
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

  #load(): Reloaded {
    let opened: { fd: number; writable: boolean }
    try {
      opened = this.#openForMarking()
    } catch (error) {
      if ((error as { code?: string }).code !== 'ENOENT') throw error
      this.#missing()
      return { map: new Map(), header: undefined }
    }
    let fd: number | undefined = opened.fd
    try {
      const stats = this.#io.fstatSync(fd)
      if (!stats.isFile()) throw new InvalidPathError(this.#file, 'it is not a regular file')
      checkFileSize(this.#file, stats.size, this.#maxFileSize)
      const { payload, header } = this.#decrypt(fd, stats.size)
      this.#vet(header)
      const map = entriesOf(this.#file, payload)
      this.pin(fd, stats, header.version, opened.writable)
      fd = undefined
      return { map, header }
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
   * Opens the store file to load it, for reading and writing where permitted: whoever later
   * commits over this version sets its status byte through this descriptor. Read-only where
   * writing is refused; a commit then fails before replacing the file (see markReplaced()).
   */
  #openForMarking(): { fd: number; writable: boolean } {
    try {
      return { fd: this.#io.openSync(this.#file, 'r+'), writable: true }
    } catch (error) {
      const code = (error as { code?: string }).code
      if (code !== 'EACCES' && code !== 'EPERM' && code !== 'EROFS') throw error
    }
    return { fd: this.#io.openSync(this.#file, 'r'), writable: false }
  }

  /** The plaintext of the file open at `fd`: a small file in one read, a large one slice by slice. */
  #decrypt(fd: number, size: number): { payload: Buffer | Segments; header: FileHeader } {
    const io = this.#io
    if (size > SLICE_SIZE) {
      const readAt = (buffer: Buffer, length: number, position: number) =>
        readFully(io, fd, buffer, length, position)
      return openSlices(this.#file, this.#keyring, readAt, size, this.#maxFileSize)
    }
    const bytes = Buffer.allocUnsafe(size)
    const read = readFully(io, fd, bytes, size, 0)
    return open(this.#file, this.#keyring, bytes.subarray(0, read), {
      inPlace: true,
      maxPayloadSize: this.#maxFileSize,
    })
  }

  /** Makes the version open at `fd` (loaded, or just committed) the loaded one. */
  pin(fd: number, stats: Stats, version: number, writable: boolean): void {
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
  markReplaced(): void {
    const known = this.#loaded
    if (!known || known.statusAt === undefined || this.#pinnedFd === undefined) return
    const io = this.#io
    let fd = this.#pinnedFd
    if (!this.#pinnedWritable) {
      // Loaded read-only: open the path again for writing, which fails (and the commit with it)
      // where the file may not be written. Never through a link, and only if the path still
      // holds the version loaded under this lock: the byte must not land in another file.
      try {
        fd = io.openSync(this.#file, constants.O_RDWR | (constants.O_NOFOLLOW ?? 0))
      } catch (error) {
        if ((error as { code?: string }).code !== 'ELOOP') throw error
        throw new InvalidPathError(
          this.#file,
          'a symbolic link was put at its path while this commit held the lock; nothing was written',
          { cause: error },
        )
      }
      const now = io.fstatSync(fd)
      if (now.dev !== known.dev || now.ino !== known.ino) {
        closeQuietly(io, fd)
        throw new InvalidPathError(
          this.#file,
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

  /** Forgets the loaded version, so that the next refresh loads the file again. */
  forget(): void {
    this.#unpin()
    this.#loaded = undefined
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

  close(): void {
    clearTimeout(this.#fullCheckTimer)
    this.#fullCheckTimer = undefined
    this.forget()
  }
}
