import { defineDriver } from 'unstorage'
import { keysWithPrefix, StoreHandle, type StoreSource } from './shared.js'

export type { StoreSource } from './shared.js'

/** unstorage passes bases as `a:b:`, or `a:b` when a driver is called directly. */
function basePrefix(base: string | undefined): string {
  const trimmed = (base ?? '').replace(/:+$/, '')
  return trimmed === '' ? '' : `${trimmed}:`
}

/**
 * An unstorage driver over an anystore store: `anystoreDriver({ file, encryptionKey })` opens
 * the store on first use and `storage.dispose()` closes it; `anystoreDriver(store)` uses a store
 * already open and leaves closing it to its owner. Keys are stored as unstorage makes them
 * (`a:b:c`). There is no `getMeta`: the store keeps no per-key times or sizes, and unstorage's
 * own `key$` meta entries work as with any driver. There is no `watch` either.
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

    async setItem(key: string, value: string) {
      await (await store()).set(key, value)
    },

    async setItemRaw(key: string, value: unknown) {
      await (await store()).set(key, value)
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
