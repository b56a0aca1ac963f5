import {
  BackendUnavailableError,
  ForeignDataError,
  InvalidOptionError,
} from '../../store/errors.js'
import { Deadlines, monotonicNow, TIMED_OUT } from './deadlines.js'
import type { Script } from './scripts.js'
import type {
  RedisArgument,
  RedisClientLike,
  RedisCommands,
  RedisEvalOptions,
  ResolvedRedisOptions,
} from './types.js'

/** node-redis's sendCommand() of a client of one server: a command as Redis takes it. */
interface SendsCommands {
  sendCommand(args: RedisArgument[], options: object): Promise<unknown>
}

/**
 * Whether `client` is node-redis's client of one server (createClient(), or a pool of them):
 * RedisCluster has `masters` and RedisSentinel `getMasterNode`, each with a sendCommand() of
 * other arguments.
 */
function isSingleServerClient(client: RedisClientLike): boolean {
  return !('masters' in client || 'getMasterNode' in client)
}

/** node-redis's RESP type of bulk strings ('$'): mapped to Buffer, since entries are bytes. */
const BLOB_STRING = 36

/**
 * The options of every command the store sends: bulk strings as Buffers, and no timer of the
 * client's own. node-redis 6 gives each command one (an AbortSignal.timeout, 5 s by default)
 * for its wait in the client's queue. It cost about a fifth of a command's CPU time here, and
 * the store keeps that deadline itself (`timeoutMs`, with an abort for a queued command); a
 * queued commit rejected at 5 s as a timeout would leave the store unable to say it was never
 * sent.
 */
const COMMAND_OPTIONS = { typeMapping: { [BLOB_STRING]: Buffer }, timeout: 0 }

/** Whether a write may have reached the server: it decides what a failure tells the caller. */
export type CallKind = 'read' | 'write'

/**
 * Whether `error` is an instance of node-redis's class `name`, by name along its prototype
 * chain: a client passed in may come from another copy of node-redis than ours, and its errors
 * are then not `instanceof` our classes.
 */
function isA(error: unknown, name: string): boolean {
  for (let p = error as object | null; p !== null && p !== undefined; p = Object.getPrototypeOf(p)) {
    if ((p as { constructor?: { name?: string } }).constructor?.name === name) return true
  }
  return false
}

/**
 * node-redis's errors for a connection that failed, closed or went silent: a command in flight
 * may have run. Any other error (one the client raises while it builds a command, before
 * anything is written, or a bug) says nothing about the server.
 */
const CONNECTION_ERRORS = [
  'SocketClosedUnexpectedlyError',
  'ConnectionTimeoutError',
  'SocketTimeoutError',
  'DisconnectsClientError',
  'ReconnectStrategyError',
  'TimeoutError',
]

/** Whether `error` is the loss of the connection: one of the above, or a socket's system error. */
function isConnectionError(error: unknown): boolean {
  if (CONNECTION_ERRORS.some((name) => isA(error, name))) return true
  const { code, syscall } = (error ?? {}) as { code?: unknown; syscall?: unknown }
  return typeof syscall === 'string' || (typeof code === 'string' && /^(E[A-Z]+|ERR_(SOCKET|STREAM|TLS)_\w+)$/.test(code))
}

/** Replies after which the command was not run and may be sent again soon. */
const TRANSIENT_REPLY = /^(LOADING|BUSY|TRYAGAIN|MASTERDOWN|CLUSTERDOWN|READONLY)\b/

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** What a subscription reports: see RedisConnection.subscribe. */
export interface SubscriptionHandlers {
  /** A message published on the channel, as bytes. */
  message(message: Buffer): void
  /**
   * The connection was lost and is back, subscribed again: what was published meanwhile is
   * lost, so whoever listens must look for it.
   */
  reconnected(): void
  /** The connection failed (it is retried): BackendUnavailableError. */
  error(error: unknown): void
}

export interface Subscription {
  /** Settles once the server has confirmed the subscription; rejects if closed before. */
  readonly subscribed: Promise<void>
  close(): void
}

/** What a subscription needs of a node-redis client (or cluster) made by duplicate(). */
interface SubscriberClient {
  on(event: 'error' | 'ready', listener: (error?: unknown) => void): unknown
  connect(): Promise<unknown>
  sSubscribe(channel: string, listener: (message: Buffer) => void, bufferMode: true): Promise<void>
  destroy(): void
}


/**
 * The credentials never appear in messages: the URL as messages show it, without them.
 */
export function displayUrl(url: string): string {
  try {
    const parsed = new URL(url)
    parsed.username = ''
    parsed.password = ''
    return parsed.toString().replace(/\/$/, '')
  } catch {
    return 'an unparsable Redis URL'
  }
}

/**
 * The backend's line to the server: every call gets at most `timeoutMs` (a reconnection
 * included), then fails with BackendUnavailableError; node-redis errors never reach the store.
 * A call lost with its connection is sent again once the client has reconnected, within the
 * same time: reads are safe to repeat, and commits carry an id that the server remembers.
 */
export class RedisConnection {
  readonly #client: RedisClientLike
  readonly #owned: boolean
  readonly #location: string
  readonly #timeoutMs: number
  /** The last connection error of a client of our own, while it is not connected: for messages. */
  readonly #connectionError: () => unknown
  /** The client's commands with bulk strings as Buffers: made once, not per call. */
  readonly #commands: RedisCommands
  readonly #deadlines = new Deadlines()

  private constructor(
    client: RedisClientLike,
    owned: boolean,
    location: string,
    timeoutMs: number,
    connectionError: () => unknown = () => undefined,
  ) {
    this.#client = client
    this.#owned = owned
    this.#location = location
    this.#timeoutMs = timeoutMs
    this.#connectionError = connectionError
    this.#commands = this.#commandsWith(COMMAND_OPTIONS)
  }

  /**
   * The commands, sent through a view of the client with these command options. A client of
   * one server sends them with sendCommand(), as Redis takes them: its typed methods (hmGet,
   * evalSha) first build each command through a parser of their own, which cost a `get` 19 µs
   * and a `set` 14 µs of CPU time (docs/PERFORMANCE.md, "The third pass on `set`"). The options
   * go with each command as well: node-redis 5 applies the client's own options to
   * sendCommand(), not the view's. Anything else keeps the typed methods: a cluster (its
   * sendCommand() is told the key to route by), a Sentinel client (told whether the command
   * only reads). A client with a `keyPrefix` is refused when the store opens (options.ts).
   */
  #commandsWith(options: object): RedisCommands {
    const view = this.#client.withCommandOptions(options as never) as RedisCommands & SendsCommands
    if (!isSingleServerClient(this.#client)) return view
    const send = (args: RedisArgument[]) => view.sendCommand(args, options)
    const withKeys = (name: string, first: string, { keys, arguments: args }: RedisEvalOptions) =>
      send([name, first, String(keys.length), ...keys, ...args])
    return {
      hGet: (key, field) => send(['HGET', key, field]),
      hmGet: (key, fields) => send(['HMGET', key, ...fields]),
      evalSha: (sha1, options) => withKeys('EVALSHA', sha1, options),
      eval: (script, options) => withKeys('EVAL', script, options),
    }
  }

  /** Connects a client of our own to `options.url`, or takes the one given, which must be open. */
  static async open(options: ResolvedRedisOptions, location: string): Promise<RedisConnection> {
    const timeoutMs = options.timeoutMs
    if (options.client !== undefined) {
      if (!options.client.isOpen) {
        throw new BackendUnavailableError(location, 'the client given is not connected: call connect() first')
      }
      return new RedisConnection(options.client, false, location, timeoutMs)
    }
    let redis: typeof import('redis')
    try {
      redis = await import('redis')
    } catch (error) {
      throw new InvalidOptionError(
        `The \`redis\` option needs the \`redis\` package (node-redis): npm install redis (${(error as Error).message})`,
        'redis',
      )
    }
    let lastError: unknown
    let client: ReturnType<typeof redis.createClient>
    try {
      client = redis.createClient({
        url: options.url,
        // Given up only by close(): after an outage the store works again by itself.
        socket: {
          connectTimeout: timeoutMs,
          reconnectStrategy: (retries: number) => Math.min(20 * 2 ** Math.min(retries, 10), 500),
        },
      })
    } catch (error) {
      throw new InvalidOptionError(`Expected \`redis.url\` to be a Redis URL: ${(error as Error).message}`, 'redis')
    }
    let connectionError: unknown
    // Without a listener an 'error' event (each failed reconnection) would end the process.
    client.on('error', (error: unknown) => {
      lastError = error
      connectionError = error
    })
    client.on('ready', () => {
      connectionError = undefined
    })
    const connecting = client.connect()
    let timer: NodeJS.Timeout | undefined
    try {
      await Promise.race([
        connecting,
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(TIMED_OUT), timeoutMs)
        }),
      ])
    } catch (error) {
      connecting.catch(() => {})
      client.destroy()
      const cause = error === TIMED_OUT ? lastError : error
      throw new BackendUnavailableError(
        location,
        `could not connect within ${timeoutMs} ms${cause === undefined ? '' : `: ${describe(cause)}`}`,
        { cause },
      )
    } finally {
      clearTimeout(timer)
    }
    return new RedisConnection(
      client as unknown as RedisClientLike,
      true,
      location,
      timeoutMs,
      () => connectionError,
    )
  }

  /**
   * Runs `op` (which may send several commands) within the timeout, sending it again after a
   * lost connection or a reply that says to try again. `kind` 'write': `op` must be safe to
   * repeat (a commit with its id), and a failure after it may have been sent says so.
   * `op` is told whether an earlier attempt of the call may have reached the server.
   */
  async call<T>(kind: CallKind, op: (commands: RedisCommands, sentBefore: boolean) => Promise<T>): Promise<T> {
    const deadline = monotonicNow() + this.#timeoutMs
    let maybeSent = false
    let lastError: unknown
    const fail = (detail: string, cause: unknown) =>
      new BackendUnavailableError(this.#location, detail, {
        cause,
        outcomeUnknown: kind === 'write' && maybeSent,
      })
    const noAnswer = () => {
      const why = lastError ?? this.#connectionError()
      return fail(`no answer within ${this.#timeoutMs} ms${why === undefined ? '' : `: ${describe(why)}`}`, why)
    }
    for (;;) {
      if (deadline - monotonicNow() <= 0) throw noAnswer()
      // A throw here (a command the client cannot build) means nothing was sent: it propagates.
      let attempt: Promise<T>
      let expire: (() => void) | undefined
      if (this.#client.isReady === true) {
        // Connected: the commands are written at once, so there is nothing to take back from
        // the client's queue when the deadline passes. A read then answered late is dropped.
        attempt = op(this.#commands, maybeSent)
      } else {
        // Not connected: the commands wait in the client's queue until it reconnects. At the
        // deadline they are taken out, so that `op` rejects with AbortError (they were never
        // sent) before the deadline does, once its rejection has passed through op's awaits.
        const controller = new AbortController()
        expire = () => controller.abort()
        attempt = op(
          this.#commandsWith({ ...COMMAND_OPTIONS, abortSignal: controller.signal }),
          maybeSent,
        )
      }
      try {
        return await this.#deadlines.within(attempt, deadline, expire)
      } catch (error) {
        if (error === TIMED_OUT) {
          // Written, or queued to be written, and no answer: the server may have run it.
          maybeSent = true
          throw noAnswer()
        }
        if (isA(error, 'AbortError')) throw noAnswer()
        if (isA(error, 'ClientClosedError')) throw fail('the client is closed', error)
        if (isA(error, 'ErrorReply')) {
          const message = (error as Error).message
          if (message.startsWith('WRONGTYPE')) {
            throw new ForeignDataError(this.#location, 'a key under the name holds a value of another type')
          }
          if (!TRANSIENT_REPLY.test(message)) throw fail(`the server refused the command: ${message}`, error)
          lastError = error
          await sleep(Math.min(50, Math.max(1, deadline - monotonicNow())))
          continue
        }
        // Raised before the command was written (a TypeError for an argument node-redis cannot
        // encode; on a cluster, a RangeError for more arguments than its typed methods can
        // spread): the server never saw it.
        if (!isA(error, 'ClientOfflineError') && !isConnectionError(error)) throw error
        lastError = error
        if (isA(error, 'ClientOfflineError')) {
          // A client without an offline queue refuses at once while it reconnects.
          await sleep(Math.min(25, Math.max(1, deadline - monotonicNow())))
          continue
        }
        // The connection was lost with the command written, or about to be: it may have run.
        // The client queues the next attempt until it has reconnected; the pause only keeps a
        // client that fails every command at once from spinning.
        maybeSent = true
        await sleep(Math.min(5, Math.max(1, deadline - monotonicNow())))
      }
    }
  }

  /**
   * `script` with these keys and arguments: EVALSHA, or EVAL when the server does not have it.
   * `args` as a function gets whether an earlier attempt may have reached the server.
   */
  runScript(
    kind: CallKind,
    script: Script,
    keys: RedisArgument[],
    args: RedisArgument[] | ((sentBefore: boolean) => RedisArgument[]),
  ): Promise<unknown> {
    return this.call(kind, (commands, sentBefore) => {
      const options = { keys, arguments: typeof args === 'function' ? args(sentBefore) : args }
      return commands.evalSha(script.sha, options).catch((error: unknown) => {
        if (!isA(error, 'ErrorReply') || !(error as Error).message.startsWith('NOSCRIPT')) throw error
        return commands.eval(script.text, options)
      })
    })
  }

  /**
   * Subscribes to the shard channel `channel` (SSUBSCRIBE, Redis 7.0 or later) on a connection of its own (pub/sub takes a connection over): a
   * duplicate of the client, with its options, which close() closes, whoever made the client.
   * node-redis reconnects it by itself and subscribes again before it reports it ready.
   */
  subscribe(channel: string, handlers: SubscriptionHandlers): Subscription {
    const source = this.#client as { duplicate?: () => unknown }
    if (typeof source.duplicate !== 'function') {
      throw new InvalidOptionError(
        'Watching a Redis store needs a second connection, and the `redis.client` given has no duplicate(): pass a node-redis client',
        'redis',
      )
    }
    const client = source.duplicate() as SubscriberClient
    let closed = false
    let connections = 0
    // Without a listener an 'error' event (each failed reconnection) would end the process.
    client.on('error', (error) => {
      if (closed) return
      handlers.error(
        new BackendUnavailableError(this.#location, `the connection that hears commits failed: ${describe(error)}`, {
          cause: error,
        }),
      )
    })
    client.on('ready', () => {
      if (!closed && connections++ > 0) handlers.reconnected()
    })
    const connecting = client.connect()
    const subscribed = connecting.then(() => {
      if (closed) throw new Error('closed before it subscribed')
      return client.sSubscribe(channel, (message) => {
        if (!closed) handlers.message(message)
      }, true)
    })
    subscribed.catch(() => {})
    return {
      subscribed,
      close: () => {
        if (closed) return
        closed = true
        client.destroy()
        // node-redis: destroy() during connect() leaves the socket it is opening open, and
        // connect() then resolves; destroyed again then, it closes.
        connecting.then(
          () => client.destroy(),
          () => {},
        )
      },
    }
  }

  /** Closes the client if the store created it; one given is left as it is. */
  close(): void {
    // The deadlines stay: a call still waiting on a client of the application's ends at its own.
    if (!this.#owned || !this.#client.isOpen) return
    ;(this.#client as unknown as { destroy(): void }).destroy()
  }
}

function describe(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return describe(error.errors[0])
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code
    return typeof code === 'string' && !error.message.includes(code) ? `${code}: ${error.message}` : error.message
  }
  return String(error)
}
