import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs'
import { type FileHeader, HEADER_SIZE, parseHeader } from './header.js'
import { StoreFileNotFoundError } from '../store/errors.js'

/**
 * Reads only the header of a store file: no key needed. Throws StoreFileNotFoundError,
 * NotAnyStoreFileError, CorruptFileError or UnsupportedFormatError.
 */
export function readFileHeader(file: string): { header: FileHeader; size: number } {
  const fd = openExistingFile(file)
  try {
    const { size } = fstatSync(fd)
    const bytes = Buffer.alloc(HEADER_SIZE)
    const read = readSync(fd, bytes, 0, bytes.length, 0)
    // With the file's size, parseHeader also rejects a file too short to hold the tag.
    return { header: parseHeader(file, bytes.subarray(0, read), size), size }
  } finally {
    closeSync(fd)
  }
}

/** Opens `file` for reading; a missing file is StoreFileNotFoundError. */
export function openExistingFile(file: string): number {
  try {
    return openSync(file, 'r')
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') throw new StoreFileNotFoundError(file)
    throw error
  }
}

/** Throws StoreFileNotFoundError unless `file` exists (checked without creating anything). */
export function assertFileExists(file: string): void {
  try {
    statSync(file)
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') throw new StoreFileNotFoundError(file)
    throw error
  }
}
