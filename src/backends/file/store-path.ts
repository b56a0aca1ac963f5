import type { Stats } from 'node:fs'
import { basename, dirname } from 'node:path'
import { InvalidPathError } from '../../store/errors.js'
import type { FileSystem } from './fsio.js'

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
