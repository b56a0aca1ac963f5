/**
 * The `redis` option's types. Nothing here imports node-redis: the main entry point's types
 * must not depend on an optional peer dependency, and a store that does not use Redis must not
 * load it.
 */

/** A value a Redis command takes: text or bytes. */
export type RedisArgument = string | Buffer

/** The options of EVAL and EVALSHA in node-redis. */
export interface RedisEvalOptions {
  keys: RedisArgument[]
  arguments: RedisArgument[]
}

/**
 * The commands the Redis backend sends, as node-redis (5.6 and later) names them on a client
 * and on a cluster: each routes by its first key, and every key of a store is in one slot.
 */
export interface RedisCommands {
  hGet(key: RedisArgument, field: RedisArgument): Promise<unknown>
  hmGet(key: RedisArgument, fields: RedisArgument[]): Promise<unknown>
  evalSha(sha1: string, options: RedisEvalOptions): Promise<unknown>
  eval(script: string, options: RedisEvalOptions): Promise<unknown>
}

/**
 * A node-redis client: `createClient()` or `createCluster()` from the `redis` package, 5.6 or
 * later (before 5.6, a client whose queued commands were aborted during an outage could stop
 * answering after it reconnected). Only what the backend uses is spelt out; the store adds no
 * listener to it and never closes it.
 */
export interface RedisClientLike {
  /** node-redis: a view of the client whose commands use these options. */
  withCommandOptions(options: never): unknown
  readonly isOpen: boolean
  /** node-redis: connected and ready to write commands (else they wait in its queue). */
  readonly isReady?: boolean
  /**
   * node-redis: a new client with the same options. `watch()` subscribes on one (pub/sub takes
   * a connection over), which the store closes when the last watcher closes.
   */
  duplicate?(): unknown
}

/** Where a store lives in Redis: see `AnyStoreOptions.redis`. */
export interface RedisOptions {
  /**
   * `redis://[[user]:password@]host[:port][/db]` (or `rediss://` for TLS): the store creates a
   * client, connects it, and closes it on `close()`. Not with `client`.
   */
  url?: string
  /**
   * A node-redis client of yours, connected (`createClient()` or `createCluster()`): the store
   * sends its commands through it and never closes it. Not with `url`.
   */
  client?: RedisClientLike
  /**
   * The store's name: its keys are `anystore:{name}:*` (the braces keep them in one Cluster
   * hash slot). Not secret: it is visible on the server. Without `{` and `}`.
   */
  name: string
  /**
   * How long a call may wait for the server (connecting, reconnecting included) before it
   * fails with `BackendUnavailableError`.
   * @default 5000
   */
  timeoutMs?: number
}

export const DEFAULT_REDIS_TIMEOUT_MS = 5000

/** The `redis` option once checked. */
export interface ResolvedRedisOptions {
  readonly url: string | undefined
  readonly client: RedisClientLike | undefined
  readonly name: string
  readonly timeoutMs: number
}
