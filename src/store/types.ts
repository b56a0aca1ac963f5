/** Keys are strings or numbers; `1` and `'1'` are different keys. */
export type StoreKey = string | number

/** Which keys a listing covers. A prefix matches string keys that start with it, never numbers. */
export interface KeyQuery {
  readonly prefix?: string | undefined
}

/**
 * When a value written by set() or setIfAbsent() expires: `ttlMs` milliseconds after the call,
 * or at `expiresAt` (a Date, or milliseconds since the epoch); never, without either.
 */
export interface SetOptions {
  readonly ttlMs?: number | undefined
  readonly expiresAt?: Date | number | undefined
}

/** What `run()` hands its callback: reads see the locked, latest committed state plus this transaction's own writes. */
export interface Transaction<V> {
  /** `T` types this one value, unchecked like a cast: for a store whose values differ in type. */
  get<T = V>(key: StoreKey): Promise<T | undefined>
  has(key: StoreKey): Promise<boolean>
  /** The milliseconds `key` has left, or undefined when it has no expiry or is absent. */
  ttl(key: StoreKey): Promise<number | undefined>
  set(key: StoreKey, value: V, options?: SetOptions): Promise<void>
  /** Sets `key` only if it is absent (or expired); resolves to whether it did. */
  setIfAbsent(key: StoreKey, value: V, options?: SetOptions): Promise<boolean>
  /** Gives `key` a new expiry, `ttlMs` from now, or none (undefined); resolves to whether it existed. */
  expire(key: StoreKey, ttlMs: number | undefined): Promise<boolean>
  /** Resolves to whether the key existed. */
  delete(key: StoreKey): Promise<boolean>
  keys(query?: KeyQuery): Promise<StoreKey[]>
  size(): Promise<number>
  entries(query?: KeyQuery): Promise<[StoreKey, V][]>
  clear(): Promise<void>
}
