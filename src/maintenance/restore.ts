import { deriveKeys } from '../crypto.js'
import { InvalidOptionError, StoreFileNotFoundError } from '../store/errors.js'
import { warnIfDefaultKey } from '../store/default-key-warning.js'
import { readFileHeader } from '../format/file-info.js'
import { isDeflated } from '../format/header.js'
import { readStoreFile } from '../format/store-file.js'
import { checkOptionNames, expandPath, keyOption, keyringOption } from '../store/options.js'
import { openFileBackend } from '../backends/open-backend.js'
import {
  checkEveryValueDecodes,
  replaceWholeStore,
  resolveWholeStoreOptions,
  type WholeStoreOptions,
} from './whole-store.js'

export interface RestoreOptions extends WholeStoreOptions {
  /** The store to restore into. Created if it does not exist (as a new store). */
  file: string
  /** The backup: a store file (any format version anystore reads), for example a copy of `file`. */
  from: string
  /**
   * The backup's key, when it is neither `encryptionKey` nor one of `acceptedKeys`.
   * @default encryptionKey and acceptedKeys
   */
  fromEncryptionKey?: string | Uint8Array
  /** Deflate the restored payload. @default what `file` uses now (the backup's, if `file` is missing) */
  compress?: boolean
  /** Called while the backup's values are checked, with `(done, total)`. */
  onProgress?: (done: number, total: number) => void
}

/**
 * Makes the entries of the backup `from` the newest commit of the store `file`: one commit,
 * under the store's lock, that holds exactly the backup's entries (every other key is
 * deleted). The commit continues the store (same store id, next commit counter), so processes
 * that have the store open see an ordinary newer commit, where renaming the backup over the
 * file would make them fail with StoreReplacedError or RollbackError. Copying one store's
 * entries into another is the same operation. Every value of the backup is decoded first: a
 * backup that does not fully decode leaves the store untouched.
 */
export async function restore(options: RestoreOptions): Promise<{ entries: number }> {
  checkOptionNames(options, 'restore')
  if (typeof options.file !== 'string' || typeof options.from !== 'string') {
    throw new InvalidOptionError('restore() needs `file` and `from`')
  }
  const keyring = keyringOption(options)
  const resolved = resolveWholeStoreOptions(options.file, options)
  const file = resolved.file as string
  const fromKeys =
    'fromEncryptionKey' in options
      ? deriveKeys(keyOption(options, 'fromEncryptionKey', 'required'))
      : keyring
  const backup = readStoreFile(expandPath(options.from), fromKeys, resolved.maxFileSize)
  const entries = [...backup.entries]
  const total = checkEveryValueDecodes(entries, options.from, options.onProgress)
  if (keyring.current !== undefined) warnIfDefaultKey(keyring.current, file)
  let compress = options.compress ?? isDeflated(backup.header)
  if (options.compress === undefined) {
    try {
      compress = isDeflated(readFileHeader(file).header)
    } catch (error) {
      if (!(error instanceof StoreFileNotFoundError)) throw error
    }
  }
  // Opening loads the store as it is: one that cannot be read (wrong key, corrupt) is never
  // written over, and the restored commit continues it.
  const backend = openFileBackend(file, { ...resolved, keyring }, { compress })
  try {
    await replaceWholeStore(backend, 'restore', () => entries)
  } finally {
    backend.close()
  }
  return { entries: total }
}
