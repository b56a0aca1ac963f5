/**
 * Every `code` an anystore error can have: public API, so never renamed or removed. The base
 * class only accepts these, so an error class with a new code does not compile until its code
 * is listed here (and the CLI, whose exit statuses are keyed by this union, then refuses to
 * compile until the code has an exit status too).
 */
export const ERROR_CODES = Object.freeze([
  'ERR_ANYSTORE_WRONG_KEY',
  'ERR_ANYSTORE_CORRUPT_FILE',
  'ERR_ANYSTORE_NOT_ANYSTORE_FILE',
  'ERR_ANYSTORE_UNSUPPORTED_FORMAT',
  'ERR_ANYSTORE_STORE_REPLACED',
  'ERR_ANYSTORE_ROLLBACK',
  'ERR_ANYSTORE_INVALID_KEY',
  'ERR_ANYSTORE_LOCK_TIMEOUT',
  'ERR_ANYSTORE_LOCK_COMPROMISED',
  'ERR_ANYSTORE_LOCK_MODE_MISMATCH',
  'ERR_ANYSTORE_UNSUPPORTED_VALUE',
  'ERR_ANYSTORE_UNSUPPORTED_KEY',
  'ERR_ANYSTORE_CLOSED',
  'ERR_ANYSTORE_INVALID_OPTION',
  'ERR_ANYSTORE_INVALID_PATH',
  'ERR_ANYSTORE_FILE_TOO_LARGE',
  'ERR_ANYSTORE_REENTRANT',
  'ERR_ANYSTORE_THING_NOT_FOUND',
  'ERR_ANYSTORE_FILE_NOT_FOUND',
  'ERR_ANYSTORE_NOT_A_TERMINAL',
  'ERR_ANYSTORE_SCHEMA_VALIDATION',
  'ERR_ANYSTORE_EDIT_ABORTED',
  'ERR_ANYSTORE_INVALID_JSON',
  'ERR_ANYSTORE_READ_ONLY',
  'ERR_ANYSTORE_CONFLICT',
  'ERR_ANYSTORE_FOREIGN_DATA',
  'ERR_ANYSTORE_UNAVAILABLE',
] as const)

export type AnyStoreErrorCode = (typeof ERROR_CODES)[number]

/**
 * Every error anystore raises on purpose is an `AnyStoreError` with a stable `code`.
 * Match on `code` (or `instanceof`), never on message text: messages may be reworded.
 * System errors from the file system (ENOSPC, EACCES, EIO, ...) reach the caller unchanged.
 *
 * Each subclass narrows `code` to its own literal with `declare`: a field without `declare`
 * would be defined again, as undefined, after super() has set it. The base is not generic in
 * its code because `instanceof` on a generic class narrows to `AnyStoreError<any>`, which would
 * make `error.code` `any` instead of the union for callers that check the base class.
 */
export class AnyStoreError extends Error {
  readonly code: AnyStoreErrorCode

  constructor(code: AnyStoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }

  override get name(): string {
    return this.constructor.name
  }
}

/**
 * No key given opens the file: it was written under another key (or passphrase). `needs` says
 * when the file was written with the other kind of secret than the one given.
 */
export class WrongKeyError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_WRONG_KEY'
  readonly file: string
  /** How many keys were tried: the encryption key and the accepted keys. */
  readonly keysTried: number
  /** `'passphrase'`: the file needs a passphrase, a key was given; `'key'`: the reverse. */
  readonly needs: 'passphrase' | 'key' | undefined
  /** What was left as it was, in the words of the messages: a store file, or a store in Redis. */
  readonly untouched: string

  constructor(
    file: string,
    detail: {
      keysTried?: number
      needs?: 'passphrase' | 'key'
      passphrase?: boolean
      /** `'store'`: a store that is not a file (Redis). */
      kind?: 'file' | 'store'
    } = {},
  ) {
    const keysTried = detail.keysTried ?? 1
    const untouched = `(the ${detail.kind ?? 'file'} is left untouched)`
    super(
      'ERR_ANYSTORE_WRONG_KEY',
      detail.passphrase
        ? `${file} was written with a different passphrase: pass the passphrase it was written with ${untouched}`
        : wrongKeyMessage(file, keysTried, detail.needs, untouched),
    )
    this.file = file
    this.keysTried = keysTried
    this.needs = detail.needs
    this.untouched = untouched
  }
}

function wrongKeyMessage(
  file: string,
  keysTried: number,
  needs: 'passphrase' | 'key' | undefined,
  untouched: string,
) {
  if (needs === 'passphrase') {
    return `${file} was written with a passphrase, not with an encryption key: pass \`passphrase\` instead of \`encryptionKey\` ${untouched}`
  }
  if (needs === 'key') {
    return `${file} was written with an encryption key, not with a passphrase: pass \`encryptionKey\` (or the key in \`acceptedKeys\`) ${untouched}`
  }
  if (keysTried > 1) {
    return `${file} was written with none of the ${keysTried} keys given (\`encryptionKey\` and \`acceptedKeys\`): pass the key it was written with ${untouched}`
  }
  return `${file} was written with a different encryption key: pass the key it was created with ${untouched}`
}

/** The file has our header but its bytes are damaged: truncated, tampered or bit-rotted. */
export class CorruptFileError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_CORRUPT_FILE'
  readonly file: string

  constructor(file: string, detail: string, options?: { cause?: unknown }) {
    super(
      'ERR_ANYSTORE_CORRUPT_FILE',
      `${file} is corrupt (${detail}): restore it from a backup; anystore will not overwrite it`,
      options,
    )
    this.file = file
  }
}

/** The file does not start with the anystore magic: it belongs to something else. */
export class NotAnyStoreFileError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_NOT_ANYSTORE_FILE'

  constructor(file: string, detail: string) {
    super(
      'ERR_ANYSTORE_NOT_ANYSTORE_FILE',
      `${file} is not an anystore file (${detail}): choose another path; anystore will not overwrite it`,
    )
  }
}

/** The file was written by a newer anystore (format version or flags this version does not know). */
export class UnsupportedFormatError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_UNSUPPORTED_FORMAT'

  constructor(file: string, detail: string) {
    super(
      'ERR_ANYSTORE_UNSUPPORTED_FORMAT',
      `${file} uses ${detail} that this version of anystore does not support: upgrade anystore`,
    )
  }
}

/**
 * The store file now holds another store than the one this instance loaded or wrote (another
 * store id: a different store, under the same key, was put in its place). Every read and
 * write of this instance fails with it until the store is closed and opened again; a fresh
 * open accepts the file as it is. See docs/DESIGN.md, "Store identity and rollback".
 */
export class StoreReplacedError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_STORE_REPLACED'
  readonly file: string
  /** The store id (hex) this instance had seen. */
  readonly expectedStoreId: string
  /** The store id (hex) of the file that replaced it. */
  readonly foundStoreId: string

  constructor(file: string, expectedStoreId: string, foundStoreId: string) {
    super(
      'ERR_ANYSTORE_STORE_REPLACED',
      `${file} was replaced by another store (store id ${foundStoreId}, expected ${expectedStoreId}): if that was intended, close and reopen the store; to bring back a backup, use restore() or \`anystore restore\`, which keep the store id`,
    )
    this.file = file
    this.expectedStoreId = expectedStoreId
    this.foundStoreId = foundStoreId
  }
}

/**
 * The store file now holds an older commit than one this instance already served or wrote
 * (a lower commit counter, or a version 1 or 2 file, which has none, after a version 3 one):
 * an old copy was put in its place. Every read and write of this instance fails with it until
 * the store is closed and opened again. See docs/DESIGN.md, "Store identity and rollback".
 */
export class RollbackError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_ROLLBACK'
  readonly file: string
  /** The highest commit counter this instance had served or written. */
  readonly seenCounter: bigint
  /** The counter of the file found; undefined for a version 1 or 2 file, which has none. */
  readonly foundCounter: bigint | undefined

  constructor(file: string, seenCounter: bigint, foundCounter: bigint | undefined, foundVersion = 3) {
    const found =
      foundCounter === undefined
        ? `a format version ${foundVersion} file, which has no commit counter`
        : `commit ${foundCounter}`
    super(
      'ERR_ANYSTORE_ROLLBACK',
      `${file} was rolled back to an older copy (${found}, after commit ${seenCounter} was seen): if that was intended, close and reopen the store; to bring back a backup, use restore() or \`anystore restore\`, which commit it as the newest version`,
    )
    this.file = file
    this.seenCounter = seenCounter
    this.foundCounter = foundCounter
  }
}

/**
 * The encryption key is not base64 of 16, 24 or 32 bytes, or the option is present but
 * undefined or empty. `detail` says what was received, never the key itself.
 */
export class InvalidKeyError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_INVALID_KEY'
  /** What was wrong with the key, e.g. `got 7 bytes` (never the key itself). */
  readonly detail: string

  constructor(
    detail: string,
    where: { option?: string; hint?: string; expected?: string } = {},
  ) {
    super(
      'ERR_ANYSTORE_INVALID_KEY',
      `Expected \`${where.option ?? 'encryptionKey'}\` to be ${where.expected ?? 'base64 (or bytes) of 16, 24 or 32 bytes'}, ${detail}; ${where.hint ?? 'newKey() makes one'}`,
    )
    this.detail = detail
  }
}

/** The cross-process lock could not be taken within `lockTimeoutMs`. */
export class LockTimeoutError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_LOCK_TIMEOUT'
  readonly lockPath: string
  readonly timeoutMs: number
  /** Process id of the last process known to have taken the lock, when known. */
  readonly holderPid: number | undefined

  constructor(lockPath: string, timeoutMs: number, holderPid: number | undefined) {
    const holder = holderPid === undefined ? '' : ` (last taken by pid ${holderPid})`
    super(
      'ERR_ANYSTORE_LOCK_TIMEOUT',
      `Could not lock ${lockPath} within ${timeoutMs} ms${holder}: another process holds it; raise \`lockTimeoutMs\` or find the holder`,
    )
    this.lockPath = lockPath
    this.timeoutMs = timeoutMs
    this.holderPid = holderPid
  }
}

/** The lock was lost while held (lockfile deleted or replaced, stale lock taken over). Nothing was written. */
export class LockCompromisedError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_LOCK_COMPROMISED'

  constructor(lockPath: string, detail: string) {
    super(
      'ERR_ANYSTORE_LOCK_COMPROMISED',
      `The lock ${lockPath} was lost while held (${detail}); the commit was abandoned and nothing was written. Never delete lockfiles of a store in use`,
    )
  }
}

/**
 * Another process holds the store's lock in the other lock mode (`flock` versus
 * `proper-lockfile`). The two modes do not exclude each other, so the write is refused, under
 * this process's own lock and before anything is written.
 */
export class LockModeMismatchError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_LOCK_MODE_MISMATCH'
  /** The lock mode of this process. */
  readonly mode: 'flock' | 'proper-lockfile'

  constructor(file: string, mode: 'flock' | 'proper-lockfile', evidence: string) {
    const other = mode === 'flock' ? 'proper-lockfile' : 'flock'
    super(
      'ERR_ANYSTORE_LOCK_MODE_MISMATCH',
      `Another process uses lock mode '${other}' on ${file} (${evidence}) while this one uses '${mode}': the two modes do not exclude each other, so nothing was written. Give every process that shares the file the same \`lock\` option`,
    )
    this.mode = mode
  }
}

/** A value (or part of one) that cannot be stored and restored exactly. */
export class UnsupportedValueError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_UNSUPPORTED_VALUE'
  /** Where in the value the problem is, e.g. `value.list[3]`. */
  readonly path: string

  constructor(path: string, detail: string) {
    super('ERR_ANYSTORE_UNSUPPORTED_VALUE', `Cannot store ${path}: ${detail}`)
    this.path = path
  }
}

/** A key that is neither a string nor a number. */
export class UnsupportedKeyError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_UNSUPPORTED_KEY'

  constructor(detail: string) {
    super('ERR_ANYSTORE_UNSUPPORTED_KEY', `Keys must be strings or numbers, got ${detail}`)
  }
}

/** The store (or the transaction) was used after `close()` (or after the transaction ended). */
export class StoreClosedError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_CLOSED'

  constructor(what = 'store') {
    super('ERR_ANYSTORE_CLOSED', `This ${what} is closed: open a new one`)
  }
}

/** An option has a wrong type or value. */
export class InvalidOptionError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_INVALID_OPTION'
  /** The option at fault, when one option is (so the CLI can name its own flag instead). */
  readonly option: string | undefined

  constructor(message: string, option?: string) {
    super('ERR_ANYSTORE_INVALID_OPTION', message)
    this.option = option
  }
}

/** The store path cannot hold a store file: a directory, a dangling symlink, ... */
export class InvalidPathError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_INVALID_PATH'

  constructor(file: string, detail: string, options?: { cause?: unknown }) {
    super('ERR_ANYSTORE_INVALID_PATH', `Cannot use ${file} as a store file: ${detail}`, options)
  }
}

/**
 * The file is larger than `maxFileSize`, or (`inflated`) its compressed payload of `size` bytes
 * inflates to more than that.
 */
export class FileTooLargeError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_FILE_TOO_LARGE'
  readonly file: string
  readonly size: number
  readonly limit: number
  /** The payload inflates past the limit: `size` is then the compressed size. */
  readonly inflated: boolean

  constructor(file: string, size: number, limit: number, options?: { inflated?: boolean }) {
    const what = options?.inflated
      ? `holds ${size} compressed bytes that inflate to more than ${limit} bytes`
      : `is ${size} bytes`
    super(
      'ERR_ANYSTORE_FILE_TOO_LARGE',
      `${file} ${what}, over the \`maxFileSize\` limit of ${limit} bytes: raise the limit if the file is trusted`,
    )
    this.file = file
    this.size = size
    this.limit = limit
    this.inflated = options?.inflated === true
  }
}

/**
 * A write or a nested `run()` on a store was made from inside a `run()` callback on the same
 * file, which would wait for the lock its own transaction holds. Use the `tx` argument instead.
 */
const TRANSACTION_WRITES = new Set(['set', 'delete', 'clear'])

export class ReentrantCallError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_REENTRANT'

  constructor(method: string) {
    // Point at what exists: a transaction has set, delete and clear, but no run() or close().
    const instead =
      method === 'run'
        ? 'do that work in the outer transaction, through its `tx` argument'
        : method === 'flush'
          ? 'run() commits when its callback returns; flush after it'
          : TRANSACTION_WRITES.has(method)
            ? `use the transaction argument (tx.${method}) instead`
            : 'call it once run() has returned'
    const name = method === 'rekey' || method === 'restore' ? `${method}()` : `store.${method}()`
    super(
      'ERR_ANYSTORE_REENTRANT',
      `${name} was called inside run() on the same store and would wait for itself: ${instead}`,
    )
  }
}

/** Config mode and CLI: nothing is stored under the key (or the file does not exist) and no `defaults` were given. */
export class ThingNotFoundError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_THING_NOT_FOUND'
  /** The file (or stream) that was read. */
  readonly where: string
  readonly key: string | number

  constructor(where: string, key: string | number) {
    super(
      'ERR_ANYSTORE_THING_NOT_FOUND',
      `Nothing is stored under the key ${JSON.stringify(key)} in ${where}: store it first or pass \`defaults\``,
    )
    this.where = where
    this.key = key
  }
}

/** The CLI was asked to read a store file that does not exist. */
export class StoreFileNotFoundError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_FILE_NOT_FOUND'
  readonly file: string

  constructor(file: string) {
    super('ERR_ANYSTORE_FILE_NOT_FOUND', `${file} does not exist: check the path`)
    this.file = file
  }
}

/** Interactive editing needs a terminal on stdin; it is piped or closed. */
export class NotATerminalError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_NOT_A_TERMINAL'

  constructor() {
    super(
      'ERR_ANYSTORE_NOT_A_TERMINAL',
      'Editing needs an interactive terminal, but stdin is not a TTY: run it from a terminal, or use stash() / `anystore set` instead',
    )
  }
}

/** One problem a Standard Schema validator reported, with the path into the value. */
export interface SchemaIssue {
  readonly message: string
  readonly path: readonly (string | number | symbol)[]
}

/** A value failed the `schema` given to unstash() or editThing(). */
export class SchemaValidationError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_SCHEMA_VALIDATION'
  readonly issues: readonly SchemaIssue[]

  constructor(issues: readonly SchemaIssue[]) {
    // An error's constructor must not throw, even on issues from a validator that breaks the spec.
    const list = Array.isArray(issues) ? issues : []
    const lines = list.map(
      (issue: Partial<SchemaIssue>) =>
        `  ${formatIssuePath(issue?.path ?? [])}: ${String(issue?.message)}`,
    )
    super(
      'ERR_ANYSTORE_SCHEMA_VALIDATION',
      `The value does not match the schema:\n${lines.join('\n')}`,
    )
    this.issues = list
  }
}

function formatIssuePath(path: readonly (string | number | symbol)[]): string {
  if (path.length === 0) return '(root)'
  return path
    .map((part, i) =>
      typeof part === 'number' ? `[${part}]` : `${i === 0 ? '' : '.'}${String(part)}`,
    )
    .join('')
}

/** Editing ended without saving: Ctrl-C, the editor failed, or the user declined to edit again. */
export class EditAbortedError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_EDIT_ABORTED'

  constructor(reason: string) {
    super('ERR_ANYSTORE_EDIT_ABORTED', `Nothing was saved: ${reason}`)
  }
}

/** JSON given to the CLI (or read back from the editor) is not valid, or not a valid tagged value. */
export class InvalidJsonError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_INVALID_JSON'

  constructor(detail: string, options?: { cause?: unknown }) {
    super('ERR_ANYSTORE_INVALID_JSON', `Invalid JSON input: ${detail}`, options)
  }
}

/** A write on a store opened with `readOnly: true`. Nothing was written or created. */
export class ReadOnlyError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_READ_ONLY'
  readonly location: string

  constructor(location: string, method: string) {
    super(
      'ERR_ANYSTORE_READ_ONLY',
      `${method}() on ${location}, which was opened read-only: open it without \`readOnly\` to write`,
    )
    this.location = location
  }
}

/**
 * A `run()` on a backend with optimistic concurrency met a conflicting commit on every attempt:
 * other writers changed what it read each time. Nothing of it was committed.
 */
export class TransactionConflictError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_CONFLICT'
  readonly location: string
  readonly attempts: number

  constructor(location: string, attempts: number, conflict: string) {
    super(
      'ERR_ANYSTORE_CONFLICT',
      `run() on ${location} gave up after ${attempts} attempts, each refused because another writer changed what it read (last: ${conflict}); nothing was committed`,
    )
    this.location = location
    this.attempts = attempts
  }
}

/**
 * What a network backend finds under the store's name is not a store of ours: another
 * program's data, keys of ours without the record that describes them, or a value of the wrong
 * type. Nothing under the name is changed.
 */
export class ForeignDataError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_FOREIGN_DATA'
  readonly location: string

  constructor(location: string, detail: string) {
    super(
      'ERR_ANYSTORE_FOREIGN_DATA',
      `${location} holds data that is not an anystore store (${detail}): choose another name; anystore will not overwrite it`,
    )
    this.location = location
  }
}

/**
 * A network backend did not answer within its timeout, or its connection failed; the client
 * keeps reconnecting, so a later call may succeed on the same store. `outcomeUnknown` is true
 * for a write that may have reached the server before the connection was lost: it may or may
 * not have been applied (it is never applied twice).
 */
export class BackendUnavailableError extends AnyStoreError {
  declare readonly code: 'ERR_ANYSTORE_UNAVAILABLE'
  readonly location: string
  readonly outcomeUnknown: boolean

  constructor(location: string, detail: string, options?: { cause?: unknown; outcomeUnknown?: boolean }) {
    const outcomeUnknown = options?.outcomeUnknown === true
    const outcome = outcomeUnknown
      ? '; the write may or may not have been applied: read before writing it again'
      : ''
    super(
      'ERR_ANYSTORE_UNAVAILABLE',
      `${location} is unavailable (${detail})${outcome}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    )
    this.location = location
    this.outcomeUnknown = outcomeUnknown
  }
}
