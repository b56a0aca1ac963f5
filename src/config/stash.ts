import { once } from 'node:events'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import type { Readable, Writable } from 'node:stream'
import { createRequire } from 'node:module'
import { finished } from 'node:stream/promises'
import type EnvPaths from 'env-paths'
import { openWithKeyRing } from '../anystore.js'
import { decodeValue, encodeValue } from '../format/codec.js'
import { checkFileSize, openEntries, sealEntries } from '../format/store-file.js'
import { warnIfDefaultKey } from '../store/default-key-warning.js'
import { InvalidOptionError, ThingNotFoundError } from '../store/errors.js'
import type { KeyRing } from '../store/keyring.js'
import {
  type AnyStoreOptions,
  checkOptionNames,
  DEFAULT_OPTIONS,
  expandPath,
  keyringOption,
  positiveNumber,
} from '../store/options.js'
import { checkKey } from '../format/payload.js'
import { type StandardSchemaV1, validateWithSchema } from './schema.js'
import type { StoreKey } from '../store/types.js'

/** The file name used inside an application's config directory. */
export const DEFAULT_STASH_FILE_NAME = 'config.anystore'

/** Where one thing lives: a store file, given directly or derived from an application name. */
export interface ThingLocation {
  /** The store file. `~/` expands to the home directory. Wins over `name`. */
  file?: string
  /**
   * An application name: the file is `<config dir>/<name>/config.anystore`, the config
   * directory being the platform's (`$XDG_CONFIG_HOME` or `~/.config` on Linux).
   */
  name?: string
  /**
   * Only an absent property means the public default key (which only obfuscates); present
   * but `undefined` or empty is an InvalidKeyError.
   * @default DEFAULT_ENCRYPTION_KEY
   */
  encryptionKey?: string | Uint8Array
  /**
   * Keys also accepted for reading, as the store option of the same name: a store or stash
   * written under one of them is read, and what is written goes under `encryptionKey`.
   * @default []
   */
  acceptedKeys?: readonly (string | Uint8Array)[]
  /**
   * Derive the key from a passphrase instead (not with `encryptionKey`), as the store option
   * of the same name: scrypt, about half a second per call.
   */
  passphrase?: string | Uint8Array
  /** Deflate before encrypting. @default false */
  compress?: boolean
}

export interface StashOptions<T>
  extends ThingLocation,
    Pick<AnyStoreOptions, 'lock' | 'lockTimeoutMs'> {
  /** Also (or only) write a stand-alone encrypted stash here. It is closed on success and failure. */
  writer?: Writable
  /** The key the thing is stored under. */
  key: StoreKey
  thing: T
  /**
   * Any Standard Schema validator, run before anything is written: a thing that fails it is a
   * SchemaValidationError and nothing is written. Its output is what is stored.
   */
  schema?: StandardSchemaV1<unknown, T>
}

export interface UnstashOptions<T> extends ThingLocation {
  /** Read a stash (what stash() wrote to a writer, or a whole store file) from here; preferred over `file`. */
  reader?: Readable
  key: StoreKey
  /** Returned (after the schema, if any) when the file or the key is missing. */
  defaults?: T
  /**
   * Refuse a stash (stream or file) larger than this many bytes, or whose compressed payload
   * inflates to more than this (`FileTooLargeError`), as the store option of the same name.
   * @default 1073741824 (1 GiB)
   */
  maxFileSize?: number
  /** Any Standard Schema validator; its output is what unstash() returns. */
  schema?: StandardSchemaV1<unknown, T>
}

/**
 * env-paths, loaded by the first default stash path, since only calls that name an application
 * need it. It is an ES module, which require() loads on every Node this package supports.
 */
function envPaths(name: string, options: { suffix: string }): ReturnType<typeof EnvPaths> {
  const loaded = createRequire(import.meta.url)('env-paths') as { default: typeof EnvPaths }
  return loaded.default(name, options)
}

/** The default store file for an application name, e.g. `~/.config/myapp/config.anystore` on Linux. */
export function defaultStashFile(name: string): string {
  if (typeof name !== 'string' || name === '') {
    throw new InvalidOptionError('Expected `name` to be a non-empty application name')
  }
  let dir: string
  try {
    dir = envPaths(name, { suffix: '' }).config
  } catch (cause) {
    throw new InvalidOptionError(
      `Expected \`name\` to be usable as a directory name, got ${JSON.stringify(name)} (${String(cause)})`,
    )
  }
  return join(dir, DEFAULT_STASH_FILE_NAME)
}

/** The store file a location names, or undefined when it names none. */
export function thingFile(location: ThingLocation): string | undefined {
  if (location.file !== undefined) return expandPath(location.file)
  if (location.name !== undefined) return defaultStashFile(location.name)
  return undefined
}

/**
 * Stores one object under `key`: in the store file (`file` or `name`), and/or as a
 * stand-alone encrypted stash written to `writer`. With `schema`, the object is validated
 * first and the schema's output is stored.
 */
export async function stash<T>(options: StashOptions<T>): Promise<void> {
  const writer = (options as Partial<StashOptions<T>> | undefined)?.writer
  let keyring: KeyRing
  try {
    checkOptionNames(options, 'stash')
    keyring = keyringOption(options)
  } catch (error) {
    writer?.destroy()
    throw error
  }
  return stashWithKeyRing(options, keyring)
}

/** stash() with the keyring already built (editThing() builds one for its read and its write). */
export async function stashWithKeyRing<T>(options: StashOptions<T>, keyring: KeyRing): Promise<void> {
  const writer = options.writer
  let written = false
  try {
    const key = checkKey(options.key)
    const file = thingFile(options)
    if (file === undefined && writer === undefined) {
      throw new InvalidOptionError(
        'stash() needs somewhere to write: pass `file`, `name` or `writer`',
      )
    }
    // Validated and encoded first: an invalid or unsupported thing fails before anything is
    // written anywhere, rather than being stored for unstash() to refuse later.
    const thing =
      options.schema === undefined
        ? options.thing
        : await validateWithSchema(options.schema, options.thing)
    const value = encodeValue(thing)
    if (file !== undefined) {
      const store = await openWithKeyRing<T>(
        {
          file,
          compress: options.compress,
          lock: options.lock,
          lockTimeoutMs: options.lockTimeoutMs,
        },
        keyring,
      )
      try {
        await store.set(key, thing)
      } finally {
        await store.close()
      }
    }
    if (writer !== undefined) {
      const { keys, kdf } = keyring.sealing()
      const sealed = sealEntries(keys, [[key, { value }]], {
        compress: options.compress ?? DEFAULT_OPTIONS.compress,
        kdf,
      })
      for (const part of sealed.parts) {
        if (!writer.write(part)) await once(writer, 'drain')
      }
      writer.end()
      await finished(writer)
      written = true
      if (keyring.current !== undefined) {
        warnIfDefaultKey(keyring.current, 'The stash written to `writer`')
      }
    }
  } finally {
    if (writer !== undefined && !written) writer.destroy()
  }
}

async function readAll(reader: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of reader) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk as Uint8Array)
    size += bytes.length
    // Stop the source before refusing: the rest of an oversized stream is never read.
    if (size > limit) reader.destroy()
    checkFileSize('the stash stream', size, limit)
    chunks.push(bytes)
  }
  return Buffer.concat(chunks, size)
}

const MISSING = Symbol('missing')

async function readFromStream(
  reader: Readable,
  key: StoreKey,
  keyring: KeyRing,
  maxFileSize: number,
): Promise<unknown> {
  const label = 'the stash stream'
  const bytes = await readAll(reader, maxFileSize)
  const { entries } = openEntries(label, keyring, bytes, { maxPayloadSize: maxFileSize })
  const entry = entries.get(key)
  return entry === undefined ? MISSING : decodeValue(entry.value)
}

function exists(file: string): boolean {
  try {
    statSync(file)
    return true
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return false
    throw error
  }
}

async function readFromFile(
  file: string,
  key: StoreKey,
  keyring: KeyRing,
  maxFileSize: number,
): Promise<unknown> {
  // Checked first so that reading a missing config creates no directory and no lockfile.
  if (!exists(file)) return MISSING
  const store = await openWithKeyRing({ file, maxFileSize }, keyring)
  try {
    return (await store.has(key)) ? await store.get(key) : MISSING
  } finally {
    await store.close()
  }
}

/**
 * Reads back what stash() stored: from `reader` when given, else from the store file. A
 * missing file or key gives `defaults`, or ThingNotFoundError without them.
 */
export async function unstash<T>(options: UnstashOptions<T>): Promise<T> {
  checkOptionNames(options, 'unstash')
  return unstashWithKeyRing(options, keyringOption(options))
}

/** unstash() with the keyring already built. */
export async function unstashWithKeyRing<T>(
  options: UnstashOptions<T>,
  keyring: KeyRing,
): Promise<T> {
  const key = checkKey(options.key)
  const maxFileSize = positiveNumber(
    'maxFileSize',
    options.maxFileSize ?? DEFAULT_OPTIONS.maxFileSize,
  )
  let found: unknown
  let where: string
  if (options.reader !== undefined) {
    where = 'the stash stream'
    found = await readFromStream(options.reader, key, keyring, maxFileSize)
  } else {
    const file = thingFile(options)
    if (file === undefined) {
      throw new InvalidOptionError(
        'unstash() needs something to read: pass `reader`, `file` or `name`',
      )
    }
    where = file
    found = await readFromFile(file, key, keyring, maxFileSize)
  }
  if (found === MISSING) {
    if (options.defaults === undefined) throw new ThingNotFoundError(where, key)
    found = options.defaults
  }
  return options.schema === undefined
    ? (found as T)
    : await validateWithSchema(options.schema, found)
}
