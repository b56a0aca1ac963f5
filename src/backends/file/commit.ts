import type { Stats } from 'node:fs'
import { dirname } from 'node:path'
import type { CrossProcessLock } from '../../lock.js'
import type { SyncMode } from '../../store/options.js'
import { closeQuietly, type FileSystem, unlinkQuietly, writeFully } from './fsio.js'
import type { LoadedVersion } from './freshness.js'
import { createTempFile, newToken, sweepTempFiles, tempPath } from './temp-files.js'

export interface CommitterOptions {
  io: FileSystem
  /** The store file, its path already prepared. */
  file: string
  /** Undefined for a read-only store, which never locks (nor commits). */
  lock: CrossProcessLock | undefined
  sync: SyncMode
  /** The version each commit replaces, and then pins as the new one. */
  version: LoadedVersion
}

/**
 * The file work of a commit (docs/DESIGN.md, "Writing: a commit"): the sealed file goes to a temp file
 * beside the store, is synced, the version it replaces is marked, and a rename publishes it;
 * plus the lock record that names our temp file, so the next holder can remove it after a crash.
 */
export class Committer {
  readonly #io: FileSystem
  readonly #file: string
  readonly #dir: string
  readonly #lock: CrossProcessLock | undefined
  readonly #sync: SyncMode
  readonly #version: LoadedVersion
  #dirFd: number | undefined
  /** This instance's temp name token, random, drawn once: `<file>.<token>.tmp`. */
  #token: string | undefined
  /** A failed commit could not remove our temp file: the next takeover removes it. */
  #ownTempLeft = false
  #sweptTemps = false

  constructor(options: CommitterOptions) {
    this.#io = options.io
    this.#file = options.file
    this.#dir = dirname(options.file)
    this.#lock = options.lock
    this.#sync = options.sync
    this.#version = options.version
  }

  /**
   * Runs once per lock acquisition: removes the temp file a killed holder may have left (its
   * name is in the lock record), and records us as the holder with our temp name.
   * The first acquisition of each instance also sweeps the directory for older temps: while we
   * hold the lock no live writer has one. Returns the token of our temp name.
   *
   * When the record already names this instance, no one else held the lock since our last
   * acquisition (every holder writes its record before it creates a temp file), and our own
   * last commit renamed or removed its temp: then there is nothing to remove or rewrite.
   */
  takeOverRecord(): string {
    const lock = this.#lock as CrossProcessLock
    const previous = lock.record.read()
    const token = (this.#token ??= newToken())
    if (this.#ownTempLeft) {
      unlinkQuietly(this.#io, tempPath(this.#file, token))
      this.#ownTempLeft = false
    }
    if (previous?.token !== token || previous.pid !== process.pid) {
      if (previous !== undefined) {
        // Normally the holder renamed its temp away: look before unlinking, because a failing
        // unlinkSync costs more (a thrown error with a stack) than the lstat.
        const leftover = tempPath(this.#file, previous.token)
        if (this.#io.lstatSync(leftover) !== undefined) unlinkQuietly(this.#io, leftover)
      }
      lock.record.write({ pid: process.pid, token })
    }
    if (!this.#sweptTemps) {
      sweepTempFiles(this.#io, this.#file)
      this.#sweptTemps = true
    }
    return token
  }

  /**
   * Writes `parts`, a sealed file in format `formatVersion`, as the new version of the file,
   * through the temp file named by `token` (from takeOverRecord(), under the same lock).
   * `published` runs once the rename made it the version at the path, before anything that
   * can still fail; the new version is then pinned as the loaded one.
   */
  write(
    token: string,
    parts: readonly Buffer[],
    formatVersion: number,
    published: () => void,
  ): void {
    const temp = tempPath(this.#file, token)
    const io = this.#io
    const fd = createTempFile(this.#io, temp)
    try {
      let position = 0
      for (const part of parts) {
        writeFully(io, fd, part, position)
        position += part.length
      }
      if (this.#sync === 'always') io.fsyncSync(fd)
      this.#lock?.assertHeld()
      this.#version.markReplaced()
      io.renameSync(temp, this.#file)
      published()
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
      if (this.#sync === 'always') io.fsyncSync(this.#directoryFd())
    } catch (error) {
      closeQuietly(io, fd)
      this.#version.forget()
      throw error
    }
    this.#version.pin(fd, stats, formatVersion, true)
  }

  #directoryFd(): number {
    if (this.#dirFd === undefined) this.#dirFd = this.#io.openSync(this.#dir, 'r')
    return this.#dirFd
  }

  close(): void {
    closeQuietly(this.#io, this.#dirFd)
    this.#dirFd = undefined
  }
}
