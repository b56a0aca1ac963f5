import { EventEmitter } from 'node:events'
import type { Keyv, KeyvStoreAdapter, StoredData } from 'keyv'
import type { AnyStore } from '../index.js'
import { keysWithPrefix, StoreHandle, type StoreSource } from './shared.js'

export type { StoreSource } from './shared.js'

/**
 * When a value keyv stored expires. keyv hands adapters `{ value, expires }`, serialized by
 * default to JSON (so are its compressed values), or as it is with `serialize: undefined`.
 * A value in any other format counts as never expiring.
 */
function expiryOf(stored: unknown): number | undefined {
  let data = stored
  if (typeof stored === 'string') {
    try {
      data = JSON.parse(stored)
    } catch {
      return undefined
    }
  }
  if (typeof data !== 'object' || data === null || !('expires' in data)) return undefined
  return typeof data.expires === 'number' ? data.expires : undefined
}

/**
 * A keyv storage adapter over an anystore store: `new Keyv({ store: new KeyvAnyStore({ file,
 * encryptionKey }) })` opens the store on first use and `keyv.disconnect()` closes it;
 * `new KeyvAnyStore(store)` uses a store already open and leaves closing it to its owner.
 * Keys are stored as keyv makes them, `namespace:key`.
 */
export class KeyvAnyStore extends EventEmitter implements KeyvStoreAdapter {
  /**
   * What keyv reads from adapters. keyv 5 calls `opts.url.includes()` on every adapter with an
   * iterator, so `url` must be a string; it is left empty, not the store's path, because a path
   * containing "redis" or "sqlite" would turn on `keyv.iterator()` for some stores and not
   * others. The options the adapter was made with are not kept here: they hold the key.
   */
  readonly opts: { dialect: string; url: string } = { dialect: 'anystore', url: '' }
  /** Set by keyv; `clear()` acts within it. */
  namespace?: string | undefined
  readonly #handle: StoreHandle

  constructor(source: StoreSource) {
    super()
    this.#handle = new StoreHandle(source, (error) => {
      // keyv's get() swallows what the adapter throws: this event is where a store that cannot
      // be opened (wrong key, damaged file) shows. Node's emitter would throw it unheard.
      if (this.listenerCount('error') > 0) this.emit('error', error)
    })
  }

  /** The store, opening it first if needed: for reading or writing outside keyv. */
  store(): Promise<AnyStore> {
    return this.#handle.store()
  }

  async get<Value>(key: string): Promise<StoredData<Value> | undefined> {
    const store = await this.#handle.store()
    return store.get<StoredData<Value>>(key)
  }

  async getMany<Value>(keys: string[]): Promise<StoredData<Value | undefined>[]> {
    const store = await this.#handle.store()
    return Promise.all(keys.map((key) => store.get<StoredData<Value>>(key)))
  }

  /**
   * `ttl` (milliseconds, as keyv passes it) becomes the entry's expiry in the store, so that
   * the file drops the entry at the next commit after it expired (keyv deletes an expired value
   * only when it happens to read it), and the key is gone for every other reader of the file.
   * keyv also wraps `value` with its own `expires`, computed as `Date.now() + ttl` just before
   * calling this; the store computes its time the same way a moment later, so it is the same or
   * a few milliseconds later, never earlier: keyv's own check decides first, and the store never
   * hides a value that keyv would still return. keyv passes no ttl for 0; one that is not a
   * finite number (keyv stores `expires` as null then) means no expiry, a negative one an
   * entry already expired, as it does for keyv. keyv's `setMany()` falls back to one `set()`
   * per entry, and the store commits the sets of one event loop turn together, in one write.
   */
  async set(key: string, value: unknown, ttl?: number): Promise<void> {
    const store = await this.#handle.store()
    const finite = typeof ttl === 'number' && Number.isFinite(ttl)
    await store.set(key, value, finite ? { ttlMs: Math.max(0, ttl) } : undefined)
  }

  async delete(key: string): Promise<boolean> {
    const store = await this.#handle.store()
    return store.delete(key)
  }

  /** In one commit; true when every key existed, as keyv's own fallback answers. */
  async deleteMany(keys: string[]): Promise<boolean> {
    const store = await this.#handle.store()
    return store.run(async (tx) => {
      let all = true
      for (const key of keys) all = (await tx.delete(key)) && all
      return all
    })
  }

  /**
   * Deletes the current namespace's keys in one commit, leaving other namespaces and anything
   * else in the file alone. Without a namespace (keyv's default is "keyv") it empties the store.
   */
  async clear(): Promise<void> {
    const store = await this.#handle.store()
    const namespace = this.namespace
    if (!namespace) return store.clear()
    await store.run(async (tx) => {
      for (const key of await keysWithPrefix(tx, `${namespace}:`)) await tx.delete(key)
    })
  }

  /**
   * keyv 5 takes an adapter's has() as its answer, with no expiry check of its own. The store
   * hides what expired; keyv's `expires` is checked too, for values stored without an expiry
   * (by an earlier version of this adapter, or by other code writing keyv's format).
   */
  async has(key: string): Promise<boolean> {
    const store = await this.#handle.store()
    const stored = await store.get(key)
    if (stored === undefined) return false
    const expires = expiryOf(stored)
    return expires === undefined || Date.now() <= expires
  }

  /** `[key, stored value]` of each key in `namespace` (every string key without one). */
  async *iterator<Value>(
    namespace?: string,
  ): AsyncGenerator<Array<string | Awaited<Value> | undefined>, void> {
    const store = await this.#handle.store()
    for (const key of await keysWithPrefix(store, namespace ? `${namespace}:` : '')) {
      const stored = await store.get<Awaited<Value>>(key)
      // Deleted since the keys were listed.
      if (stored !== undefined) yield [key, stored]
    }
  }

  /** Closes the store if the adapter opened it; a store passed in stays open. */
  async disconnect(): Promise<void> {
    await this.#handle.close()
  }
}

/**
 * keyv 5 gives `keyv.iterator()` only to adapters for the databases it lists (sqlite, redis,
 * ...), whatever iterator the adapter has. This attaches the adapter's. Returns `keyv`.
 */
export function withIterator<K extends Keyv>(keyv: K): K {
  const adapter: unknown = keyv.store
  if (keyv.iterator === undefined && adapter instanceof KeyvAnyStore) {
    keyv.iterator = keyv.generateIterator((namespace?: string) => adapter.iterator(namespace))
  }
  return keyv
}
