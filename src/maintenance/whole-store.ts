import { decodeValue } from '../format/codec.js'
import { CorruptFileError } from '../store/errors.js'
import type { Change } from '../backends/backend.js'
import { refuseInside } from '../store/held-scopes.js'
import type { FileBackend } from '../backends/file/file-backend.js'
import type { Entry } from '../format/payload.js'
import type { StoreKey } from '../store/types.js'
import { type AnyStoreOptions, type ResolvedOptions, resolveOptions } from '../store/options.js'

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

/**
 * Commits `entries` as the whole content of the store, in one transaction that first checks the
 * store is still there: the changes clear it and set every entry, so every record is sealed anew.
 */
export async function replaceWholeStore(
  backend: FileBackend,
  method: 'rekey' | 'restore',
  entries: () => readonly [StoreKey, Entry][],
): Promise<void> {
  // Inside a run() on the same file, the lock this needs is the one that run() holds.
  refuseInside(backend.exclusiveScope, method)
  await backend.transaction(async (tx) => {
    const changes: Change[] = [{ kind: 'clear' }]
    for (const [key, entry] of entries()) changes.push({ kind: 'set', key, entry })
    await tx.commit(changes)
  })
}

/**
 * Decodes every value before a whole store is written elsewhere: a file that does not fully
 * decode is refused, naming the key, and nothing is written. Returns the entry count.
 */
export function checkEveryValueDecodes(
  entries: readonly [StoreKey, Entry][],
  source: string,
  onProgress: ((done: number, total: number) => void) | undefined,
): number {
  const total = entries.length
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
