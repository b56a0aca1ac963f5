import { AsyncLocalStorage } from 'node:async_hooks'
import {
  type Backend,
  type BackendTransaction,
  type Change,
  type ChangeResult,
  type CommitOutcome,
  type EntryReader,
  isPromise,
  type KeyQuery,
  type MaybePromise,
} from '../backends/backend.js'
import type { Entry } from '../format/payload.js'
import { ReentrantCallError } from './errors.js'
import { doneAtExit, type ExitFlush, flushAtExit } from './exit-flush.js'
import { Mutex } from './mutex.js'
import type { ResolvedOptions } from './options.js'
import { PendingChanges, ReadThrough } from './pending-changes.js'
import type { StoreKey } from './types.js'

/** The write-behind stores whose run() the current async context is inside. */
const insideRun = new AsyncLocalStorage<ReadonlySet<WriteBehind>>()

const ignore = () => {}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const code = (error as { code?: unknown }).code
  return `${error.name}${typeof code === 'string' ? ` (${code})` : ''}: ${error.message}`
}

/** A failure kept for the next call to report, boxed so that any thrown value fits. */
interface Failure {
  error: unknown
}

/**
 * `sync: { everyMs }` (README, "Durability"): a backend seen through this instance's
 * acknowledged but uncommitted changes. Writes land in memory and resolve; a timer commits them
 * together within `everyMs`, through the backend's ordinary transaction (so, on a file, under
 * its lock, fsynced). Reads see the backend with the changes applied: read-your-writes for
 * this instance, and other instances see the changes once committed.
 *
 * Every commit of this instance, background or from flush() or run(), runs one at a time, so
 * changes reach the backend in the order they were acknowledged.
 */
export class WriteBehind implements Backend, ExitFlush {
  readonly #inner: Backend
  readonly #everyMs: number
  /** Acknowledged, not yet taken by a commit. */
  #pending = new PendingChanges()
  /** Taken by the commit under way and not yet applied by it: reads must still see them. */
  #committing: PendingChanges | undefined
  /** The backend as #committing and then #pending change it. */
  #reader: EntryReader
  readonly #commits = new Mutex()
  #timer: NodeJS.Timeout | undefined
  /** The last background commit's error, until a call reports it. */
  #failure: Failure | undefined
  /**
   * A delete that waits for its read (on a backend whose reads are asynchronous): writes made
   * after it wait too, so that changes are recorded in the order they were made.
   */
  #applying: Promise<void> | undefined
  #finished = false
  /**
   * The inner backend's change events, where it has them: they report commits, and what waits
   * here is reported once it is committed (to this instance as to every other).
   */
  readonly watch: Backend['watch']

  constructor(inner: Backend, everyMs: number) {
    this.#inner = inner
    this.#everyMs = everyMs
    this.#reader = new ReadThrough(this.#pending, inner)
    this.watch = inner.watch?.bind(inner)
  }

  get kind(): string {
    return this.#inner.kind
  }

  get location(): string {
    return this.#inner.location
  }

  get concurrency(): 'exclusive' | 'optimistic' {
    return this.#inner.concurrency
  }

  get exclusiveScope(): unknown {
    return this.#inner.exclusiveScope
  }

  get readOnly(): boolean {
    return this.#inner.readOnly
  }

  get file(): string | undefined {
    return this.#inner.file
  }

  get lockMode(): 'flock' | 'proper-lockfile' | undefined {
    return this.#inner.lockMode
  }

  get(key: StoreKey): MaybePromise<Entry | undefined> {
    return this.#reader.get(key)
  }

  has(key: StoreKey): MaybePromise<boolean> {
    return this.#reader.has(key)
  }

  size(): MaybePromise<number> {
    return this.#reader.size()
  }

  keys(query?: KeyQuery): Iterable<StoreKey> | AsyncIterable<StoreKey> {
    return this.#reader.keys(query)
  }

  entries(query?: KeyQuery): Iterable<[StoreKey, Entry]> | AsyncIterable<[StoreKey, Entry]> {
    return this.#reader.entries(query)
  }

  /**
   * Records `change` and resolves at once (after the read a delete needs, where reads are
   * asynchronous). A delete answers whether this instance sees the key now: the committed
   * state it reads plus its own pending changes. First, a failed background commit that no
   * call has reported yet is thrown here, and `change` is not made.
   */
  write(change: Change): MaybePromise<ChangeResult> {
    this.#reportFailure()
    const before = this.#applying
    const result = before === undefined ? this.#apply(change) : before.then(() => this.#apply(change))
    if (isPromise(result)) {
      const settled = result.then(ignore, ignore)
      this.#applying = settled
      void settled.then(() => {
        if (this.#applying === settled) this.#applying = undefined
      })
    }
    return result
  }

  #apply(change: Change): MaybePromise<ChangeResult> {
    if (change.kind !== 'delete') {
      this.#record(change)
      return undefined
    }
    const existed = this.#reader.has(change.key)
    if (!isPromise(existed)) {
      this.#record(change)
      return existed
    }
    return existed.then((seen) => {
      this.#record(change)
      return seen
    })
  }

  #record(change: Change): void {
    if (this.#pending.isEmpty) flushAtExit(this)
    this.#pending.apply(change)
    this.#schedule()
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#finished) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      void this.#commitInBackground()
    }, this.#everyMs)
    // The end of the process commits what is pending (beforeExit, exit): no need to keep it alive.
    this.#timer.unref()
  }

  async #commitInBackground(): Promise<void> {
    try {
      await this.#commits.run(() => this.#commitPending())
    } catch (error) {
      this.#failure = { error }
    }
  }

  #reportFailure(): void {
    const failure = this.#failure
    if (failure === undefined) return
    this.#failure = undefined
    throw failure.error
  }

  /** Commits everything pending, as one commit. Runs under #commits. */
  async #commitPending(): Promise<void> {
    if (this.#pending.isEmpty) return
    clearTimeout(this.#timer)
    this.#timer = undefined
    try {
      await this.#inner.transaction(async (itx) => {
        // Taken only now (on a file: under the lock), so that writes made while the commit
        // waited for the lock go out with it.
        const taken = this.#take()
        if (taken !== undefined) await this.#commitWith(itx, taken, [])
      })
    } finally {
      // Failed (before taking anything, or after: the changes are back), or more came meanwhile.
      if (!this.#pending.isEmpty) this.#schedule()
    }
  }

  /** Moves the pending changes to #committing, where reads still see them. */
  #take(): PendingChanges | undefined {
    if (this.#pending.isEmpty) return undefined
    this.#committing = this.#pending
    this.#pending = new PendingChanges()
    this.#rebuildReader()
    return this.#committing
  }

  /**
   * The commit of #committing ended: applied, or not, in which case its changes go back in
   * front of the ones made since, for the next commit to carry.
   */
  #settle(applied: boolean): void {
    const taken = this.#committing
    if (taken === undefined) return
    this.#committing = undefined
    if (!applied) this.#pending = taken.followedBy(this.#pending)
    this.#rebuildReader()
    if (this.#pending.isEmpty) doneAtExit(this)
    else this.#schedule()
  }

  #rebuildReader(): void {
    const committed = this.#committing === undefined ? this.#inner : new ReadThrough(this.#committing, this.#inner)
    this.#reader = new ReadThrough(this.#pending, committed)
  }

  /**
   * One commit of the taken changes followed by `extra`. Settled the moment the backend
   * answers: when it answers synchronously (a file), no turn of the event loop passes between
   * the commit and the bookkeeping, so an exit flush can never write the same changes again.
   */
  #commitWith(
    itx: BackendTransaction,
    taken: PendingChanges | undefined,
    extra: readonly Change[],
  ): MaybePromise<CommitOutcome> {
    const head = taken?.changes() ?? []
    const done = (outcome: CommitOutcome): CommitOutcome => {
      this.#settle(outcome.committed)
      return outcome.committed
        ? { committed: true, results: outcome.results.slice(head.length) }
        : outcome
    }
    const failed = (error: unknown): never => {
      this.#settle(false)
      throw error
    }
    let outcome: MaybePromise<CommitOutcome>
    try {
      outcome = itx.commit(head.length === 0 ? extra : [...head, ...extra])
    } catch (error) {
      return failed(error)
    }
    return isPromise(outcome) ? outcome.then(done, failed) : done(outcome)
  }

  /**
   * run(): a transaction of the backend whose reads see this instance's pending changes, and
   * whose commit carries them first, then the transaction's own writes, as one commit. When
   * it writes nothing, the pending changes are still committed before it resolves. When it
   * throws, they stay pending.
   */
  async transaction<T>(fn: (tx: BackendTransaction) => Promise<T>): Promise<T> {
    this.#reportFailure()
    // Its commit would wait for the one this run() holds (optimistic backends; the store
    // catches this on exclusive ones before it gets here).
    if (insideRun.getStore()?.has(this)) throw new ReentrantCallError('run')
    const held = new Set(insideRun.getStore())
    held.add(this)
    return this.#commits.run(() =>
      this.#inner.transaction((itx) =>
        insideRun.run(held, async () => {
          const taken = this.#take()
          const reads: EntryReader = taken === undefined ? itx : new ReadThrough(taken, itx)
          let committing = false
          const tx: BackendTransaction = {
            get: (key) => reads.get(key),
            has: (key) => reads.has(key),
            size: () => reads.size(),
            keys: (query) => reads.keys(query),
            entries: (query) => reads.entries(query),
            commit: (changes) => {
              committing = true
              return this.#commitWith(itx, taken, changes)
            },
          }
          let value: T
          try {
            value = await fn(tx)
          } catch (error) {
            if (!committing) this.#settle(false)
            throw error
          }
          if (!committing && taken !== undefined) await this.#commitWith(itx, taken, [])
          return value
        }),
      ),
    )
  }

  /**
   * Resolves once everything acknowledged before the call is committed. Rejects with the error
   * of its own commit if that failed (the changes stay pending), or else with the error of a
   * background commit that failed since the last call reported one.
   */
  async flush(): Promise<void> {
    if (insideRun.getStore()?.has(this)) throw new ReentrantCallError('flush')
    await this.#applying
    let own: Failure | undefined
    try {
      await this.#commits.run(() => this.#commitPending())
    } catch (error) {
      own = { error }
    }
    const kept = this.#failure
    this.#failure = undefined
    const failure = own ?? kept
    if (failure !== undefined) throw failure.error
  }

  /**
   * close(): flush() once more, then stop. Resolves to the failure to report: after it, what
   * could not be committed is dropped, and that failure is its only trace.
   */
  async finish(): Promise<Failure | undefined> {
    if (this.#finished) return undefined
    let failure: Failure | undefined
    try {
      await this.flush()
    } catch (error) {
      failure = { error }
    }
    this.#finished = true
    clearTimeout(this.#timer)
    this.#timer = undefined
    doneAtExit(this)
    return failure
  }

  /**
   * The last state loaded, with this instance's uncommitted changes applied: what the store
   * keeps in memory when persistence is switched off, so acknowledged writes stay visible.
   */
  snapshot(): Iterable<[StoreKey, Entry]> | undefined {
    const base = this.#inner.snapshot?.()
    if (base === undefined) return undefined
    const map = new Map(base)
    this.#committing?.replayOnto(map, undefined, (entry) => entry)
    this.#pending.replayOnto(map, undefined, (entry) => entry)
    return map
  }

  /**
   * For disablePersistence(), whose caller has already moved on: the final commit's failure
   * can only be a warning. The store's close() calls finish() first and reports it itself.
   */
  async close(): Promise<void> {
    const count = this.#uncommitted().length
    const failure = await this.finish()
    if (failure !== undefined) {
      process.emitWarning(
        `${count} acknowledged change(s) to ${this.location} could not be committed when persistence was switched off: ${describe(failure.error)}`,
        { type: 'AnyStoreWarning', code: 'ANYSTORE_UNCOMMITTED' },
      )
    }
    await this.#inner.close()
  }

  #uncommitted(): Change[] {
    return [...(this.#committing?.changes() ?? []), ...this.#pending.changes()]
  }

  commitBeforeExit(): void {
    if (this.#failure === undefined && !this.#finished) void this.#commitInBackground()
  }

  commitAtExit(): { message: string; lost: boolean } | undefined {
    const failure = this.#failure
    const earlier =
      failure === undefined
        ? ''
        : `a background commit to ${this.location} had failed (${describe(failure.error)}) and no call reported it; `
    const changes = this.#uncommitted()
    if (changes.length === 0) {
      return failure === undefined ? undefined : { message: `${earlier}its changes were committed later`, lost: false }
    }
    const what = `${changes.length} acknowledged change(s) to ${this.location}`
    if (this.#inner.commitSync === undefined) {
      // A commit of this backend may be under way, answered or not: it cannot be known now.
      const state = this.#committing === undefined ? 'were not committed' : 'were not committed, or not known to be'
      return {
        message: `${earlier}${what} ${state}: the ${this.kind} backend cannot commit while the process exits; call flush() or close() before it ends`,
        lost: true,
      }
    }
    try {
      this.#inner.commitSync(changes)
    } catch (error) {
      return { message: `${earlier}${what} were not committed at exit: ${describe(error)}`, lost: true }
    }
    this.#committing = undefined
    this.#pending = new PendingChanges()
    this.#rebuildReader()
    doneAtExit(this)
    return failure === undefined ? undefined : { message: `${earlier}its changes were committed at exit`, lost: false }
  }
}

/** `backend` under the `sync` option: itself, or seen through write-behind. */
export function withSyncPolicy(backend: Backend, options: ResolvedOptions): Backend {
  return options.everyMs === undefined ? backend : new WriteBehind(backend, options.everyMs)
}

/** close(): a write-behind backend's final commit; the failure to report, if any. */
export async function finishWriteBehind(backend: Backend): Promise<Failure | undefined> {
  return backend instanceof WriteBehind ? backend.finish() : undefined
}
