import { AsyncResource } from 'node:async_hooks'
import { type Backend, type BackendWatcher, type EntryChange, matches } from '../backends/backend.js'
import { decodeValue } from '../format/codec.js'
import type { Entry } from '../format/payload.js'
import { InvalidOptionError } from './errors.js'
import type { KeyQuery, StoreKey } from './types.js'

/** A key a commit created, with its value. */
export interface KeyAdded<V> {
  readonly key: StoreKey
  readonly value: V
}

/** A key a commit gave another value: its value before and after. */
export interface KeyChanged<V> {
  readonly key: StoreKey
  readonly oldValue: V
  readonly value: V
}

/** A key a commit deleted (or a clear removed), with the value it held. */
export interface KeyDeleted<V> {
  readonly key: StoreKey
  readonly oldValue: V
}

/**
 * One commit, as a watcher sees it: the keys it added, changed and deleted, with their values
 * decoded; each key once, in no particular order within a list. Each watcher gets its own
 * copies. A key set to a value that encodes to the same bytes is not changed.
 */
export interface StoreChange<V = unknown> {
  readonly added: readonly KeyAdded<V>[]
  readonly changed: readonly KeyChanged<V>[]
  readonly deleted: readonly KeyDeleted<V>[]
}

export interface WatchOptions extends KeyQuery {
  /**
   * Hears what the listener threw (or the promise it returned rejected with), and what kept
   * changes from being read (a file that no longer opens, ...); watching goes on. Without it,
   * each is a process warning (type `AnyStoreWarning`, code `ANYSTORE_WATCH_ERROR`), and
   * `changes()` throws the latter from its loop.
   */
  readonly onError?: ((error: unknown) => void) | undefined
}

/** An open watch: close() (or `using`/`await using`) ends it. */
export interface Watcher {
  readonly closed: boolean
  close(): void
  [Symbol.asyncDispose](): Promise<void>
}

/** What changes() returns: `for await` takes changes until the loop ends; return() ends it. */
export interface ChangeStream<V = unknown> extends AsyncIterableIterator<StoreChange<V>> {
  next(): Promise<IteratorResult<StoreChange<V>, undefined>>
  return(): Promise<IteratorResult<StoreChange<V>, undefined>>
  [Symbol.asyncIterator](): ChangeStream<V>
}

/** The `code` of the process warning a watch error becomes when no onError is given. */
export const WATCH_WARNING_CODE = 'ANYSTORE_WATCH_ERROR'

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error)
}

function warn(message: string, error: unknown): void {
  process.emitWarning(`${message}: ${describe(error)}`, {
    type: 'AnyStoreWarning',
    code: WATCH_WARNING_CODE,
    detail: error instanceof Error ? error.stack : undefined,
  })
}

function checkOptions(options: WatchOptions | undefined): WatchOptions {
  if (options === undefined) return {}
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError('Expected the watch options to be an object such as `{ prefix: "user:" }`')
  }
  if (options.prefix !== undefined && typeof options.prefix !== 'string') {
    throw new InvalidOptionError('Expected `prefix` to be a string', 'prefix')
  }
  if (options.onError !== undefined && typeof options.onError !== 'function') {
    throw new InvalidOptionError('Expected `onError` to be a function', 'onError')
  }
  return options
}

class StoreWatcher<V> implements Watcher {
  readonly #listener: (change: StoreChange<V>) => unknown
  readonly #query: KeyQuery | undefined
  readonly #onError: ((error: unknown) => void) | undefined
  readonly #ended: () => void
  #subscription: BackendWatcher | undefined
  #closed = false

  constructor(
    listener: (change: StoreChange<V>) => unknown,
    options: WatchOptions,
    ended: () => void,
  ) {
    // In the async context of the watch() call, not of whatever read or commit noticed the
    // change: that may be inside another store's run(), whose held locks would refuse the
    // listener's writes to this one (ReentrantCallError).
    this.#listener = AsyncResource.bind(listener)
    this.#query = options.prefix === undefined ? undefined : { prefix: options.prefix }
    this.#onError = options.onError === undefined ? undefined : AsyncResource.bind(options.onError)
    this.#ended = ended
  }

  get closed(): boolean {
    return this.#closed
  }

  /**
   * Listens to `backend` (instead of the one before, if any). Each watcher has a subscription
   * of its own: a backend tells a new one of a failure that is still going on.
   */
  subscribe(backend: Backend, source: () => string): void {
    this.#subscription?.close()
    this.#subscription = undefined
    if (backend.watch === undefined) throw unsupported(backend)
    // Delivered once the backend's read or commit that found the changes has returned: a
    // listener that uses the store must not run inside it.
    this.#subscription = backend.watch(
      (changes) => {
        const where = source()
        queueMicrotask(() => this.#deliver(changes, where))
      },
      (error) => {
        const message = `Changes to ${source()} could not be read`
        queueMicrotask(() => this.fail(error, message))
      },
    )
  }

  #deliver(changes: readonly EntryChange[], source: string): void {
    if (this.#closed) return
    let change: StoreChange<V> | undefined
    try {
      change = decodeChange<V>(changes, this.#query, source)
    } catch (error) {
      this.fail(error, 'A change could not be decoded')
      return
    }
    if (change === undefined) return
    try {
      const outcome = this.#listener(change)
      if (typeof (outcome as { then?: unknown } | null)?.then === 'function') {
        ;(outcome as Promise<unknown>).then(undefined, (error: unknown) =>
          this.fail(error, 'A change listener failed'),
        )
      }
    } catch (error) {
      this.fail(error, 'A change listener threw')
    }
  }

  fail(error: unknown, message: string): void {
    if (this.#closed) return
    if (this.#onError === undefined) {
      warn(message, error)
      return
    }
    try {
      this.#onError(error)
    } catch (thrown) {
      warn('An onError handler of a change watcher threw', thrown)
    }
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#subscription?.close()
    this.#subscription = undefined
    this.#ended()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close()
  }
}

function unsupported(backend: Backend): InvalidOptionError {
  return new InvalidOptionError(
    `This store's backend (${backend.kind}) does not report changes: it has no watch()`,
    'backend',
  )
}

/** The keys of `changes` under `query`, decoded; undefined when none is. */
function decodeChange<V>(
  changes: readonly EntryChange[],
  query: KeyQuery | undefined,
  source: string,
): StoreChange<V> | undefined {
  const decode = (entry: Entry) => decodeValue(entry.value, source) as V
  const added: KeyAdded<V>[] = []
  const changed: KeyChanged<V>[] = []
  const deleted: KeyDeleted<V>[] = []
  for (const { key, before, after } of changes) {
    if (!matches(key, query)) continue
    if (before === undefined) {
      if (after !== undefined) added.push({ key, value: decode(after) })
    } else if (after === undefined) {
      deleted.push({ key, oldValue: decode(before) })
    } else {
      changed.push({ key, oldValue: decode(before), value: decode(after) })
    }
  }
  if (added.length + changed.length + deleted.length === 0) return undefined
  return { added, changed, deleted }
}

/** The watchers of one store; they follow the store when it switches backends. */
export class StoreWatchers {
  readonly #source: () => string
  readonly #watchers = new Set<StoreWatcher<never>>()

  /** `source` names the store in messages and decoding errors. */
  constructor(source: () => string) {
    this.#source = source
  }

  /** `onClosed`: told when the watcher ends, whoever ends it (changes() wakes its loop). */
  add<V>(
    backend: Backend,
    listener: (change: StoreChange<V>) => unknown,
    options?: WatchOptions,
    onClosed?: () => void,
  ): Watcher {
    if (typeof listener !== 'function') {
      throw new InvalidOptionError('Expected the change listener to be a function')
    }
    const checked = checkOptions(options)
    if (backend.watch === undefined) throw unsupported(backend)
    const watcher: StoreWatcher<V> = new StoreWatcher(listener, checked, () => {
      this.#watchers.delete(watcher as StoreWatcher<never>)
      onClosed?.()
    })
    watcher.subscribe(backend, this.#source)
    this.#watchers.add(watcher as StoreWatcher<never>)
    return watcher
  }

  /** The store now keeps its entries in `backend` (persistence switched): watch that one. */
  follow(backend: Backend): void {
    for (const watcher of this.#watchers) {
      try {
        watcher.subscribe(backend, this.#source)
      } catch (error) {
        watcher.fail(error, `Changes to ${this.#source()} cannot be watched`)
      }
    }
  }

  /** The store is closing: every watcher ends (and every changes() loop with it). */
  close(): void {
    for (const watcher of [...this.#watchers]) watcher.close()
  }
}

/**
 * `for await (const change of store.changes())`: a watcher, started at once (as events.on()
 * does: a change made between this call and the loop's first step is not missed) and closed
 * when the loop ends (break, return, throw), return() is called, or the store closes. Changes
 * wait in order until taken. Without `onError`, a failure to read changes ends the loop by
 * throwing it; a listener cannot fail here (the loop body is not one).
 */
export function changeStream<V>(
  watch: (
    listener: (change: StoreChange<V>) => void,
    options: WatchOptions,
    onClosed: () => void,
  ) => Watcher,
  options: WatchOptions = {},
): ChangeStream<V> {
  const queue: StoreChange<V>[] = []
  const waiting: {
    resolve(result: IteratorResult<StoreChange<V>, undefined>): void
    reject(error: unknown): void
  }[] = []
  let failure: { error: unknown } | undefined
  let done = false

  const finish = () => {
    done = true
    watcher.close()
    for (const waiter of waiting.splice(0)) waiter.resolve({ done: true, value: undefined })
  }
  const checked = checkOptions(options)
  const watcher: Watcher = watch(
    (change) => {
      const waiter = waiting.shift()
      if (waiter !== undefined) waiter.resolve({ done: false, value: change })
      else queue.push(change)
    },
    {
      prefix: checked.prefix,
      onError:
        checked.onError ??
        ((error) => {
          failure ??= { error }
          const waiter = waiting.shift()
          if (waiter === undefined) return
          finish()
          waiter.reject(error)
        }),
    },
    () => finish(),
  )

  return {
    next(): Promise<IteratorResult<StoreChange<V>, undefined>> {
      const change = queue.shift()
      if (change !== undefined) return Promise.resolve({ done: false, value: change })
      if (failure !== undefined && !done) {
        finish()
        return Promise.reject(failure.error)
      }
      if (done) return Promise.resolve({ done: true, value: undefined })
      return new Promise((resolve, reject) => waiting.push({ resolve, reject }))
    },
    return(): Promise<IteratorResult<StoreChange<V>, undefined>> {
      queue.length = 0
      finish()
      return Promise.resolve({ done: true, value: undefined })
    },
    [Symbol.asyncIterator]() {
      return this
    },
  }
}
