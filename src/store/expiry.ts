import type { MaybePromise } from '../backends/backend.js'
import { encodeValue } from '../format/codec.js'
import type { Entry } from '../format/payload.js'
import { InvalidOptionError } from './errors.js'
import { closestName, received } from './options.js'
import type { SetOptions, StoreKey } from './types.js'

/**
 * The API side of expiry: the options of a write checked and turned into an absolute time, and
 * setIfAbsent() and expire() as reads and writes of one transaction. Hiding and dropping what
 * expired is the backends' part (src/backends/backend.ts, "Expiry").
 */

const SET_OPTION_NAMES: readonly string[] = ['ttlMs', 'expiresAt'] satisfies (keyof SetOptions)[]

/** A duration: a finite number of milliseconds, 0 or more (0: expired as soon as written). */
function checkTtl(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new InvalidOptionError(
      `Expected \`${name}\` to be a number of milliseconds, 0 or more, got ${received(value)}`,
      name,
    )
  }
  return value
}

function checkExpiresAt(value: unknown): number {
  const at = value instanceof Date ? value.getTime() : value
  if (typeof at !== 'number' || !Number.isFinite(at)) {
    throw new InvalidOptionError(
      `Expected \`expiresAt\` to be a valid Date or a number of milliseconds since the epoch, got ${received(value)}`,
      'expiresAt',
    )
  }
  return at
}

/**
 * When a write made now with `options` expires, in milliseconds since the epoch (what the file
 * stores, so that every process reads the same time), or undefined for never. A misspelt option
 * is refused rather than ignored: ignoring it would store, silently, a value that never expires.
 */
export function expiryFrom(options: unknown): number | undefined {
  if (options === undefined) return undefined
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError(
      `Expected the options to be an object such as \`{ ttlMs: 60000 }\`, got ${received(options)}`,
    )
  }
  for (const name of Object.keys(options)) {
    if (SET_OPTION_NAMES.includes(name)) continue
    const suggestion = closestName(name, SET_OPTION_NAMES)
    throw new InvalidOptionError(
      suggestion === undefined
        ? `Unknown option \`${name}\`; a write takes \`ttlMs\` or \`expiresAt\``
        : `Unknown option \`${name}\`; did you mean \`${suggestion}\`?`,
      name,
    )
  }
  const { ttlMs, expiresAt } = options as SetOptions
  if (ttlMs !== undefined && expiresAt !== undefined) {
    throw new InvalidOptionError('Pass either `ttlMs` or `expiresAt`, not both', 'ttlMs')
  }
  if (ttlMs !== undefined) return Date.now() + checkTtl(ttlMs, 'ttlMs')
  return expiresAt === undefined ? undefined : checkExpiresAt(expiresAt)
}

/** The entry a write of `value` with `options` stores; throws before anything is written. */
export function newEntry(value: unknown, options: unknown): Entry {
  const expiresAt = expiryFrom(options)
  const encoded = encodeValue(value)
  // Without an expiry, no `expiresAt` property at all: entries keep one shape on the hot path.
  return expiresAt === undefined ? { value: encoded } : { value: encoded, expiresAt }
}

/** expire()'s new expiry: `ttlMs` from now, or none for undefined. */
export function expiryAfter(ttlMs: unknown): number | undefined {
  return ttlMs === undefined ? undefined : Date.now() + checkTtl(ttlMs, 'ttlMs')
}

/** What `entry` has left, in milliseconds; undefined without an entry or an expiry. */
export function remainingMs(entry: Entry | undefined): number | undefined {
  const at = entry?.expiresAt
  if (at === undefined) return undefined
  // The backend judged the entry alive a moment ago; it may have expired since.
  const left = at - Date.now()
  return left > 0 ? left : undefined
}

/** The reads and writes of a transaction that setIfAbsent() and expire() use: a TransactionView. */
export interface TransactionWrites {
  get(key: StoreKey): MaybePromise<Entry | undefined>
  has(key: StoreKey): MaybePromise<boolean>
  set(key: StoreKey, entry: Entry): void
}

/**
 * setIfAbsent() inside a transaction: the read of the key is what makes it safe, since the
 * transaction commits only if no one set the key in between (held by a lock, or checked).
 */
export async function setIfAbsentIn(
  tx: TransactionWrites,
  key: StoreKey,
  entry: Entry,
): Promise<boolean> {
  if (await tx.has(key)) return false
  tx.set(key, entry)
  return true
}

/** expire() inside a transaction: the value read is written back with the new expiry. */
export async function expireIn(
  tx: TransactionWrites,
  key: StoreKey,
  expiresAt: number | undefined,
): Promise<boolean> {
  const entry = await tx.get(key)
  if (entry === undefined) return false
  if (entry.expiresAt !== expiresAt) {
    tx.set(key, expiresAt === undefined ? { value: entry.value } : { value: entry.value, expiresAt })
  }
  return true
}
