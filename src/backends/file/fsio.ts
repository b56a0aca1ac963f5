import * as fs from 'node:fs'

/**
 * The file-system calls a store makes, and nothing else. Commits go through this seam so that
 * tests can inject ENOSPC, EIO or EACCES at any step without patching `node:fs` globally.
 * The calls are synchronous on purpose: each is a short syscall, and a commit runs start to
 * finish under the lock without yielding to other work.
 */
export interface FileSystem {
  openSync(path: string, flags: string | number, mode?: number): number
  closeSync(fd: number): void
  readSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number
  writeSync(
    fd: number,
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): number
  fsyncSync(fd: number): void
  fstatSync(fd: number): fs.Stats
  statSync(path: string): fs.Stats | undefined
  lstatSync(path: string): fs.Stats | undefined
  renameSync(from: string, to: string): void
  unlinkSync(path: string): void
  mkdirSync(path: string, mode: number): void
  readdirSync(path: string): string[]
  realpathSync(path: string): string
  /**
   * Closes a descriptor off the calling thread, ignoring errors. Optional: without it the
   * store closes synchronously. Closing the last descriptor of a replaced file frees it,
   * which can take a quarter of a millisecond on ext4.
   */
  closeInBackground?(fd: number): void
  /**
   * Watches a directory for names created, replaced or removed in it: `onEvent` gets the name
   * (null when the system did not say). Optional: without it, change events poll. The watch
   * keeps the process running until closed, as fs.watch does.
   */
  watchDirectory?(
    path: string,
    onEvent: (name: string | null) => void,
    onError: (error: Error) => void,
  ): { close(): void }
}

export const nodeFileSystem: FileSystem = {
  openSync: (path, flags, mode) => fs.openSync(path, flags, mode),
  closeSync: (fd) => fs.closeSync(fd),
  readSync: (fd, buffer, offset, length, position) =>
    fs.readSync(fd, buffer, offset, length, position),
  writeSync: (fd, buffer, offset, length, position) =>
    fs.writeSync(fd, buffer, offset, length, position),
  fsyncSync: (fd) => fs.fsyncSync(fd),
  fstatSync: (fd) => fs.fstatSync(fd),
  statSync: (path) => fs.statSync(path, { throwIfNoEntry: false }),
  lstatSync: (path) => fs.lstatSync(path, { throwIfNoEntry: false }),
  renameSync: (from, to) => fs.renameSync(from, to),
  unlinkSync: (path) => fs.unlinkSync(path),
  mkdirSync: (path, mode) => {
    fs.mkdirSync(path, { recursive: true, mode })
  },
  readdirSync: (path) => fs.readdirSync(path),
  realpathSync: (path) => fs.realpathSync(path),
  closeInBackground: (fd) => {
    fs.close(fd, () => {})
  },
  watchDirectory: (path, onEvent, onError) => {
    const watcher = fs.watch(path, { persistent: true, encoding: 'utf8' }, (_type, name) =>
      onEvent(name),
    )
    watcher.on('error', onError)
    return watcher
  },
}

/** Reads exactly `length` bytes at `position`, or fewer only at end of file. */
export function readFully(
  io: FileSystem,
  fd: number,
  buffer: Uint8Array,
  length: number,
  position: number,
): number {
  let done = 0
  while (done < length) {
    const n = io.readSync(fd, buffer, done, length - done, position + done)
    if (n === 0) break
    done += n
  }
  return done
}

/** Writes all of `buffer` at `position` (write(2) may write less than asked). */
export function writeFully(io: FileSystem, fd: number, buffer: Uint8Array, position: number): void {
  let done = 0
  while (done < buffer.length) {
    done += io.writeSync(fd, buffer, done, buffer.length - done, position + done)
  }
}

export function closeQuietly(io: FileSystem, fd: number | undefined): void {
  if (fd === undefined) return
  try {
    io.closeSync(fd)
  } catch {
    // Closing is best effort on error paths; the original error is what matters.
  }
}

export function unlinkQuietly(io: FileSystem, path: string): void {
  try {
    io.unlinkSync(path)
  } catch {
    // Already gone, or we cannot remove it: the next lock holder tries again.
  }
}
