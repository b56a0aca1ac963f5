import { type Entry, sameEntry } from '../format/payload.js'
import { PayloadMap } from '../format/payload-map.js'
import type { StoreKey } from '../store/types.js'
import type { BackendWatcher, Change, EntryChange } from './backend.js'

/** What a diff needs of a state: lookups and a walk in insertion order. */
export interface EntryState extends Iterable<[StoreKey, Entry]> {
  get(key: StoreKey): Entry | undefined
  has(key: StoreKey): boolean
}

/** What happened to `key` going from `before` to `after` (absent: none); undefined for nothing. */
export function entryChange(
  key: StoreKey,
  before: Entry | undefined,
  after: Entry | undefined,
): EntryChange | undefined {
  if (before === undefined) return after === undefined ? undefined : { key, after }
  if (after === undefined) return { key, before }
  return sameEntry(before, after) ? undefined : { key, before, after }
}

/**
 * What applying `changes` to `before` does, key by key, computed before they are applied (the
 * caller's map is then changed in place). Keys a clear removed come first, in their old order,
 * then the keys the list touched, in the order of their last change.
 */
export function changesOfCommit(before: EntryState, changes: readonly Change[]): EntryChange[] {
  let cleared = false
  // The final entry of each touched key (undefined: deleted), in the order of its last change.
  const touched = new Map<StoreKey, Entry | undefined>()
  for (const change of changes) {
    if (change.kind === 'clear') {
      cleared = true
      touched.clear()
    } else {
      touched.delete(change.key)
      touched.set(change.key, change.kind === 'set' ? change.entry : undefined)
    }
  }
  const out: EntryChange[] = []
  if (cleared) {
    for (const [key, entry] of before) if (!touched.has(key)) out.push({ key, before: entry })
  }
  for (const [key, after] of touched) {
    const change = entryChange(key, before.get(key), after)
    if (change !== undefined) out.push(change)
  }
  return out
}

/** The keys that differ between two states: those of `after` in its order, then the ones it lost. */
export function diffStates(before: EntryState, after: EntryState): EntryChange[] {
  if (before instanceof PayloadMap && after instanceof PayloadMap) {
    // Two loaded versions (the usual reload): compared record by record, as bytes.
    const out: EntryChange[] = []
    for (const [key, older, newer] of after.differencesFrom(before)) {
      if (older === undefined) out.push({ key, after: newer })
      else if (newer === undefined) out.push({ key, before: older })
      else out.push({ key, before: older, after: newer })
    }
    return out
  }
  const out: EntryChange[] = []
  for (const [key, entry] of after) {
    const change = entryChange(key, before.get(key), entry)
    if (change !== undefined) out.push(change)
  }
  for (const [key, entry] of before) if (!after.has(key)) out.push({ key, before: entry })
  return out
}

interface Subscriber {
  listener: (changes: readonly EntryChange[]) => void
  onError: ((error: unknown) => void) | undefined
}

export interface ChangeFeedHooks {
  /** The first watcher opened: start looking for others' commits, if the backend must. */
  start?(): void
  /** The last watcher closed: release what start() holds. */
  stop?(): void
}

/**
 * The watchers of one backend instance (or of a shared store): what `Backend.watch` returns
 * and what a commit or a reload reports to. While none is open, `active` is false and
 * backends compute no change lists at all.
 */
export class ChangeFeed {
  readonly #subscribers = new Set<Subscriber>()
  readonly #hooks: ChangeFeedHooks
  /** The last failure reported, so a check that keeps failing the same way reports it once. */
  #lastFailure: string | undefined

  constructor(hooks: ChangeFeedHooks = {}) {
    this.#hooks = hooks
  }

  get active(): boolean {
    return this.#subscribers.size > 0
  }

  add(
    listener: (changes: readonly EntryChange[]) => void,
    onError?: (error: unknown) => void,
  ): BackendWatcher {
    const subscriber: Subscriber = { listener, onError }
    this.#subscribers.add(subscriber)
    if (this.#subscribers.size === 1) {
      try {
        this.#hooks.start?.()
      } catch (error) {
        this.#subscribers.delete(subscriber)
        throw error
      }
    }
    return {
      close: () => {
        if (!this.#subscribers.delete(subscriber)) return
        if (this.#subscribers.size === 0) this.#stopped()
      },
    }
  }

  /** Reports one commit; an empty list (a commit that changed nothing) is not reported. */
  emit(changes: readonly EntryChange[]): void {
    this.#lastFailure = undefined
    if (changes.length === 0) return
    // A copy: a listener may close a watcher, which must not skip another one in this round.
    for (const subscriber of [...this.#subscribers]) {
      try {
        subscriber.listener(changes)
      } catch (error) {
        // The backend's work (a commit, a read) must not fail because a listener did.
        subscriber.onError?.(error)
      }
    }
  }

  /** The check went well: the next failure is news again, even if it is the same as before. */
  ok(): void {
    this.#lastFailure = undefined
  }

  /** Changes could not be read; each failure is reported once until a check succeeds again. */
  fail(error: unknown): void {
    const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown }
    const signature = `${String(code)}: ${String(message ?? error)}`
    if (signature === this.#lastFailure) return
    this.#lastFailure = signature
    for (const subscriber of [...this.#subscribers]) subscriber.onError?.(error)
  }

  /** Ends every watcher (the backend is closing). */
  close(): void {
    if (this.#subscribers.size === 0) return
    this.#subscribers.clear()
    this.#stopped()
  }

  #stopped(): void {
    this.#lastFailure = undefined
    this.#hooks.stop?.()
  }
}
