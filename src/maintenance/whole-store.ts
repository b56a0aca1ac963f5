import { decodeValue } from '../format/codec.js'
import { CorruptFileError } from '../store/errors.js'
import { FileBackend } from '../backends/file/file-backend.js'
import type { KeyRing } from '../store/keyring.js'
import { type AnyStoreOptions, type ResolvedOptions, resolveOptions } from '../store/options.js'
import type { EntryMap } from '../format/payload.js'

/**
 * The options of the operations that rewrite a whole store file in one commit under its lock
 * (rekey, restore): which secrets open it, and how the lock and the commit behave.
 */
export type WholeStoreOptions = Pick<
  AnyStoreOptions,
  | 'encryptionKey'
  | 'acceptedKeys'
  | 'passphrase'
  | 'lock'
  | 'lockTimeoutMs'
  | 'maxFileSize'
  | 'staleMs'
  | 'sync'
  | 'formatVersion'
>

/** The options checked and defaulted, `file` resolved to a path. */
export function resolveWholeStoreOptions(file: string, options: WholeStoreOptions): ResolvedOptions {
  return resolveOptions({
    file,
    lock: options.lock,
    lockTimeoutMs: options.lockTimeoutMs,
    maxFileSize: options.maxFileSize,
    staleMs: options.staleMs,
    sync: options.sync,
    formatVersion: options.formatVersion,
  })
}

/** A file backend for the resolved options, reading (and sealing) with `keyring`. */
export function wholeStoreBackend(resolved: ResolvedOptions, keyring: KeyRing): FileBackend {
  return new FileBackend(resolved.file as string, {
    keyring,
    compress: resolved.compress,
    sync: resolved.sync,
    lock: resolved.lock,
    lockTimeoutMs: resolved.lockTimeoutMs,
    maxFileSize: resolved.maxFileSize,
    staleMs: resolved.staleMs,
    io: resolved.fs,
    formatVersion: resolved.formatVersion,
  })
}

/**
 * Decodes every value before a whole store is written elsewhere: a file that does not fully
 * decode is refused, naming the key, and nothing is written. Returns the entry count.
 */
export function checkEveryValueDecodes(
  entries: EntryMap,
  source: string,
  onProgress: ((done: number, total: number) => void) | undefined,
): number {
  const total = entries.size
  let done = 0
  for (const [key, entry] of entries) {
    try {
      decodeValue(entry.value)
    } catch (cause) {
      throw new CorruptFileError(source, `the value of ${JSON.stringify(key)} does not decode`, {
        cause,
      })
    }
    onProgress?.(++done, total)
  }
  return total
}
