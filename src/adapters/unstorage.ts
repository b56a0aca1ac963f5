import { defineDriver, type TransactionOptions } from 'unstorage'
import { InvalidOptionError, type SetOptions } from '../index.js'
import { keysWithPrefix, StoreHandle, type StoreSource } from './shared.js'

export type { StoreSource } from './shared.js'

/** unstorage passes bases as `a:b:`, or `a:b` when a driver is called directly. */
function basePrefix(base: string | undefined): string {
  const trimmed = (base ?? '').replace(/:+$/, '')
  return trimmed === '' ? '' : `${trimmed}:`
}

/**
 * The expiry asked for by `setItem(key, value, { ttl })`. unstorage's core defines no options
 * for writes, but its drivers for stores that expire keys (redis, upstash, vercel-kv, deno-kv,
 * cloudflare-kv) read `ttl`, in seconds, and store no expiry for 0 or none; so does this one.
 */
function expiryOf(options: TransactionOptions | undefined): SetOptions | undefined {
  const ttl: unknown = options?.ttl
  if (ttl === undefined || ttl === 0) return undefined
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0) {
    throw new InvalidOptionError('Expected `ttl` to be a number of seconds, 0 or more', 'ttl')
  }
  return { ttlMs: ttl * 1000 }
}

/**
 * An unstorage driver over an anystore store: `anystoreDriver({ file, encryptionKey })` opens
 * the store on first use and `storage.dispose()` closes it; `anystoreDriver(store)` uses a store
 * already open and leaves closing it to its owner. Keys are stored as unstorage makes them
 * (`a:b:c`). `setItem(key, value, { ttl })` stores the item with an expiry, `ttl` seconds from
 * now. There is no `getMeta`: unstorage's own `key$` meta entries work as with any driver.
 * There is no `watch` either.
 */
const anystoreDriver = defineDriver((source: StoreSource) => {
  const handle = new StoreHandle(source)
  const store = () => handle.store()

  return {
    // No `options`: unstorage shows a driver's options to anyone holding the storage, and
    // these hold the encryption key.
    name: 'anystore',

    async hasItem(key: string) {
      return (await store()).has(key)
    },

    async getItem(key: string) {
      return (await (await store()).get(key)) ?? null
    },

    // Raw values are kept as they are: the store holds bytes natively, with no base64 detour.
    async getItemRaw(key: string) {
      return (await (await store()).get(key)) ?? null
    },

    async setItem(key: string, value: string, options?: TransactionOptions) {
      const expiry = expiryOf(options)
      await (await store()).set(key, value, expiry)
    },

    async setItemRaw(key: string, value: unknown, options?: TransactionOptions) {
      const expiry = expiryOf(options)
      await (await store()).set(key, value, expiry)
    },

    async removeItem(key: string) {
      await (await store()).delete(key)
    },

    async getKeys(base: string | undefined) {
      return keysWithPrefix(await store(), basePrefix(base))
    },

    /** Only the keys under `base`, in one commit; everything without one. */
    async clear(base: string | undefined) {
      const opened = await store()
      const prefix = basePrefix(base)
      if (prefix === '') return opened.clear()
      await opened.run(async (tx) => {
        for (const key of await keysWithPrefix(tx, prefix)) await tx.delete(key)
      })
    },

    /** Closes the store if the driver opened it; a store passed in stays open. */
    async dispose() {
      await handle.close()
    },
  }
})

export default anystoreDriver
