import { existsSync } from 'node:fs'
import { warnIfDefaultKey } from '../store/default-key-warning.js'
import { InvalidOptionError, StoreFileNotFoundError } from '../store/errors.js'
import { readFileHeader } from '../format/file-info.js'
import { isDeflated } from '../format/header.js'
import { checkOptionNames, keyringOption, newKeyringOption } from '../store/options.js'
import { openFileBackend } from '../backends/open-backend.js'
import {
  checkEveryValueDecodes,
  replaceWholeStore,
  resolveWholeStoreOptions,
  type WholeStoreOptions,
} from './whole-store.js'

export interface RekeyOptions extends WholeStoreOptions {
  /** The store file to re-encrypt; it must exist. */
  file: string
  /**
   * The key to re-encrypt under (base64 of 16, 24 or 32 bytes, or the bytes). Required unless
   * `newPassphrase` is given; not both.
   */
  newEncryptionKey?: string | Uint8Array
  /**
   * Re-encrypt under a key derived from this passphrase (a new salt is drawn), as the
   * `passphrase` option describes.
   */
  newPassphrase?: string | Uint8Array
  /** Deflate the re-encrypted payload. @default what the file uses now */
  compress?: boolean
  /** Called while the values are checked before re-encrypting, with `(done, total)`. */
  onProgress?: (done: number, total: number) => void
}

/**
 * Re-encrypts a store file under a new key in one atomic commit, holding the cross-process
 * lock throughout, so no writer slips a commit under the old key in between. Every value is
 * decoded first: a file that does not fully decode is left untouched. The file may be under
 * `encryptionKey`, any of `acceptedKeys`, or already under the new key (when processes that
 * write with it run, or a rekey is run again). Processes that have the store open without the
 * new key among their keys get WrongKeyError on their next read (README, "Rotating the key").
 */
export async function rekey(options: RekeyOptions): Promise<{ entries: number }> {
  checkOptionNames(options, 'rekey')
  if (typeof options.file !== 'string') throw new InvalidOptionError('rekey() needs `file`')
  const current = keyringOption(options)
  const sealing = newKeyringOption(options)
  // Reads with every secret given, the new one included: a file some process already committed
  // under the new key is re-encrypted all the same, so a rekey can always be run again.
  const reading = current.alsoReading(sealing)
  const resolved = resolveWholeStoreOptions(options.file, options)
  const file = resolved.file as string
  // The compression of the version read now: a rekey keeps it unless told otherwise.
  const { header } = readFileHeader(file)
  const compress = options.compress ?? isDeflated(header)
  const backend = openFileBackend(file, { ...resolved, keyring: reading }, { sealWith: sealing, compress })
  try {
    let total = 0
    await replaceWholeStore(backend, 'rekey', () => {
      // Under the lock: the store as it is now, every value checked before anything is written.
      // Deleted since the header was read: nothing to re-encrypt, and nothing is created.
      if (!existsSync(file)) throw new StoreFileNotFoundError(file)
      const entries = [...backend.snapshot()]
      total = checkEveryValueDecodes(entries, file, options.onProgress)
      return entries
    })
    if (sealing.current !== undefined) warnIfDefaultKey(sealing.current, file)
    return { entries: total }
  } finally {
    backend.close()
  }
}
