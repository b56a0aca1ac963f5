import {
  type Change,
  type EntryReader,
  isPromise,
  isExpired,
  type KeyQuery,
  type MaybePromise,
  matches,
  unlessExpired,
} from '../backends/backend.js'
import type { Entry } from '../format/payload.js'
import type { StoreKey } from './types.js'

const DELETED = Symbol('deleted')
type KeyState = Entry | typeof DELETED

/**
 * Changes acknowledged but not yet committed (write-behind), in the order they were made:
 * `changes()` is the list a commit applies, and `lookup()` tells a read what they make of a
 * key. Nothing here has read the store: applying the list to whatever the store holds at
 * commit time gives what a `Map` would give from the same calls made then.
 *
 * The list stays short under repeated writes: a set replaces the earlier set of its key in
 * place (an overwrite keeps a key's position), a delete drops the key's set, and a clear drops
 * everything before it. A delete is always recorded unless the list already makes the key
 * absent: what this instance saw when delete() was called says nothing about what another
 * process may have written by the time of the commit.
 */
export class PendingChanges {
  #log: (Change | undefined)[] = []
  /** Where in #log the live set of each key is. */
  readonly #setAt = new Map<StoreKey, number>()
  /** What the changes so far make of each key they touched. */
  readonly #state = new Map<StoreKey, KeyState>()
  #cleared = false
  /** How many keys the changes set (and did not delete again): the entries they add or keep. */
  #liveSets = 0

  get isEmpty(): boolean {
    return this.#log.length === 0
  }

  /** Whether a clear is among the changes: nothing below them is seen any more. */
  get cleared(): boolean {
    return this.#cleared
  }

  changes(): Change[] {
    return this.#log.filter((change) => change !== undefined)
  }

  apply(change: Change): void {
    switch (change.kind) {
      case 'set':
        this.#set(change.key, change)
        return
      case 'delete':
        this.#delete(change.key)
        return
      case 'clear':
        this.#log = [change]
        this.#setAt.clear()
        this.#state.clear()
        this.#cleared = true
        this.#liveSets = 0
    }
  }

  /** These changes, then `later`'s, as one list: a failed commit's changes go back in front. */
  followedBy(later: PendingChanges): PendingChanges {
    const merged = new PendingChanges()
    for (const change of this.changes()) merged.apply(change)
    for (const change of later.changes()) merged.apply(change)
    return merged
  }

  /** The changes applied to `map`, in order, keeping only the keys `query` covers. */
  replayOnto<T>(map: Map<StoreKey, T>, query: KeyQuery | undefined, value: (entry: Entry) => T): void {
    for (const change of this.#log) {
      if (change === undefined) continue
      if (change.kind === 'clear') map.clear()
      else if (change.kind === 'delete') map.delete(change.key)
      else if (matches(change.key, query)) map.set(change.key, value(change.entry))
    }
  }

  #set(key: StoreKey, change: Change & { kind: 'set' }): void {
    const at = this.#setAt.get(key)
    if (at === undefined) {
      this.#setAt.set(key, this.#log.length)
      this.#log.push(change)
      this.#liveSets++
    } else {
      this.#log[at] = change
    }
    this.#state.set(key, change.entry)
  }

  #delete(key: StoreKey): void {
    const at = this.#setAt.get(key)
    if (at !== undefined) {
      this.#log[at] = undefined
      this.#setAt.delete(key)
      this.#liveSets--
    }
    // After a clear, or a delete of its own, the list already makes the key absent.
    if (!this.#cleared && this.#state.get(key) !== DELETED) {
      this.#log.push({ kind: 'delete', key })
    }
    this.#state.set(key, DELETED)
  }

  /** What the changes make of `key`: an entry, DELETED, or undefined when they leave it alone. */
  lookup(key: StoreKey): KeyState | undefined {
    return this.#state.get(key) ?? (this.#cleared ? DELETED : undefined)
  }

  /** Keys the changes set or delete; and, after a clear, every key is theirs. */
  touches(key: StoreKey): boolean {
    return this.#cleared || this.#state.has(key)
  }

  /** How many entries the changes themselves hold (what size() adds to the untouched ones). */
  get liveSets(): number {
    return this.#liveSets
  }

  /** Whether the changes set `key` to an entry that has expired by `now`: it reads as absent. */
  setsExpired(key: StoreKey, now: number): boolean {
    const state = this.#state.get(key)
    return state !== undefined && state !== DELETED && isExpired(state, now)
  }

  /** How many of the entries the changes set have expired by `now`. */
  expiredSets(now: number): number {
    let expired = 0
    for (const state of this.#state.values()) {
      if (state !== DELETED && isExpired(state, now)) expired++
    }
    return expired
  }
}

/** Collects an iterable that may be asynchronous, synchronously when it is not. */
function collected<T, R>(
  items: Iterable<T> | AsyncIterable<T>,
  use: (items: Iterable<T>) => R,
): R | Promise<R> {
  if (Symbol.iterator in items) return use(items)
  return (async () => {
    const all: T[] = []
    for await (const item of items) all.push(item)
    return use(all)
  })()
}

/** An iterable out of what may be a promise of one: listings must not be promises. */
function iterable<T>(items: MaybePromise<Iterable<T>>): Iterable<T> | AsyncIterable<T> {
  if (!isPromise(items)) return items
  return (async function* () {
    yield* await items
  })()
}

/**
 * Reads of `below` as `layer` changes it: what a commit of `layer` would leave, read now.
 * Synchronous wherever `below` is.
 */
export class ReadThrough implements EntryReader {
  readonly #layer: PendingChanges
  readonly #below: EntryReader

  constructor(layer: PendingChanges, below: EntryReader) {
    this.#layer = layer
    this.#below = below
  }

  get(key: StoreKey): MaybePromise<Entry | undefined> {
    const state = this.#layer.lookup(key)
    if (state === DELETED) return undefined
    // A pending entry expires like a committed one: the commit would not store it.
    return state === undefined ? this.#below.get(key) : unlessExpired(state)
  }

  has(key: StoreKey): MaybePromise<boolean> {
    const state = this.#layer.lookup(key)
    if (state === undefined) return this.#below.has(key)
    return state !== DELETED && unlessExpired(state) !== undefined
  }

  /**
   * Counted over one listing of `below`, not by asking `below` about each changed key: another
   * process's commit between two such questions would make the count match no state at all.
   */
  size(): MaybePromise<number> {
    const layer = this.#layer
    if (layer.isEmpty) return this.#below.size()
    const pending = layer.liveSets - layer.expiredSets(Date.now())
    if (layer.cleared) return pending
    return collected(this.#below.keys(), (keys) => {
      let untouched = 0
      for (const key of keys) if (!layer.touches(key)) untouched++
      return untouched + pending
    })
  }

  keys(query?: KeyQuery): Iterable<StoreKey> | AsyncIterable<StoreKey> {
    const layer = this.#layer
    if (layer.isEmpty) return this.#below.keys(query)
    const below: Iterable<StoreKey> | AsyncIterable<StoreKey> = layer.cleared ? [] : this.#below.keys(query)
    return iterable(
      collected(below, (keys) => {
        const map = new Map<StoreKey, true>()
        for (const key of keys) map.set(key, true)
        layer.replayOnto(map, query, () => true)
        const now = Date.now()
        for (const key of map.keys()) if (layer.setsExpired(key, now)) map.delete(key)
        return map.keys()
      }),
    )
  }

  entries(query?: KeyQuery): Iterable<[StoreKey, Entry]> | AsyncIterable<[StoreKey, Entry]> {
    const layer = this.#layer
    if (layer.isEmpty) return this.#below.entries(query)
    const below: Iterable<[StoreKey, Entry]> | AsyncIterable<[StoreKey, Entry]> = layer.cleared
      ? []
      : this.#below.entries(query)
    return iterable(
      collected(below, (entries) => {
        const map = new Map(entries)
        layer.replayOnto(map, query, (entry) => entry)
        const now = Date.now()
        for (const [key, entry] of map) if (isExpired(entry, now)) map.delete(key)
        return map.entries()
      }),
    )
  }
}
