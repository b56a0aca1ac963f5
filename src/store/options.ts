import { homedir } from 'node:os'
import { isAbsolute, join, resolve } from 'node:path'
import { inspect } from 'node:util'
import { DEFAULT_ENCRYPTION_KEY, parseKey } from '../crypto.js'
import { InvalidKeyError, InvalidOptionError } from './errors.js'
import { type FileSystem, nodeFileSystem } from '../backends/file/fsio.js'
import type { Backend } from '../backends/backend.js'
import {
  DEFAULT_REDIS_TIMEOUT_MS,
  type RedisOptions,
  type ResolvedRedisOptions,
} from '../backends/redis/types.js'
import { KeyRing } from './keyring.js'

/** What each commit does about fsync. */
export type SyncMode = 'always' | 'never'
/**
 * The `sync` option: a commit per write, fsynced (`'always'`) or not (`'never'`), or writes
 * acknowledged from memory and committed together, fsynced, within `everyMs` (write-behind).
 */
export type SyncPolicy = SyncMode | { readonly everyMs: number }
export type LockMode = 'flock' | 'proper-lockfile' | 'auto'

/**
 * The options of `AnyStore.open()`. A property set to `undefined` takes its default, except
 * `encryptionKey`; a property not listed here is an InvalidOptionError naming the closest one.
 */
export interface AnyStoreOptions {
  /**
   * Persist to this file. `~/` expands to the home directory; relative paths resolve against
   * the current directory; missing parent directories are created with mode 0700.
   */
  file?: string
  /**
   * Keep the store in a file (`true`) or only in memory (`false`).
   * @default true when `file` is given, false otherwise
   */
  persist?: boolean
  /**
   * Base64 (padded or not) of 16, 24 or 32 random bytes, or the bytes themselves; picks
   * AES-128/192/256-GCM. The default key is public: it only obfuscates, and persisting under
   * it emits one process warning (code `ANYSTORE_DEFAULT_KEY`). Only leaving the property out
   * means the default key: present but `undefined` (an unset environment variable), `''` or
   * empty bytes is an InvalidKeyError, so a missing secret never silently weakens the file.
   * @default DEFAULT_ENCRYPTION_KEY
   */
  encryptionKey?: string | Uint8Array
  /**
   * Keys also accepted for reading, never used to write: a file written under any of them
   * opens, and the next commit re-encrypts it under `encryptionKey`. For rotating keys with no
   * downtime (README, "Rotating the key"). Each is given like `encryptionKey`; an `undefined`
   * or empty one is an InvalidKeyError. Each key tried costs one HMAC when a new version of
   * the file is loaded, nothing on reads of an unchanged store.
   * @default []
   */
  acceptedKeys?: readonly (string | Uint8Array)[]
  /**
   * Derive the key from this passphrase instead of passing `encryptionKey` (not both: an
   * InvalidOptionError). scrypt with a random salt kept in the file, N = 2^17, r = 8, p = 1:
   * about 128 MiB and half a second, once per open (the event loop waits), and each guess at
   * the passphrase costs an attacker the same. A random key (`newKey()`) needs none of that and
   * cannot be guessed: prefer it where a program, not a person, holds the secret. A string is
   * normalized (NFC) and taken as UTF-8; bytes are taken as they are; at least 8 bytes.
   * Present but `undefined` or empty is an InvalidKeyError.
   */
  passphrase?: string | Uint8Array
  /**
   * Deflate the payload before encrypting. Smaller files for repetitive data, slower commits.
   * @default false
   */
  compress?: boolean
  /**
   * `'always'`: fsync the new file and its directory before a write resolves, so an
   * acknowledged write survives power loss. `'never'`: skip both fsyncs; a crash of the machine
   * (not of the process) may roll the store back to an older complete state, never a torn one.
   * `{ everyMs }`: write-behind. `set`, `delete` and `clear` resolve once the change is in this
   * instance's memory (its reads see it at once); the changes are committed together, fsynced
   * as with `'always'`, at most `everyMs` after the first of them, and only then seen by other
   * instances and processes. Up to `everyMs` of acknowledged writes are lost if the process is
   * killed. `flush()`, `close()`, `run()` and a normal end of the process commit them at once
   * (README, "Durability"). rekey and restore commit at once: there it acts as `'always'`.
   * @default 'always'
   */
  sync?: SyncPolicy
  /**
   * How long a write waits for the cross-process lock before failing with `LockTimeoutError`.
   * @default 10000
   */
  lockTimeoutMs?: number
  /**
   * `'flock'`: flock(2) on `<file>.lock` through fs-ext. `'proper-lockfile'`: a lock directory
   * `<file>.plock` (works where flock does not, but a killed holder blocks others for `staleMs`).
   * `'auto'`: flock when fs-ext loads, else proper-lockfile. Every process sharing a file must
   * end up with the same mode.
   * @default 'auto'
   */
  lock?: LockMode
  /**
   * Refuse to read a store file larger than this many bytes, or one whose compressed payload
   * inflates to more than this (`FileTooLargeError`): a guard against reading a huge foreign
   * file, or a small crafted one that inflates to gigabytes, into memory.
   * @default 1073741824 (1 GiB)
   */
  maxFileSize?: number
  /**
   * proper-lockfile only: a lock directory not refreshed for this long is taken over.
   * @default 5000
   */
  staleMs?: number
  /**
   * The file format version new store files are written in. `3` records a store id and a
   * commit counter in every commit, so a running instance detects another store or an older
   * copy put in the file's place (`StoreReplacedError`, `RollbackError`), and encrypts each
   * commit under its own key, so there is no limit on commits per key. `2` is for rolling
   * upgrades: processes of the previous release read only versions 1 and 2 (they stop with
   * `UnsupportedFormatError` on version 3), so keep `2` until none is left. Version 2 gives no
   * rollback or replacement detection, and its random nonces under one key allow about 2^32
   * commits. A store already in version 3 stays in version 3 with either value (no process
   * that needs version 2 can read it any more); `anystore dump` and `import` move a store
   * back. See docs/FORMAT.md, "Compatibility policy".
   * @default 3
   */
  formatVersion?: 2 | 3
  /**
   * Open the store read-only: no directory, lockfile or temp file is created, and every write
   * (`set`, `delete`, `clear`, a `run()` that writes) fails with `ReadOnlyError`. For tools that
   * inspect a store they must not change. Reads see other processes' commits as usual.
   * @default false
   */
  readOnly?: boolean
  /**
   * Keep the store in this backend instead of a file or memory: a `MemoryBackend` shared by
   * several instances, or any object implementing `Backend` (README, "Backends"). Not with
   * `file`. The store does not close a backend it was given.
   */
  backend?: Backend
  /**
   * Keep the store in Redis (the `redis` package, node-redis 5.6 or later, must be installed;
   * it is loaded only when this option is used): `{ url, name }` connects a client of the
   * store's own, closed by `close()`; `{ client, name }` uses a connected node-redis client of
   * yours, never closed by the store. The store lives under the keys `anystore:{name}:*`, and the server
   * holds only keyed hashes of key names and sealed entries. Every method works as on a file;
   * run() is optimistic (see `maxRunAttempts`). A call that gets no answer within `timeoutMs`
   * (default 5000) fails with `BackendUnavailableError`; the client reconnects by itself. Not
   * with `file`, `persist`, `backend` or `acceptedKeys`. See docs/DESIGN.md, "The Redis backend".
   */
  redis?: RedisOptions
  /**
   * On a backend with optimistic concurrency, how many times `run()` tries its callback before
   * failing with `TransactionConflictError` when other writers keep changing what it read. The
   * callback may run more than once: keep side effects out of it. Exclusive backends (file,
   * memory) run it once.
   * @default 50
   */
  maxRunAttempts?: number
}

/** The functions that take an options object. */
export type EntryPoint = 'open' | 'stash' | 'unstash' | 'editThing' | 'rekey' | 'restore'

const ALL = ['open', 'stash', 'unstash', 'editThing', 'rekey', 'restore'] as const
const CONFIG_MODE = ['stash', 'unstash', 'editThing'] as const
const LOCKING = ['open', 'rekey', 'restore'] as const
/** What takes the cross-process lock to write: config mode writes through a store too. */
const WRITING = [...LOCKING, 'stash', 'editThing'] as const

/**
 * Every option name, with the entry points that accept it: the one list unknown names are
 * checked against, so that a misspelt `encryptionkey` fails instead of silently leaving the
 * public default key in place. A new option joins here as well as its options type; a test
 * checks that each entry point's names are exactly the keys of its options type.
 */
const OPTION_NAMES = {
  file: ALL,
  persist: ['open'],
  encryptionKey: ALL,
  acceptedKeys: ALL,
  passphrase: ALL,
  compress: ALL,
  sync: LOCKING,
  lockTimeoutMs: WRITING,
  lock: WRITING,
  maxFileSize: [...LOCKING, 'unstash', 'editThing'],
  staleMs: LOCKING,
  name: CONFIG_MODE,
  key: CONFIG_MODE,
  thing: ['stash'],
  writer: ['stash', 'editThing'],
  reader: ['unstash', 'editThing'],
  defaults: ['unstash', 'editThing'],
  schema: CONFIG_MODE,
  editor: ['editThing'],
  newEncryptionKey: ['rekey'],
  newPassphrase: ['rekey'],
  onProgress: ['rekey', 'restore'],
  formatVersion: LOCKING,
  from: ['restore'],
  fromEncryptionKey: ['restore'],
  readOnly: ['open'],
  backend: ['open'],
  redis: ['open'],
  maxRunAttempts: ['open'],
} as const satisfies Record<string, readonly EntryPoint[]>

type OptionName = keyof typeof OPTION_NAMES

/** The option names one entry point accepts. */
export type OptionNameOf<E extends EntryPoint> = {
  [N in OptionName]: E extends (typeof OPTION_NAMES)[N][number] ? N : never
}[OptionName]

function namesFor<E extends EntryPoint>(entryPoint: E): readonly OptionNameOf<E>[] {
  const names = Object.keys(OPTION_NAMES) as OptionName[]
  return names.filter((name) =>
    (OPTION_NAMES[name] as readonly EntryPoint[]).includes(entryPoint),
  ) as OptionNameOf<E>[]
}

/** The option names each entry point accepts. */
export const knownOptions: { readonly [E in EntryPoint]: readonly OptionNameOf<E>[] } = {
  open: namesFor('open'),
  stash: namesFor('stash'),
  unstash: namesFor('unstash'),
  editThing: namesFor('editThing'),
  rekey: namesFor('rekey'),
  restore: namesFor('restore'),
}

/** Levenshtein distance: how many one-character edits turn `a` into `b`. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const substitute = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitute))
    }
    previous = current
  }
  return previous[b.length]!
}

/** The known name `name` was most likely meant to be, or undefined when none is close. */
export function closestName(name: string, known: readonly string[]): string | undefined {
  const lower = name.toLowerCase()
  // A wrong case is the likeliest slip (`encryptionkey`), so it wins over any edit distance.
  const sameLetters = known.find((candidate) => candidate.toLowerCase() === lower)
  if (sameLetters !== undefined) return sameLetters
  let best: string | undefined
  let bestDistance = Number.POSITIVE_INFINITY
  for (const candidate of known) {
    const distance = editDistance(lower, candidate.toLowerCase())
    if (distance < bestDistance) {
      best = candidate
      bestDistance = distance
    }
  }
  // Beyond this, a suggestion is a guess that misleads more than it helps.
  return bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined
}

/**
 * Throws InvalidOptionError for an options object that is not an object or has a property
 * `entryPoint` does not know, naming the closest known option.
 */
export function checkOptionNames(options: unknown, entryPoint: EntryPoint): void {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError(`Expected options to be an object, got ${received(options)}`)
  }
  const known: readonly string[] = knownOptions[entryPoint]
  for (const name of Object.keys(options)) {
    if (known.includes(name)) continue
    const suggestion = closestName(name, known)
    throw new InvalidOptionError(
      suggestion === undefined
        ? `Unknown option \`${name}\`; the options of ${entryPoint}() are ${known.map((n) => `\`${n}\``).join(', ')}`
        : `Unknown option \`${name}\`; did you mean \`${suggestion}\`?`,
    )
  }
}

export interface ResolvedOptions {
  file: string | undefined
  persist: boolean
  /** The current key (seals commits) and the accepted ones (also open files). */
  keyring: KeyRing
  compress: boolean
  /** What each commit does about fsync: `{ everyMs }` commits as `'always'` does. */
  sync: SyncMode
  /** Write-behind: how long an acknowledged change may wait for its commit; undefined for none. */
  everyMs: number | undefined
  lockTimeoutMs: number
  lock: LockMode
  maxFileSize: number
  staleMs: number
  formatVersion: 2 | 3
  readOnly: boolean
  backend: Backend | undefined
  redis: ResolvedRedisOptions | undefined
  maxRunAttempts: number
  /** Always node:fs, except in fault-injection tests (openWithFileSystem). */
  fs: FileSystem
}

export const DEFAULT_OPTIONS = Object.freeze({
  persist: false,
  encryptionKey: DEFAULT_ENCRYPTION_KEY,
  acceptedKeys: Object.freeze([]) as readonly (string | Uint8Array)[],
  compress: false,
  sync: 'always' as SyncPolicy,
  lockTimeoutMs: 10_000,
  lock: 'auto' as LockMode,
  maxFileSize: 1024 * 1024 * 1024,
  staleMs: 5000,
  formatVersion: 3 as 2 | 3,
  readOnly: false,
  maxRunAttempts: 50,
})

export function expandPath(file: string): string {
  if (file === '~') return homedir()
  if (file.startsWith('~/')) return join(homedir(), file.slice(2))
  return isAbsolute(file) ? file : resolve(file)
}

/**
 * The value an option received, as a message shows it: quoted strings, so that `''` and `'5'`
 * are not mistaken for nothing or for a number. Never used for keys, which messages never show.
 */
export function received(value: unknown): string {
  return inspect(value, { depth: 1, breakLength: Number.POSITIVE_INFINITY, maxStringLength: 100 })
}

function oneOf<T extends string>(name: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T
  throw new InvalidOptionError(
    `Expected \`${name}\` to be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${received(value)}`,
  )
}

export function positiveNumber(name: string, value: unknown): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value
  throw new InvalidOptionError(
    `Expected \`${name}\` to be a non-negative number, got ${received(value)}`,
  )
}

function boolean(name: string, value: unknown): boolean {
  if (typeof value === 'boolean') return value
  throw new InvalidOptionError(`Expected \`${name}\` to be a boolean, got ${received(value)}`)
}

/** What an entry point does when a key option is absent. */
type WhenAbsent = 'default key' | 'required'

/**
 * The key given under `option`, parsed; the public default key only when the option is
 * absent. Present but undefined, empty or blank (what an unset environment variable gives)
 * is an InvalidKeyError: silently falling back to the public key would leave the file
 * readable by anyone while its owner believes it encrypted.
 */
export function keyOption(
  options: object,
  property: 'encryptionKey' | 'newEncryptionKey' | 'fromEncryptionKey' | 'key',
  whenAbsent: WhenAbsent = 'default key',
  option: string = property,
): Uint8Array {
  if (!(property in options)) {
    if (whenAbsent === 'default key') return parseKey(DEFAULT_ENCRYPTION_KEY)
    throw new InvalidKeyError('got nothing: the option is missing', { option })
  }
  const value: unknown = (options as Record<string, unknown>)[property]
  const empty =
    value === undefined ||
    (typeof value === 'string' && value.trim() === '') ||
    (value instanceof Uint8Array && value.length === 0)
  if (!empty) return parseKey(value, option)
  const what = value === undefined ? 'undefined (an unset environment variable?)' : 'empty'
  const hint =
    whenAbsent === 'default key'
      ? `pass a key (newKey() makes one), or omit \`${option}\` altogether to use the public default key, which only obfuscates`
      : 'pass a key (newKey() makes one)'
  throw new InvalidKeyError(`but it is present and ${what}`, { option, hint })
}

/**
 * The `acceptedKeys` option, parsed: none when absent or undefined (accepting fewer keys only
 * makes more files fail to open, never weakens one). Each key present but undefined or empty
 * is an InvalidKeyError, as for `encryptionKey`: an unset environment variable in the list is
 * a mistake to report, not a key to skip.
 */
export function acceptedKeysOption(options: object): Uint8Array[] {
  const value: unknown = (options as { acceptedKeys?: unknown }).acceptedKeys
  if (value === undefined) return []
  if (!Array.isArray(value)) {
    throw new InvalidOptionError(
      `Expected \`acceptedKeys\` to be an array of keys, got ${value === null ? 'null' : `a value of type ${typeof value}`}`,
      'acceptedKeys',
    )
  }
  return value.map((key: unknown, i) => keyOption({ key }, 'key', 'required', `acceptedKeys[${i}]`))
}

/** The shortest passphrase accepted, in bytes: shorter ones are guessed in no time, scrypt or not. */
export const MIN_PASSPHRASE_BYTES = 8

/**
 * The passphrase under `option`, as the bytes scrypt is given: a string normalized to NFC (the
 * same characters typed on two systems may arrive composed or decomposed) as UTF-8, bytes as
 * they are. Present but undefined, empty or blank is an InvalidKeyError, as for keys.
 */
export function passphraseOption(options: object, option: 'passphrase' | 'newPassphrase'): Uint8Array {
  const value: unknown = (options as Record<string, unknown>)[option]
  const where = {
    option,
    expected: `a passphrase (a string or bytes) of at least ${MIN_PASSPHRASE_BYTES} bytes`,
    hint: 'pass the passphrase, or `encryptionKey` instead (newKey() makes one)',
  }
  let bytes: Uint8Array
  if (typeof value === 'string') {
    if (value.trim() === '') throw new InvalidKeyError('but it is present and empty', where)
    bytes = Buffer.from(value.normalize('NFC'), 'utf8')
  } else if (value instanceof Uint8Array) {
    bytes = Uint8Array.from(value)
  } else if (value === undefined) {
    throw new InvalidKeyError('but it is present and undefined (an unset environment variable?)', where)
  } else {
    throw new InvalidKeyError(`got a value of type ${typeof value}`, where)
  }
  if (bytes.length === 0) throw new InvalidKeyError('but it is present and empty', where)
  if (bytes.length < MIN_PASSPHRASE_BYTES) throw new InvalidKeyError(`got ${bytes.length} bytes`, where)
  return bytes
}

/** Throws InvalidOptionError when both a key option and its passphrase option are present. */
function eitherKeyOrPassphrase(options: object, key: string, passphrase: string): void {
  if (key in options && passphrase in options) {
    throw new InvalidOptionError(
      `Pass either \`${key}\` or \`${passphrase}\`, not both: a store has one key, given directly or derived from a passphrase`,
      passphrase,
    )
  }
}

/**
 * The keyring of an entry point: `passphrase`, or else `encryptionKey` (the public default key
 * when absent), seals; `acceptedKeys` also open files.
 */
export function keyringOption(options: object): KeyRing {
  eitherKeyOrPassphrase(options, 'encryptionKey', 'passphrase')
  const accepted = acceptedKeysOption(options)
  if ('passphrase' in options) return KeyRing.ofPassphrase(passphraseOption(options, 'passphrase'), accepted)
  return KeyRing.ofKey(keyOption(options, 'encryptionKey'), accepted)
}

/** rekey's new secret: `newPassphrase` or `newEncryptionKey` (one is required). */
export function newKeyringOption(options: object): KeyRing {
  eitherKeyOrPassphrase(options, 'newEncryptionKey', 'newPassphrase')
  if ('newPassphrase' in options) return KeyRing.ofPassphrase(passphraseOption(options, 'newPassphrase'))
  return KeyRing.ofKey(keyOption(options, 'newEncryptionKey', 'required'))
}

function attempts(value: unknown): number {
  if (Number.isSafeInteger(value) && (value as number) >= 1) return value as number
  throw new InvalidOptionError(
    `Expected \`maxRunAttempts\` to be a whole number of at least 1, got ${received(value)}`,
  )
}

/** setTimeout's limit: a longer delay would fire after 1 ms instead. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** The `sync` option as what each commit does, and how long write-behind may hold a change. */
function syncPolicy(value: unknown): { sync: SyncMode; everyMs: number | undefined } {
  if (value === 'always' || value === 'never') return { sync: value, everyMs: undefined }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError(
      `Expected \`sync\` to be 'always', 'never' or { everyMs: <milliseconds> }, got ${received(value)}`,
      'sync',
    )
  }
  const extra = Object.keys(value).filter((name) => name !== 'everyMs')
  if (extra.length > 0) {
    throw new InvalidOptionError(
      `Unknown property \`sync.${extra[0]}\`; \`sync\` as an object takes only \`everyMs\``,
      'sync',
    )
  }
  const everyMs: unknown = (value as { everyMs?: unknown }).everyMs
  if (typeof everyMs !== 'number' || !Number.isFinite(everyMs) || everyMs <= 0 || everyMs > MAX_TIMER_MS) {
    throw new InvalidOptionError(
      `Expected \`sync.everyMs\` to be a positive finite number of milliseconds (at most ${MAX_TIMER_MS}), got ${received(everyMs)}`,
      'sync',
    )
  }
  // Write-behind commits are fsynced: what it trades is when a write is committed, not how.
  return { sync: 'always', everyMs }
}

function formatVersion(value: unknown): 2 | 3 {
  if (value === 2 || value === 3) return value
  throw new InvalidOptionError(`Expected \`formatVersion\` to be 2 or 3, got ${String(value)}`)
}

export function resolveOptions(options: AnyStoreOptions = {}): ResolvedOptions {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError(`Expected options to be an object, got ${received(options)}`)
  }
  const o = { ...DEFAULT_OPTIONS, ...withoutUndefined(options) }
  if (o.file !== undefined && (typeof o.file !== 'string' || o.file === '')) {
    throw new InvalidOptionError(
      `Expected \`file\` to be a non-empty string, got ${received(o.file)}`,
    )
  }
  if (o.backend !== undefined) {
    if (typeof o.backend !== 'object' || o.backend === null || typeof o.backend.transaction !== 'function') {
      throw new InvalidOptionError(
        `Expected \`backend\` to be a Backend (README, "Backends"), got ${received(o.backend)}`,
      )
    }
    if (o.file !== undefined || options.persist !== undefined) {
      throw new InvalidOptionError('Pass either `backend` or `file`/`persist`, not both')
    }
  }
  const redis = options.redis === undefined ? undefined : redisOption(options)
  const persist = boolean('persist', options.persist ?? o.file !== undefined)
  if (persist && o.file === undefined) {
    throw new InvalidOptionError('`persist: true` needs a `file` to persist to')
  }
  return {
    file: o.file === undefined ? undefined : expandPath(o.file),
    persist,
    keyring: keyringOption(options),
    compress: boolean('compress', o.compress),
    ...syncPolicy(o.sync),
    lockTimeoutMs: positiveNumber('lockTimeoutMs', o.lockTimeoutMs),
    lock: oneOf('lock', o.lock, ['flock', 'proper-lockfile', 'auto']),
    maxFileSize: positiveNumber('maxFileSize', o.maxFileSize),
    staleMs: Math.max(2000, positiveNumber('staleMs', o.staleMs)),
    formatVersion: formatVersion(o.formatVersion),
    readOnly: boolean('readOnly', o.readOnly),
    backend: o.backend,
    redis,
    maxRunAttempts: attempts(o.maxRunAttempts),
    fs: nodeFileSystem,
  }
}

const REDIS_NAMES = ['url', 'client', 'name', 'timeoutMs']

/** The `redis` option, checked: where the store lives, and nothing another option contradicts. */
function redisOption(options: AnyStoreOptions): ResolvedRedisOptions {
  const value: unknown = options.redis
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError(
      `Expected \`redis\` to be an object such as { url, name }, got ${received(value)}`,
      'redis',
    )
  }
  for (const [name, other] of [
    ['file', options.file],
    ['persist', options.persist],
    ['backend', options.backend],
  ] as const) {
    if (other !== undefined) {
      throw new InvalidOptionError(`Pass either \`redis\` or \`${name}\`, not both`, 'redis')
    }
  }
  if (Array.isArray(options.acceptedKeys) && options.acceptedKeys.length > 0) {
    throw new InvalidOptionError(
      'A Redis store is sealed under one key for life: `acceptedKeys` does not apply to it',
      'acceptedKeys',
    )
  }
  const r = value as Record<string, unknown>
  for (const name of Object.keys(r)) {
    if (!REDIS_NAMES.includes(name)) {
      throw new InvalidOptionError(
        `Unknown option \`redis.${name}\`; the options of \`redis\` are ${REDIS_NAMES.map((n) => `\`${n}\``).join(', ')}`,
        'redis',
      )
    }
  }
  const { url, client, name } = r
  if ((url === undefined) === (client === undefined)) {
    throw new InvalidOptionError('Expected `redis` to have either `url` or `client`', 'redis')
  }
  if (url !== undefined && (typeof url !== 'string' || url === '')) {
    throw new InvalidOptionError(`Expected \`redis.url\` to be a Redis URL, got ${received(url)}`, 'redis')
  }
  if (
    client !== undefined &&
    (typeof client !== 'object' ||
      client === null ||
      typeof (client as { withCommandOptions?: unknown }).withCommandOptions !== 'function')
  ) {
    throw new InvalidOptionError(
      `Expected \`redis.client\` to be a node-redis client (createClient() or createCluster() of the \`redis\` package, 5.6 or later), got ${received(client)}`,
      'redis',
    )
  }
  // The store names its keys and its channel itself: a prefix put before the keys alone would
  // part the channel the commit script derives from them from the one watchers listen on.
  const prefix = (client as { options?: { keyPrefix?: unknown } } | undefined)?.options?.keyPrefix
  if (prefix !== undefined && prefix !== '') {
    throw new InvalidOptionError(
      'Expected `redis.client` without a `keyPrefix`: the store puts its keys under `anystore:{name}:` itself',
      'redis',
    )
  }
  // Braces would end the hash tag early: the keys of one store could land in several slots.
  if (typeof name !== 'string' || name === '' || /[{}]/.test(name)) {
    throw new InvalidOptionError(
      `Expected \`redis.name\` to be a non-empty string without \`{\` or \`}\`, got ${received(name)}`,
      'redis',
    )
  }
  const timeoutMs = r.timeoutMs ?? DEFAULT_REDIS_TIMEOUT_MS
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs <= 0 || timeoutMs > MAX_TIMER_MS) {
    throw new InvalidOptionError(
      `Expected \`redis.timeoutMs\` to be a positive number of milliseconds (at most ${MAX_TIMER_MS}), got ${received(timeoutMs)}`,
      'redis',
    )
  }
  return {
    url: url as string | undefined,
    client: client as ResolvedRedisOptions['client'],
    name,
    timeoutMs,
  }
}

function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}
