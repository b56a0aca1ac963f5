import type { FileHeader } from '../../format/header.js'
import { type AnyStoreError, RollbackError, StoreReplacedError } from '../../store/errors.js'

/**
 * The store this instance has seen (docs/DESIGN.md, "Store identity and rollback"): the store
 * id of the last version 3 file it loaded or wrote, and the highest commit counter of that
 * store it has served or written.
 */
export interface Lineage {
  storeId: Buffer
  counter: bigint
}

/**
 * Refuses a loaded file that is another store, or an older commit of this one, than what
 * this instance already served or wrote; the caller makes the refusal stick. Runs only when a new
 * version is loaded, never on the read path of an unchanged store. A version 1 or 2 file
 * carries no id or counter: it is accepted only while no version 3 file was seen, because
 * after one it can only be older (every process that can read version 3 keeps writing it).
 */
export function lineageFailure(
  file: string,
  seen: Lineage | undefined,
  header: FileHeader,
): AnyStoreError | undefined {
  if (seen === undefined) return undefined
  if (header.storeId === undefined) {
    return new RollbackError(file, seen.counter, undefined, header.version)
  }
  if (!header.storeId.equals(seen.storeId)) {
    return new StoreReplacedError(file, seen.storeId.toString('hex'), header.storeId.toString('hex'))
  }
  if (header.counter < seen.counter) {
    return new RollbackError(file, seen.counter, header.counter, header.version)
  }
  return undefined
}
