import { constants } from 'node:fs'
import { basename, dirname } from 'node:path'
import { fillRandom } from '../../crypto.js'
import { type FileSystem, unlinkQuietly } from './fsio.js'

export const TEMP_NAME = /^\.?(.+)\.([0-9a-f]{16})\.tmp$/

/** A temp file is always a new file of ours: never an existing name, never through a link. */
const TEMP_FLAGS =
  constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0)

/** 8 random bytes as 16 hex digits. */
export function newToken(): string {
  const bytes = Buffer.alloc(8)
  fillRandom(bytes, 0, 8)
  return bytes.toString('hex')
}

/** The temp file name of the instance holding `token`: `<file>.<token>.tmp`, beside the store. */
export function tempPath(file: string, token: string): string {
  return `${file}.${token}.tmp`
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
export function createTempFile(io: FileSystem, temp: string): number {
  try {
    return io.openSync(temp, TEMP_FLAGS, 0o600)
  } catch (error) {
    if ((error as { code?: string }).code !== 'EEXIST') throw error
    io.unlinkSync(temp)
    return io.openSync(temp, TEMP_FLAGS, 0o600)
  }
}

/** Removes every temp file of `file` in its directory: run under the lock, when no live writer has one. */
export function sweepTempFiles(io: FileSystem, file: string): void {
  const name = basename(file)
  const dir = dirname(file)
  for (const entry of io.readdirSync(dir)) {
    const match = TEMP_NAME.exec(entry)
    if (match && match[1] === name) unlinkQuietly(io, `${dir}/${entry}`)
  }
}
