import { type FileSystem, nodeFileSystem } from '../src/backends/file/fsio.js'

/** The steps a commit (and the lock around it) takes, as seen through the `fs` seam. */
export const COMMIT_STEPS = [
  'open-lock',
  'read-lock-record',
  'write-lock-record',
  'sweep-temps',
  'open-temp',
  'write-temp',
  'fsync-temp',
  'fstat-new-file',
  'mark-replaced',
  'rename',
  'open-dir',
  'fsync-dir',
] as const
export type Step = (typeof COMMIT_STEPS)[number] | 'read-file' | 'unlink'

export function systemError(code: string, syscall: string): NodeJS.ErrnoException {
  const errnos: Record<string, number> = { ENOSPC: -28, EIO: -5, EACCES: -13, EROFS: -30 }
  return Object.assign(new Error(`${code}: injected fault, ${syscall}`), {
    code,
    errno: errnos[code] ?? -1,
    syscall,
  })
}

/**
 * node:fs behind the store's `fs` seam, with a switch: while armed, the chosen step throws
 * the chosen error code. Nothing global is patched; only the store given this object sees it.
 */
export class FaultyFileSystem implements FileSystem {
  fault: { step: Step; code: string } | undefined
  /** How many times the armed fault fired. */
  fired = 0
  /** Whether the last time it fired, the new version had already been renamed into place. */
  firedAfterRename = false
  #renamed = false
  /** With `partialWrites`, every write to a temp file writes at most this many bytes. */
  partialWrites: number | undefined
  readonly #tempFds = new Set<number>()
  readonly #lockFds = new Set<number>()
  readonly #dataFds = new Set<number>()
  /** The descriptor of the file the last rename published. */
  readonly #newFds = new Set<number>()
  readonly #dirFds = new Set<number>()
  readonly #real = nodeFileSystem

  #maybeFail(step: Step, syscall: string): void {
    if (this.fault?.step === step) {
      this.fired++
      this.firedAfterRename = this.#renamed
      throw systemError(this.fault.code, syscall)
    }
  }

  openSync(path: string, flags: string | number, mode?: number): number {
    const kind = path.endsWith('.tmp')
      ? 'temp'
      : path.endsWith('.lock')
        ? 'lock'
        : flags === 'r' && this.#real.statSync(path)?.isDirectory()
          ? 'dir'
          : 'data'
    if (kind === 'temp') {
      this.#renamed = false // a new commit starts
      this.#maybeFail('open-temp', 'open')
    }
    if (kind === 'lock') this.#maybeFail('open-lock', 'open')
    if (kind === 'dir') this.#maybeFail('open-dir', 'open')
    const fd = this.#real.openSync(path, flags, mode)
    const sets = {
      temp: this.#tempFds,
      lock: this.#lockFds,
      dir: this.#dirFds,
      data: this.#dataFds,
    }
    sets[kind].add(fd)
    return fd
  }

  closeSync(fd: number): void {
    for (const set of [this.#tempFds, this.#lockFds, this.#dataFds, this.#dirFds, this.#newFds]) {
      set.delete(fd)
    }
    this.#real.closeSync(fd)
  }

  readSync(
    fd: number,
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): number {
    if (this.#lockFds.has(fd)) this.#maybeFail('read-lock-record', 'read')
    if (this.#dataFds.has(fd)) this.#maybeFail('read-file', 'read')
    return this.#real.readSync(fd, buffer, offset, length, position)
  }

  writeSync(
    fd: number,
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): number {
    if (this.#lockFds.has(fd)) this.#maybeFail('write-lock-record', 'write')
    // The only write to a data file: the status byte of the version a commit replaces.
    if (this.#dataFds.has(fd)) this.#maybeFail('mark-replaced', 'write')
    if (this.#tempFds.has(fd)) {
      this.#maybeFail('write-temp', 'write')
      if (this.partialWrites !== undefined) length = Math.min(length, this.partialWrites)
    }
    return this.#real.writeSync(fd, buffer, offset, length, position)
  }

  fsyncSync(fd: number): void {
    if (this.#tempFds.has(fd)) this.#maybeFail('fsync-temp', 'fsync')
    if (this.#dirFds.has(fd)) this.#maybeFail('fsync-dir', 'fsync')
    this.#real.fsyncSync(fd)
  }

  fstatSync(fd: number) {
    // The new file's fstat (for the read check), before or after its rename.
    if (this.#tempFds.has(fd) || this.#newFds.has(fd)) this.#maybeFail('fstat-new-file', 'fstat')
    return this.#real.fstatSync(fd)
  }

  statSync(path: string) {
    return this.#real.statSync(path)
  }

  lstatSync(path: string) {
    return this.#real.lstatSync(path)
  }

  renameSync(from: string, to: string): void {
    this.#maybeFail('rename', 'rename')
    this.#real.renameSync(from, to)
    this.#renamed = true
    // After the rename the temp descriptor is the data file's.
    this.#newFds.clear()
    for (const fd of this.#tempFds) {
      this.#tempFds.delete(fd)
      this.#dataFds.add(fd)
      this.#newFds.add(fd)
    }
  }

  unlinkSync(path: string): void {
    this.#maybeFail('unlink', 'unlink')
    this.#real.unlinkSync(path)
  }

  mkdirSync(path: string, mode: number): void {
    this.#real.mkdirSync(path, mode)
  }

  readdirSync(path: string): string[] {
    this.#maybeFail('sweep-temps', 'scandir')
    return this.#real.readdirSync(path)
  }

  realpathSync(path: string): string {
    return this.#real.realpathSync(path)
  }
}
