import { homedir } from 'node:os'
import { isAbsolute, join, resolve } from 'node:path'
import { DEFAULT_ENCRYPTION_KEY, parseKey } from './crypto.js'
import { InvalidOptionError } from './errors.js'
import { type FileSystem, nodeFileSystem } from './fsio.js'

export type SyncMode = 'always' | 'never'
export type LockMode = 'flock' | 'proper-lockfile' | 'auto'

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
   * AES-128/192/256-GCM. The default key is public: it only obfuscates.
   * @default DEFAULT_ENCRYPTION_KEY
   */
  encryptionKey?: string | Uint8Array
  /**
   * Deflate the payload before encrypting. Smaller files for repetitive data, slower commits.
   * @default false
   */
  compress?: boolean
  /**
   * `'always'`: fsync the new file and its directory before a write resolves, so an
   * acknowledged write survives power loss. `'never'`: skip both fsyncs; a crash of the machine
   * (not of the process) may roll the store back to an older complete state, never a torn one.
   * @default 'always'
   */
  sync?: SyncMode
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
   * The file-system calls the store makes. Only for fault-injection tests; leave unset.
   * @default node:fs
   */
  fs?: FileSystem
}

export interface ResolvedOptions {
  file: string | undefined
  persist: boolean
  key: Uint8Array
  compress: boolean
  sync: SyncMode
  lockTimeoutMs: number
  lock: LockMode
  maxFileSize: number
  staleMs: number
  fs: FileSystem
}

export const DEFAULT_OPTIONS = Object.freeze({
  persist: false,
  encryptionKey: DEFAULT_ENCRYPTION_KEY,
  compress: false,
  sync: 'always' as SyncMode,
  lockTimeoutMs: 10_000,
  lock: 'auto' as LockMode,
  maxFileSize: 1024 * 1024 * 1024,
  staleMs: 5000,
})

export function expandPath(file: string): string {
  if (file === '~') return homedir()
  if (file.startsWith('~/')) return join(homedir(), file.slice(2))
  return isAbsolute(file) ? file : resolve(file)
}

function oneOf<T extends string>(name: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T
  throw new InvalidOptionError(
    `Expected \`${name}\` to be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${String(value)}`,
  )
}

export function positiveNumber(name: string, value: unknown): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value
  throw new InvalidOptionError(
    `Expected \`${name}\` to be a non-negative number, got ${String(value)}`,
  )
}

export function resolveOptions(options: AnyStoreOptions = {}): ResolvedOptions {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError('Expected options to be an object')
  }
  const o = { ...DEFAULT_OPTIONS, ...withoutUndefined(options) }
  if (o.file !== undefined && (typeof o.file !== 'string' || o.file === '')) {
    throw new InvalidOptionError(
      `Expected \`file\` to be a non-empty string, got ${String(o.file)}`,
    )
  }
  const persist = options.persist ?? o.file !== undefined
  if (typeof persist !== 'boolean')
    throw new InvalidOptionError('Expected `persist` to be a boolean')
  if (persist && o.file === undefined) {
    throw new InvalidOptionError('`persist: true` needs a `file` to persist to')
  }
  if (typeof o.compress !== 'boolean')
    throw new InvalidOptionError('Expected `compress` to be a boolean')
  return {
    file: o.file === undefined ? undefined : expandPath(o.file),
    persist,
    key: parseKey(o.encryptionKey),
    compress: o.compress,
    sync: oneOf('sync', o.sync, ['always', 'never']),
    lockTimeoutMs: positiveNumber('lockTimeoutMs', o.lockTimeoutMs),
    lock: oneOf('lock', o.lock, ['flock', 'proper-lockfile', 'auto']),
    maxFileSize: positiveNumber('maxFileSize', o.maxFileSize),
    staleMs: Math.max(2000, positiveNumber('staleMs', o.staleMs)),
    fs: o.fs ?? nodeFileSystem,
  }
}

function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}
