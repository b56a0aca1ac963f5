/** Keys are strings or numbers; `1` and `'1'` are different keys. */
export type StoreKey = string | number

/** Which keys a listing covers. A prefix matches string keys that start with it, never numbers. */
export interface KeyQuery {
  readonly prefix?: string | undefined
}

/** What `run()` hands its callback: reads see the locked, latest committed state plus this transaction's own writes. */
export interface Transaction<V> {
  /** `T` types this one value, unchecked like a cast: for a store whose values differ in type. */
  get<T = V>(key: StoreKey): Promise<T | undefined>
  has(key: StoreKey): Promise<boolean>
  set(key: StoreKey, value: V): Promise<void>
  /** Resolves to whether the key existed. */
  delete(key: StoreKey): Promise<boolean>
  keys(query?: KeyQuery): Promise<StoreKey[]>
  size(): Promise<number>
  entries(query?: KeyQuery): Promise<[StoreKey, V][]>
  clear(): Promise<void>
}
