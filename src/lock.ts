import * as fs from 'node:fs'
import { constants, type Stats } from 'node:fs'
import { createRequire } from 'node:module'
import { setTimeout as sleep } from 'node:timers/promises'
import type * as ProperLockfile from 'proper-lockfile'
import {
  InvalidOptionError,
  InvalidPathError,
  LockCompromisedError,
  LockModeMismatchError,
  LockTimeoutError,
} from './store/errors.js'
import { closeQuietly, type FileSystem, readFully, writeFully } from './backends/file/fsio.js'
import type { LockMode } from './store/options.js'

/** What the last holder of the lock wrote into `<file>.lock`: who it is and which temp file it uses. */
export interface LockHolder {
  pid: number
  /** 8 random bytes as 16 hex digits: the commit's temp file is `<file>.<token>.tmp`. */
  token: string
}

const RECORD_MAGIC = 0x41534c4b // "ASLK"
const RECORD_SIZE = 16

/** O_NOFOLLOW is 0 where the platform has none (Windows, which has no such links to follow either). */
const NOFOLLOW = constants.O_NOFOLLOW ?? 0
const LOCKFILE_FLAGS = constants.O_RDWR | constants.O_CREAT | NOFOLLOW

/** Why an opened lockfile must not be used, or undefined when it is fine. */
function lockfileProblem(stats: Stats): string | undefined {
  if (!stats.isFile()) return 'is not a regular file'
  // geteuid is missing on Windows, where there is no uid to compare.
  const euid = process.geteuid?.()
  if (euid !== undefined && stats.uid !== euid) {
    return `is owned by uid ${stats.uid}, not by this process's user (uid ${euid})`
  }
  if (stats.nlink !== 1) return `has ${stats.nlink} hard links, so it is also another file`
  return undefined
}

/**
 * `<file>.lock`: a regular file, mode 0600, never deleted. In flock mode it is the file that is
 * locked; in both modes it holds a 16-byte record of the current holder (see docs/FORMAT.md).
 */
export class LockRecordFile {
  readonly path: string
  readonly #io: FileSystem
  #fd: number | undefined
  /** The inode our descriptor refers to: fixed for the descriptor's lifetime, so read once. */
  #inode: { dev: number; ino: number } | undefined

  constructor(io: FileSystem, path: string) {
    this.#io = io
    this.path = path
  }

  /**
   * Each acquisition writes the record at offset 0, so the open must never follow a link
   * someone planted at this name: through a symbolic link it would overwrite the start of any
   * file this process may write, and through a dangling one create a new file. O_NOFOLLOW
   * refuses a link; fstat then checks that what we opened (or created) is a plain file of our
   * own with no other name, which rules out a hard link to someone else's file.
   */
  get fd(): number {
    if (this.#fd === undefined) {
      let fd: number
      try {
        fd = this.#io.openSync(this.path, LOCKFILE_FLAGS, 0o600)
      } catch (error) {
        const code = (error as { code?: string }).code
        if (code === 'ELOOP') throw this.#unsafe('is a symbolic link', error)
        if (code === 'EISDIR') throw this.#unsafe('is a directory', error)
        if (code === 'EACCES' || code === 'EPERM') {
          // Another user's file at this name is refused as the check below refuses one we could
          // open; a directory we may not write, or a lockfile of ours we may not, stays EACCES.
          const owner = this.#io.lstatSync(this.path)?.uid
          if (owner !== undefined && owner !== process.geteuid?.()) {
            throw this.#unsafe(`is owned by uid ${owner}, not by this process's user`, error)
          }
        }
        throw error
      }
      try {
        const stats = this.#io.fstatSync(fd)
        const problem = lockfileProblem(stats)
        if (problem !== undefined) throw this.#unsafe(problem)
        this.#inode = { dev: stats.dev, ino: stats.ino }
      } catch (error) {
        closeQuietly(this.#io, fd)
        throw error
      }
      this.#fd = fd
    }
    return this.#fd
  }

  #unsafe(problem: string, cause?: unknown): InvalidPathError {
    const store = this.path.endsWith('.lock') ? this.path.slice(0, -'.lock'.length) : this.path
    return new InvalidPathError(
      store,
      `its lockfile ${this.path} ${problem}; anystore only uses a regular file it created itself there: remove it`,
      { cause },
    )
  }

  read(): LockHolder | undefined {
    const buffer = Buffer.alloc(RECORD_SIZE)
    if (readFully(this.#io, this.fd, buffer, RECORD_SIZE, 0) < RECORD_SIZE) return undefined
    if (buffer.readUInt32BE(0) !== RECORD_MAGIC) return undefined
    return { pid: buffer.readUInt32BE(4), token: buffer.toString('hex', 8, 16) }
  }

  write(holder: LockHolder): void {
    const buffer = Buffer.alloc(RECORD_SIZE)
    buffer.writeUInt32BE(RECORD_MAGIC, 0)
    buffer.writeUInt32BE(holder.pid, 4)
    buffer.write(holder.token, 8, 'hex')
    writeFully(this.#io, this.fd, buffer, 0)
  }

  /** Whether our descriptor still refers to the file at `path` (not deleted or replaced). */
  isCurrent(): boolean {
    const ours = this.#inode
    if (this.#fd === undefined || ours === undefined) return false
    const atPath = this.#io.statSync(this.path)
    return atPath !== undefined && atPath.ino === ours.ino && atPath.dev === ours.dev
  }

  close(): void {
    closeQuietly(this.#io, this.#fd)
    this.#fd = undefined
    this.#inode = undefined
  }
}

/** An exclusive lock shared by every process (and thread) that uses the same store file. */
export interface CrossProcessLock {
  /** The mode actually in use (`'auto'` resolved). */
  readonly mode: 'flock' | 'proper-lockfile'
  readonly record: LockRecordFile
  /** Waits until the lock is ours, or throws LockTimeoutError after `timeoutMs`. */
  acquire(timeoutMs: number): Promise<void>
  /**
   * acquire() without giving up the thread: for the exit flush of write-behind, where no timer
   * or promise runs any more. Sleeps between tries (Atomics.wait), at most `timeoutMs` in all.
   * A lock this instance already holds (a transaction the exit cut short) counts as acquired.
   */
  acquireSync(timeoutMs: number): void
  /** Throws LockCompromisedError if the lock was lost since `acquire`. Call right before publishing. */
  assertHeld(): void
  release(): Promise<void>
  /** release() of a lock taken with acquireSync(). */
  releaseSync(): void
  close(): void
}

type FlockSync = (fd: number, flags: 'exnb' | 'un') => void

/** proper-lockfile's lock directory for a store file. */
function lockDirOf(target: string): string {
  return `${target}.plock`
}

/**
 * The file-system calls proper-lockfile makes, with its mkdir creating the lock directory 0700
 * (it passes no mode, so the umask alone would decide, and under umask 0 the directory would
 * be writable by everyone). The mode is given to mkdir itself, so there is no moment at which
 * the directory is open to others. One object for every lock: proper-lockfile caches the
 * mtime precision it probed on it.
 */
const lockDirFs = {
  mkdir: (path: string, callback: (error: NodeJS.ErrnoException | null) => void) =>
    fs.mkdir(path, { mode: 0o700 }, (error) => callback(error)),
  rmdir: fs.rmdir,
  rmdirSync: fs.rmdirSync,
  stat: fs.stat,
  utimes: fs.utimes,
  realpath: fs.realpath,
  // What proper-lockfile's lockSync() calls instead (acquireSync).
  mkdirSync: (path: string) => fs.mkdirSync(path, { mode: 0o700 }),
  statSync: fs.statSync,
  utimesSync: fs.utimesSync,
  realpathSync: fs.realpathSync,
}

let properLockfile: typeof ProperLockfile | undefined

/**
 * proper-lockfile, loaded by the first lock of its mode: it loads graceful-fs, which patches
 * the process's `fs` module, and a host that uses flock (or no file store) must not pay for
 * that or see it.
 */
function loadProperLockfile(): typeof ProperLockfile {
  properLockfile ??= createRequire(import.meta.url)('proper-lockfile') as typeof ProperLockfile
  return properLockfile
}

let flockSync: FlockSync | null | undefined

/** fs-ext is an optional native addon: `null` when it is not installed or did not build. */
export function loadFlock(): FlockSync | null {
  if (flockSync === undefined) {
    try {
      const fsExt = createRequire(import.meta.url)('fs-ext') as { flockSync: FlockSync }
      flockSync = fsExt.flockSync
    } catch {
      flockSync = null
    }
  }
  return flockSync
}

/** Asked only by the proper-lockfile mode: loading node:worker_threads costs a fresh process several ms. */
function isMainThread(): boolean {
  const workers = createRequire(import.meta.url)('node:worker_threads') as { isMainThread: boolean }
  return workers.isMainThread
}

/**
 * fs-ext for the proper-lockfile side's probe, where loading it is safe: always on the main
 * thread; in a worker thread only if this thread loaded it already (a flock-mode store did).
 * fs-ext 2.1.1 keeps V8 handles in process-wide statics that each load resets, so loading it
 * in worker threads that come and go aborts the process (`Check failed: node->IsInUse()`):
 * proper-lockfile users must not start doing that just to probe.
 */
function flockForProbe(): FlockSync | null {
  return isMainThread() ? loadFlock() : (flockSync ?? null)
}

/**
 * Waits between attempts: a couple of immediate retries (the holder of a short commit is often
 * about to release), then exponential backoff with jitter up to 8 ms, so waiters do not
 * retry in lockstep.
 */
export async function backoff(attempt: number): Promise<void> {
  if (attempt < 2) {
    await new Promise<void>((resolve) => setImmediate(resolve))
    return
  }
  await sleep(backoffMs(attempt))
}

function backoffMs(attempt: number): number {
  const ceiling = Math.min(8, 0.25 * 2 ** (attempt - 2))
  return ceiling / 2 + Math.random() * (ceiling / 2)
}

const sleeper = new Int32Array(new SharedArrayBuffer(4))

/** backoff() for acquireSync(): the thread sleeps, since nothing else may run any more. */
function backoffSync(attempt: number): void {
  Atomics.wait(sleeper, 0, 0, attempt < 2 ? 0.05 : backoffMs(attempt))
}

function isBusy(error: unknown): boolean {
  const code = (error as { code?: string }).code
  return code === 'EAGAIN' || code === 'EWOULDBLOCK'
}

/**
 * flock(2) on `<file>.lock` through fs-ext's `flockSync(fd, 'exnb')`, retried with backoff.
 * The blocking and async forms are never used: each async waiter parks a libuv thread (four
 * of them starve every fs call in the process) and the async form aborts inside worker threads.
 * The lockfile is opened once and kept; it is never deleted, because deleting it while another
 * process holds or waits for it would let two processes believe they hold the lock.
 */
export class FlockLock implements CrossProcessLock {
  readonly mode = 'flock' as const
  readonly record: LockRecordFile
  readonly #flock: FlockSync
  readonly #io: FileSystem
  readonly #target: string
  readonly #lockDir: string
  readonly #staleMs: number
  #held = false

  constructor(
    record: LockRecordFile,
    flock: FlockSync,
    io: FileSystem,
    target: string,
    staleMs: number,
  ) {
    this.record = record
    this.#flock = flock
    this.#io = io
    this.#target = target
    this.#lockDir = lockDirOf(target)
    this.#staleMs = staleMs
  }

  async acquire(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs
    for (let attempt = 0; !this.#attempt(deadline, timeoutMs); attempt++) await backoff(attempt)
  }

  acquireSync(timeoutMs: number): void {
    const deadline = performance.now() + timeoutMs
    for (let attempt = 0; !this.#attempt(deadline, timeoutMs); attempt++) backoffSync(attempt)
  }

  /**
   * One try of acquire() and acquireSync(): true once the lock is held, false to wait and try
   * again, LockTimeoutError once the deadline has passed.
   */
  #attempt(deadline: number, timeoutMs: number): boolean {
    if (this.#tryLock()) {
      try {
        this.#refuseMixedModes()
      } catch (error) {
        // The caller gets no lock to release: never keep one it does not know it holds.
        this.#unlock()
        throw error
      }
      return true
    }
    if (performance.now() >= deadline) {
      throw new LockTimeoutError(this.record.path, timeoutMs, this.record.read()?.pid)
    }
    return false
  }

  #tryLock(): boolean {
    try {
      this.#flock(this.record.fd, 'exnb')
    } catch (error) {
      if (isBusy(error)) return false
      throw error
    }
    // The lock belongs to the inode we opened. If the lockfile was deleted or replaced in the
    // meantime, others lock the new file: drop ours and start over on the current one.
    let current: boolean
    try {
      current = this.record.isCurrent()
    } catch (error) {
      this.#flock(this.record.fd, 'un')
      throw error
    }
    if (!current) {
      this.record.close()
      return false
    }
    this.#held = true
    return true
  }

  /**
   * Runs holding flock, before anything is read or written (docs/DESIGN.md, "Mixed lock
   * modes"). flock held is our marker: a proper-lockfile user that takes its lock from now on
   * probes it and backs off. One that holds its lock already has its directory in place: we
   * back off. One lstat of a name that normally does not exist.
   */
  #refuseMixedModes(): void {
    const dir = this.#io.lstatSync(this.#lockDir)
    // Not refreshed for staleMs: its holder was killed, and proper-lockfile users would take
    // it over too.
    if (dir === undefined || Date.now() - dir.mtimeMs > this.#staleMs) return
    this.#unlock()
    throw new LockModeMismatchError(
      this.#target,
      'flock',
      `its lock directory ${this.#lockDir} is held`,
    )
  }

  assertHeld(): void {
    if (!this.#held) throw new LockCompromisedError(this.record.path, 'the lock is not held')
    if (!this.record.isCurrent()) {
      throw new LockCompromisedError(this.record.path, 'the lockfile was deleted or replaced')
    }
  }

  async release(): Promise<void> {
    this.#unlock()
  }

  releaseSync(): void {
    this.#unlock()
  }

  #unlock(): void {
    if (!this.#held) return
    this.#held = false
    try {
      this.#flock(this.record.fd, 'un')
    } catch {
      // Unlocking a valid fd does not fail; if it did, closing the fd releases the lock.
      this.record.close()
    }
  }

  close(): void {
    this.#held = false
    this.record.close()
  }
}

/**
 * The fallback where flock is unavailable: proper-lockfile's lock directory `<file>.plock`
 * (not `<file>.lock`, which is the flock file and the lock record). Its mtime is refreshed
 * while held; a holder that stops refreshing for `staleMs` (killed, or stalled) loses the lock.
 * proper-lockfile's default reaction to that is to throw from a timer, which kills the process;
 * here it only marks the lock compromised, and the commit in progress is abandoned.
 */
export class ProperLockfileLock implements CrossProcessLock {
  readonly mode = 'proper-lockfile' as const
  readonly record: LockRecordFile
  readonly #target: string
  readonly #lockDir: string
  readonly #staleMs: number
  /** Asynchronous after acquire(), synchronous after acquireSync(). */
  #release: (() => unknown) | undefined
  #compromised: Error | undefined

  constructor(record: LockRecordFile, target: string, staleMs: number) {
    this.record = record
    this.#target = target
    this.#lockDir = lockDirOf(target)
    this.#staleMs = staleMs
  }

  async acquire(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs
    for (let attempt = 0; ; attempt++) {
      let release: (() => Promise<void>) | undefined
      try {
        this.#compromised = undefined
        release = await loadProperLockfile().lock(this.#target, {
          lockfilePath: this.#lockDir,
          realpath: false,
          retries: 0,
          stale: this.#staleMs,
          fs: lockDirFs,
          onCompromised: (error) => {
            this.#compromised = error
          },
        })
      } catch (error) {
        if ((error as { code?: string }).code !== 'ELOCKED') throw error
      }
      if (release !== undefined) {
        this.#release = release
        await this.#refuseMixedModes()
        return
      }
      if (performance.now() >= deadline) {
        throw new LockTimeoutError(this.#lockDir, timeoutMs, this.record.read()?.pid)
      }
      await backoff(attempt)
    }
  }

  acquireSync(timeoutMs: number): void {
    if (this.#release !== undefined) return
    const deadline = performance.now() + timeoutMs
    for (let attempt = 0; ; attempt++) {
      try {
        this.#compromised = undefined
        this.#release = loadProperLockfile().lockSync(this.#target, {
          lockfilePath: this.#lockDir,
          realpath: false,
          stale: this.#staleMs,
          fs: lockDirFs,
          onCompromised: (error) => {
            this.#compromised = error
          },
        })
      } catch (error) {
        if ((error as { code?: string }).code !== 'ELOCKED') throw error
      }
      if (this.#release !== undefined) {
        const problem = this.#flockProblem()
        if (problem === undefined) return
        this.releaseSync()
        throw problem
      }
      if (performance.now() >= deadline) {
        throw new LockTimeoutError(this.#lockDir, timeoutMs, this.record.read()?.pid)
      }
      backoffSync(attempt)
    }
  }

  /**
   * Runs holding the lock directory, our marker, before anything is read or written
   * (docs/DESIGN.md, "Mixed lock modes"): a flock user that locks from now on sees the
   * directory and backs off. One that holds flock already is found by trying flock ourselves
   * on the lockfile; success only means no one holds it (a lockfile left by a flock user that
   * exited is just a file), and we let go again at once. Where fs-ext is not available (see
   * flockForProbe), flock users cannot be seen from here (see "What is not detected").
   */
  async #refuseMixedModes(): Promise<void> {
    const problem = this.#flockProblem()
    if (problem === undefined) return
    // Whatever failed (a busy lockfile, or one that is unsafe to open), we hold the
    // directory and must let go of it before reporting.
    await this.release()
    throw problem
  }

  /** What the flock probe of #refuseMixedModes() found wrong, if anything. */
  #flockProblem(): unknown {
    const flock = flockForProbe()
    if (flock === null) return undefined
    try {
      flock(this.record.fd, 'exnb')
    } catch (error) {
      if (!isBusy(error)) return error
      return new LockModeMismatchError(
        this.#target,
        'proper-lockfile',
        `its lockfile ${this.record.path} is locked with flock`,
      )
    }
    flock(this.record.fd, 'un')
    return undefined
  }

  assertHeld(): void {
    if (this.#release === undefined) {
      throw new LockCompromisedError(this.#lockDir, 'the lock is not held')
    }
    if (this.#compromised !== undefined) {
      throw new LockCompromisedError(this.#lockDir, this.#compromised.message)
    }
  }

  async release(): Promise<void> {
    const release = this.#release
    this.#release = undefined
    if (release === undefined) return
    try {
      await release()
    } catch {
      // Released already because it was compromised: nothing more to do.
    }
  }

  releaseSync(): void {
    const release = this.#release
    this.#release = undefined
    try {
      release?.()
    } catch {
      // As in release().
    }
  }

  close(): void {
    this.record.close()
  }
}

export function createLock(
  mode: LockMode,
  io: FileSystem,
  target: string,
  staleMs: number,
): CrossProcessLock {
  const flock = mode === 'proper-lockfile' ? null : loadFlock()
  if (mode === 'flock' && flock === null) {
    throw new InvalidOptionError(
      "`lock: 'flock'` needs the optional dependency fs-ext, which did not load here: install it (it needs a C++ compiler) or use `lock: 'auto'`",
    )
  }
  const record = new LockRecordFile(io, `${target}.lock`)
  return flock === null
    ? new ProperLockfileLock(record, target, staleMs)
    : new FlockLock(record, flock, io, target, staleMs)
}
