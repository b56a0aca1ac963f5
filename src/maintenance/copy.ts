import type { Backend, Change } from '../backends/backend.js'
import { collect, transactUntilCommitted } from '../backends/retry.js'
import type { Entry } from '../format/payload.js'
import { DEFAULT_OPTIONS } from '../store/options.js'
import { InvalidOptionError } from '../store/errors.js'
import type { StoreKey } from '../store/types.js'
import { checkEveryValueDecodes } from './whole-store.js'

/**
 * Copying one store into another, backend to backend (`anystore copy`): the source's entries
 * are read opened (its key decrypts them) and committed to the target, which seals them under
 * its own key. Entries move as they are stored, encoded value and expiry time, so nothing is
 * decoded and encoded again; every value is still decoded once, to refuse a damaged source
 * before anything is written. Two steps, so that the source is read, checked and closed before
 * the target is even opened.
 */

/** How many times a read or a commit on an optimistic backend is tried when others write: as run(). */
const MAX_ATTEMPTS = DEFAULT_OPTIONS.maxRunAttempts

/** The target holds entries and `replace` was not asked for: nothing was written. */
export class TargetNotEmptyError extends Error {
  constructor(
    readonly location: string,
    readonly size: number,
  ) {
    super(`${location} holds ${size} entries`)
  }
}

export interface CopyOptions {
  /** Delete every entry the target holds, in the same commit. Without it, a target with entries is refused. */
  replace: boolean
}

/**
 * Every entry of `source`, as one state: an exclusive backend lists the version it loaded; an
 * optimistic one lists inside a transaction whose empty commit checks that nothing changed
 * while it listed (a listing of several pages outside a transaction is no snapshot).
 */
export async function readAllEntries(source: Backend): Promise<[StoreKey, Entry][]> {
  if (source.concurrency === 'exclusive') return collect(source.entries())
  return transactUntilCommitted(
    source,
    async (tx) => {
      const entries = await collect(tx.entries())
      const check = await tx.commit([])
      return check.committed ? { committed: true, value: entries } : check
    },
    MAX_ATTEMPTS,
  )
}

/**
 * Every entry of `source` as one state, each value decoded once so that a damaged source is
 * refused (CorruptFileError naming the key) before anything is written anywhere.
 */
export async function readSource(
  source: Backend,
  onProgress?: (done: number, total: number) => void,
): Promise<[StoreKey, Entry][]> {
  const entries = await readAllEntries(source)
  checkEveryValueDecodes(entries, source.location, onProgress)
  return entries
}

/**
 * Commits `entries` (from readSource) to `target` in one commit: all of them or nothing. The
 * target must be empty, unless `replace`, which clears it in that same commit; the target seals
 * each entry under its own key.
 */
export async function writeTarget(
  target: Backend,
  entries: readonly [StoreKey, Entry][],
  options: CopyOptions,
): Promise<void> {
  if (target.supportsExpiry === false && entries.some(([, entry]) => entry.expiresAt !== undefined)) {
    throw new InvalidOptionError(
      `Some entries expire, and the ${target.kind} backend of ${target.location} does not keep expiries yet: nothing was copied`,
    )
  }
  const changes: Change[] = options.replace ? [{ kind: 'clear' }] : []
  for (const [key, entry] of entries) changes.push({ kind: 'set', key, entry })
  await commitChanges(target, changes, !options.replace)
}

/** One commit of `changes`, run again on a conflict; `mustBeEmpty`: only into an empty target. */
async function commitChanges(target: Backend, changes: readonly Change[], mustBeEmpty: boolean): Promise<void> {
  await transactUntilCommitted(
    target,
    async (tx) => {
      if (mustBeEmpty) {
        // Read in the transaction: the commit applies only while the target is still empty.
        const size = await tx.size()
        if (size > 0) throw new TargetNotEmptyError(target.location, size)
      }
      const outcome = await tx.commit(changes)
      return outcome.committed ? { committed: true, value: undefined } : outcome
    },
    MAX_ATTEMPTS,
  )
}
