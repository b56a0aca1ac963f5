import type { Entry } from '../../format/payload.js'
import type { StoreKey } from '../../store/types.js'
import { type EntryChange, isExpired } from '../backend.js'
import { type ChangeFeed, entryChange } from '../change-feed.js'
import { ExpiryQueue, type PurgeableEntries } from '../expiry.js'
import type { Subscription, SubscriptionHandlers } from './connection.js'

/** After a failure to read changes, the next attempt comes this much later. */
export const RETRY_AFTER_MS = 1000

/** The store's entries by field (hex), as a watcher last saw them. */
export type State = Map<string, [StoreKey, Entry]>

/**
 * The store's entries, listed page by page: `seq` is the commit number of the first page and
 * `last` that of the last one. The listing shows every commit up to `seq`; when `last` is
 * higher, it may show some of the commits after it too.
 */
export interface Snapshot {
  readonly seq: number
  readonly last: number
  readonly entries: State
}

/** What a CommitWatcher reads the store through: the Redis backend's reads, opened. */
export interface CommitSource {
  /** The store id (hex), or undefined while there is no store (read-only, not created yet). */
  storeId(): Promise<string | undefined>
  /** Every entry not expired at `now`. */
  snapshot(now: number): Promise<Snapshot>
  /** The key and entry sealed in `sealed` for `field` (of the store storeId() answered). */
  open(field: Buffer, sealed: Buffer): [StoreKey, Entry]
  /** The store's commit number now. */
  seq(): Promise<number>
  subscribe(handlers: SubscriptionHandlers): Subscription
}

/** A commit as the commit script announces it (scripts.ts, COMMIT). */
interface Announcement {
  readonly storeId: string
  readonly seq: number
  readonly cleared: boolean
  /** Each key the commit touched: its field and sealed entry after the commit (none: deleted). */
  readonly touched: [field: Buffer, sealed: Buffer | undefined][]
}

const COLON = 0x3a
const FIELD_SIZE = 16

/** `store id:commit number:c or -:(field, length, entry)*`; undefined for another shape. */
function parse(message: Buffer): Announcement | undefined {
  const first = message.indexOf(COLON)
  const second = message.indexOf(COLON, first + 1)
  const third = second + 2
  if (first < 0 || second < 0 || message[third] !== COLON) return undefined
  const seq = Number(message.toString('latin1', first + 1, second))
  if (!Number.isSafeInteger(seq)) return undefined
  const touched: [Buffer, Buffer | undefined][] = []
  let at = third + 1
  while (at < message.length) {
    if (at + FIELD_SIZE + 4 > message.length) return undefined
    // Copies: the message's buffer is not kept.
    const field = Buffer.from(message.subarray(at, at + FIELD_SIZE))
    const length = message.readUInt32BE(at + FIELD_SIZE)
    at += FIELD_SIZE + 4
    if (at + length > message.length) return undefined
    touched.push([field, length === 0 ? undefined : Buffer.from(message.subarray(at, at + length))])
    at += length
  }
  return { storeId: message.toString('latin1', 0, first), seq, cleared: message[second + 1] === 0x63, touched }
}

function* expiriesOf(state: State): Generator<[string, number]> {
  for (const [hex, [, entry]] of state) if (entry.expiresAt !== undefined) yield [hex, entry.expiresAt]
}

function live(item: [StoreKey, Entry] | undefined, now: number): [StoreKey, Entry] | undefined {
  return item === undefined || isExpired(item[1], now) ? undefined : item
}

/**
 * Starting watchers by store id, for every instance in this process: a commit waits until they
 * have subscribed and read the state they start from, so that a commit made after watch()
 * returned (through any instance here) is reported as a change instead of being part of it.
 */
const starting = new Map<string, Set<Promise<void>>>()

/** Settles once the watchers of `storeId` starting in this process have; undefined if none is. */
export function watchesStarting(storeId: string): Promise<void> | undefined {
  const pending = starting.get(storeId)
  return pending === undefined ? undefined : Promise.all(pending).then(() => {})
}

/** Makes the commits of this process to `storeId` wait for `ready`, from now until it settles. */
function register(storeId: string, ready: Promise<void>): void {
  let pending = starting.get(storeId)
  if (pending === undefined) starting.set(storeId, (pending = new Set()))
  pending.add(ready)
  void ready.then(() => {
    pending.delete(ready)
    if (pending.size === 0 && starting.get(storeId) === pending) starting.delete(storeId)
  })
}

/** `promise`, or nothing once `ms` have passed: what a commit waits for at most. */
function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    promise.then(
      () => {},
      () => {},
    ),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms)
    }),
  ]).finally(() => clearTimeout(timer))
}

/** Listings tried for a state that is one commit's, before one spread over several is taken. */
const SNAPSHOT_ATTEMPTS = 3

/**
 * Follows a Redis store's commits for one backend instance while it has watchers
 * (docs/DESIGN.md, "Change events", The Redis backend). The commit script announces each
 * commit that changed something on the store's channel, with its commit number and each key
 * it touched as field and sealed entry (nothing readable); this watcher, subscribed on a
 * connection of its own, opens them and reports what changed from the state it holds: a copy
 * of the store's entries, read when it starts and brought forward by each announcement, in
 * order. So each commit is reported exactly, as one change.
 *
 * Pub/sub drops what it cannot deliver: while the connection is lost, or to a subscriber too
 * slow for the server's buffer (which then drops the connection). A commit number skipped, a
 * reconnection with the store's commit number moved, and a failure all lead to the same
 * remedy: read the whole store and report how it differs from the state held, as the file
 * backend does with a new version.
 */
export class CommitWatcher {
  readonly #source: CommitSource
  readonly #feed: ChangeFeed
  readonly #subscription: Subscription
  #state: State = new Map()
  /**
   * The expiry times in #state: the server drops expired entries without announcing it, so
   * the state drops them by the clock, or a long watch would keep every entry that ever expired.
   */
  #expiries = new ExpiryQueue()
  /** The commit number #state is known to include every commit up to. */
  #seq = 0
  /** Whether #state holds the store yet: until then, nothing can be reported. */
  #loaded = false
  /** Whether something may have been missed: the next check reads the whole store. */
  #stale = false
  #tail: Promise<void> = Promise.resolve()
  #retry: NodeJS.Timeout | undefined
  #closed = false

  /**
   * `storeId`: the store's, when the instance has one (undefined for a read-only instance
   * that has found no store yet: nothing in this process can be committing to it then).
   */
  constructor(source: CommitSource, feed: ChangeFeed, storeId: string | undefined, timeoutMs: number) {
    this.#source = source
    this.#feed = feed
    this.#subscription = source.subscribe({
      message: (message) => this.#enqueue(() => this.#onMessage(message)),
      reconnected: () => this.#enqueue(() => this.#check()),
      error: (error) => this.#feed.fail(error),
    })
    // The state at once (one listing, while the connection is made), then a check once
    // subscribed: a commit that landed between the two is not heard, but moved the commit
    // number, and is reported as the difference. Only what lands before the listing is part
    // of the state watching starts from.
    this.#enqueue(() => this.#resync(false))
    const ready = this.#subscription.subscribed.then(
      () => this.#enqueue(() => this.#check()),
      // Closed before it subscribed: nothing to wait for.
      () => {},
    )
    if (storeId !== undefined) register(storeId, within(ready, timeoutMs))
  }

  /** Runs `task` after the ones before it; a failure is reported and leads to a retry. */
  #enqueue(task: () => Promise<void>): Promise<void> {
    this.#tail = this.#tail.then(async () => {
      if (this.#closed) return
      try {
        await task()
      } catch (error) {
        if (this.#closed) return
        this.#stale = true
        this.#feed.fail(error)
        this.#scheduleRetry()
      }
    })
    return this.#tail
  }

  #scheduleRetry(): void {
    if (this.#retry !== undefined || this.#closed) return
    this.#retry = setTimeout(() => {
      this.#retry = undefined
      this.#enqueue(() => this.#check())
    }, RETRY_AFTER_MS)
    // The subscriber connection keeps the process running while it is open; this need not.
    this.#retry.unref()
  }

  /** After a reconnection or a failure: reads the whole store if anything may have been missed. */
  async #check(): Promise<void> {
    if (!this.#loaded) {
      await this.#resync(false)
    } else if (this.#stale || (await this.#source.seq()) !== this.#seq) {
      await this.#resync(true)
    }
    this.#feed.ok()
  }

  async #onMessage(message: Buffer): Promise<void> {
    // Not loaded: the first read (or its retry) is still to come, and will include this.
    if (!this.#loaded) return
    const announced = parse(message)
    if (announced === undefined || announced.storeId !== (await this.#source.storeId())) {
      // Another store under the name, or not ours at all: a full read says which (and fails
      // with StoreReplacedError for another store).
      await this.#resync(true)
      return
    }
    if (announced.seq <= this.#seq) return
    if (this.#stale || announced.seq !== this.#seq + 1) {
      // Commits were missed: what they did is read from the store as it is now.
      await this.#resync(true)
      return
    }
    // #state is the store as of the commit before this one: each key's entry before it.
    const now = Date.now()
    this.#expiries.purge(this.#purgeable(), now)
    const changes: EntryChange[] = []
    const after = new Map<string, [StoreKey, Entry] | undefined>()
    for (const [field, sealed] of announced.touched) {
      after.set(field.toString('hex'), sealed === undefined ? undefined : this.#source.open(field, sealed))
    }
    if (announced.cleared) {
      // A clear removed every key the commit did not set again.
      for (const [hex, item] of this.#state) {
        if (after.has(hex)) continue
        this.#state.delete(hex)
        this.#expiries.track(hex, undefined)
        const before = live(item, now)
        if (before !== undefined) changes.push({ key: before[0], before: before[1] })
      }
    }
    for (const [hex, item] of after) {
      const before = live(this.#state.get(hex), now)
      const current = live(item, now)
      if (current === undefined) this.#state.delete(hex)
      else this.#state.set(hex, current)
      this.#expiries.track(hex, current?.[1].expiresAt)
      const key = (current ?? before)?.[0]
      const change = key === undefined ? undefined : entryChange(key, before?.[1], current?.[1])
      if (change !== undefined) changes.push(change)
    }
    this.#seq = announced.seq
    this.#feed.emit(changes)
  }

  /**
   * Reads the whole store and, if `report`, reports how it differs from the state held. An
   * entry of the state that has merely expired since is dropped without a word.
   */
  async #resync(report: boolean): Promise<void> {
    let now = Date.now()
    let snapshot = await this.#source.snapshot(now)
    // A listing of several pages while others commit: try for one state, the state that the
    // announcements of later commits apply to. Failing that, a commit during the listing may
    // show in the state already, and its announcement then adds to it what it still lacks.
    for (let attempt = 1; attempt < SNAPSHOT_ATTEMPTS && snapshot.last !== snapshot.seq; attempt++) {
      if (this.#closed) return
      now = Date.now()
      snapshot = await this.#source.snapshot(now)
    }
    if (this.#closed) return
    const { seq, entries } = snapshot
    const changes: EntryChange[] = []
    if (report && this.#loaded) {
      for (const [hex, [key, entry]] of entries) {
        const change = entryChange(key, live(this.#state.get(hex), now)?.[1], entry)
        if (change !== undefined) changes.push(change)
      }
      for (const [hex, item] of this.#state) {
        const before = live(item, now)
        if (before !== undefined && !entries.has(hex)) changes.push({ key: before[0], before: before[1] })
      }
    }
    this.#state = entries
    this.#expiries = new ExpiryQueue(expiriesOf(entries))
    this.#seq = seq
    this.#loaded = true
    this.#stale = false
    this.#feed.emit(changes)
  }

  /** #state as ExpiryQueue sees a map: entries by field. */
  #purgeable(): PurgeableEntries {
    const state = this.#state
    return {
      get: (hex) => state.get(hex as string)?.[1],
      delete: (hex) => state.delete(hex as string),
    }
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#retry)
    this.#retry = undefined
    this.#subscription.close()
    this.#state = new Map()
    this.#expiries = new ExpiryQueue()
  }
}
