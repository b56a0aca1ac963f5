/** Keys are strings or numbers; `1` and `'1'` are different keys. */
export type StoreKey = string | number

/** What `run()` hands its callback: reads see the locked, latest committed state plus this transaction's own writes. */
export interface Transaction<V> {
  get(key: StoreKey): Promise<V | undefined>
  has(key: StoreKey): Promise<boolean>
  set(key: StoreKey, value: V): Promise<void>
  /** Resolves to whether the key existed. */
  delete(key: StoreKey): Promise<boolean>
  keys(): Promise<StoreKey[]>
  size(): Promise<number>
  entries(): Promise<[StoreKey, V][]>
  clear(): Promise<void>
}
