import {
  type BackendTransaction,
  type Change,
  type CommitOutcome,
  isExpired,
  isPromise,
  type KeyQuery,
  type MaybePromise,
  matches,
  unlessExpired,
} from '../backends/backend.js'
import type { Entry } from '../format/payload.js'
import type { StoreKey } from './types.js'

const DELETED = Symbol('deleted')

/**
 * A transaction's writes, buffered over the backend transaction's reads: reads see the
 * committed state plus the writes so far, and `changes()` is the list a commit applies.
 *
 * The list keeps the order of the writes, so applying it in order gives exactly what a `Map`
 * would (an overwritten key keeps its place, a deleted and re-set key moves to the end),
 * whatever the backend: no write needs a read of the base to learn where its key goes. That
 * matters on an optimistic backend, where every read becomes part of what the commit is
 * checked against. The list stays short: a set replaces the earlier set of its key, a delete
 * drops it, and a clear drops everything before it.
 *
 * The transaction's own writes expire like committed entries (the backend hides those): one
 * written with a short expiry is absent to later reads of the same transaction once it passed.
 */
export class TransactionView {
  readonly #base: BackendTransaction
  #log: (Change | undefined)[] = []
  /** Where in #log the live set of each key is. */
  readonly #setAt = new Map<StoreKey, number>()
  /** What the writes so far make of each key they touched. */
  readonly #state = new Map<StoreKey, Entry | typeof DELETED>()
  #cleared = false

  constructor(base: BackendTransaction) {
    this.#base = base
  }

  get hasChanges(): boolean {
    return this.#log.length > 0
  }

  changes(): Change[] {
    return this.#log.filter((change) => change !== undefined)
  }

  get(key: StoreKey): MaybePromise<Entry | undefined> {
    const state = this.#state.get(key)
    if (state === DELETED) return undefined
    if (state !== undefined) return unlessExpired(state)
    return this.#cleared ? undefined : this.#base.get(key)
  }

  has(key: StoreKey): MaybePromise<boolean> {
    const entry = this.get(key)
    return isPromise(entry) ? entry.then((e) => e !== undefined) : entry !== undefined
  }

  set(key: StoreKey, entry: Entry): void {
    let at = this.#setAt.get(key)
    const state = this.#state.get(key)
    if (at !== undefined && state !== DELETED && state !== undefined && !unlessExpired(state)) {
      // The key expired since this transaction set it: it is set anew, at the end of the order,
      // and the delete moves it there even if the committed state has it earlier.
      this.#log[at] = undefined
      this.#setAt.delete(key)
      this.#log.push({ kind: 'delete', key })
      at = undefined
    }
    if (at === undefined) {
      this.#setAt.set(key, this.#log.length)
      this.#log.push({ kind: 'set', key, entry })
    } else {
      this.#log[at] = { kind: 'set', key, entry }
    }
    this.#state.set(key, entry)
  }

  /**
   * Deletes at once, so a later write of the transaction (even one not awaited in between) is
   * ordered after it, and resolves to whether the key existed: from the writes so far, else
   * from a read of the base.
   */
  delete(key: StoreKey): MaybePromise<boolean> {
    const existed = this.has(key)
    const at = this.#setAt.get(key)
    if (at !== undefined) {
      this.#log[at] = undefined
      this.#setAt.delete(key)
    }
    // Logged even if the key turns out to be absent: applying it then changes nothing.
    this.#log.push({ kind: 'delete', key })
    this.#state.set(key, DELETED)
    return existed
  }

  clear(): void {
    this.#log = [{ kind: 'clear' }]
    this.#setAt.clear()
    this.#state.clear()
    this.#cleared = true
  }

  async size(): Promise<number> {
    let size = this.#cleared ? 0 : await this.#base.size()
    const now = Date.now()
    for (const [key, state] of this.#state) {
      const inBase = !this.#cleared && (await this.#base.has(key))
      if (state === DELETED || isExpired(state, now)) {
        if (inBase) size--
      } else if (!inBase) {
        size++
      }
    }
    return size
  }

  /**
   * Every entry, in order: the base's entries with the writes applied in order, as a commit
   * would apply them. Reads the whole base, as a listing must.
   */
  async *entries(query?: KeyQuery): AsyncGenerator<[StoreKey, Entry]> {
    if (!this.hasChanges) {
      yield* this.#base.entries(query)
      return
    }
    const map = new Map<StoreKey, Entry>()
    if (!this.#cleared) {
      for await (const [key, entry] of this.#base.entries()) map.set(key, entry)
    }
    for (const change of this.#log) {
      if (change === undefined) continue
      if (change.kind === 'set') map.set(change.key, change.entry)
      else if (change.kind === 'delete') map.delete(change.key)
      else map.clear()
    }
    const now = Date.now()
    for (const entry of map) if (matches(entry[0], query) && !isExpired(entry[1], now)) yield entry
  }

  /**
   * Commits the writes through the backend transaction. An exclusive backend held what was read,
   * so a transaction that wrote nothing has nothing to commit; an optimistic one must have even
   * those reads checked, or it could return a state that never existed (a read before and a
   * read after another commit).
   */
  async commit(exclusive: boolean): Promise<CommitOutcome> {
    if (!this.hasChanges && exclusive) return { committed: true, results: [] }
    return this.#base.commit(this.changes())
  }
}
