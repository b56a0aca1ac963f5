import {
  AnyStore,
  type AnyStoreOptions,
  type KeyQuery,
  StoreClosedError,
  type StoreKey,
} from '../index.js'

/** What an adapter is built from: the options to open a store with, or a store already open. */
export type StoreSource = AnyStoreOptions | AnyStore

/**
 * The string keys under `prefix` (all string keys for ''). Number keys are skipped: keyv and unstorage only make string keys, so a number key
 * belongs to other code sharing the file.
 */
export async function keysWithPrefix(
  source: { keys(query?: KeyQuery): Promise<StoreKey[]> },
  prefix: string,
): Promise<string[]> {
  // A prefix, even '', matches string keys only.
  return (await source.keys({ prefix })) as string[]
}

/**
 * The store behind an adapter. Given options, it opens the store on first use (keyv and
 * unstorage construct their adapters synchronously) and closes it on `close()`. Given a store,
 * it never closes it: whoever opened it still owns it.
 */
export class StoreHandle {
  readonly #options: AnyStoreOptions | undefined
  readonly #onOpenError: (error: unknown) => void
  #store: Promise<AnyStore> | undefined
  #closed = false

  constructor(source: StoreSource, onOpenError: (error: unknown) => void = () => {}) {
    if (source instanceof AnyStore) {
      this.#store = Promise.resolve(source)
    } else {
      // A copy, so that a caller changing its object later cannot change what is opened.
      this.#options = { ...source }
    }
    this.#onOpenError = onOpenError
  }

  /** Whether `close()` closes the store, i.e. the handle opened it. */
  get owned(): boolean {
    return this.#options !== undefined
  }

  store(): Promise<AnyStore> {
    if (this.#closed) return Promise.reject(new StoreClosedError('adapter'))
    if (this.#store === undefined) {
      const opening = AnyStore.open(this.#options)
      this.#store = opening
      opening.catch((error: unknown) => {
        // Not kept: a failed open (a file not readable yet, say) is tried again on the next use.
        if (this.#store === opening) this.#store = undefined
        this.#onOpenError(error)
      })
    }
    return this.#store
  }

  /** Closes the store if this handle opened it; later calls to `store()` reject. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const store = this.#store
    this.#store = undefined
    if (!this.owned || store === undefined) return
    // An open still in flight is waited for, so that its file descriptors are released too.
    const opened = await store.catch(() => undefined)
    await opened?.close()
  }
}
