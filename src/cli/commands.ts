import { once } from 'node:events'
import {
  closeSync,
  fstatSync,
  openSync,
  readFileSync,
  realpathSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { resolve } from 'node:path'
import type { Writable } from 'node:stream'
import { AnyStore } from '../anystore.js'
import { encodeValue } from '../format/codec.js'
import { DEFAULT_ENCRYPTION_KEY, newKey, parseKey } from '../crypto.js'
import { markDefaultKeyWarningGiven } from '../store/default-key-warning.js'
import {
  CorruptFileError,
  InvalidKeyError,
  StoreFileNotFoundError,
  ThingNotFoundError,
  WrongKeyError,
} from '../store/errors.js'
import { assertFileExists, readFileHeader } from '../format/file-info.js'
import { isDeflated } from '../format/header.js'
import {
  expandPath,
  type LockMode,
  passphraseOption,
  resolveOptions,
} from '../store/options.js'
import { ProgressBar } from './progress.js'
import { rekey } from '../maintenance/rekey.js'
import { restore } from '../maintenance/restore.js'
import { needsEntriesForm, storeFromJson, storeJsonChunks } from './store-json.js'
import { parseJson, parseTagged, stringifyTagged } from '../format/tagged-json.js'
import type { StoreKey } from '../store/types.js'
import { CliKeyError, CliPassphraseError, RedisStoreNotFoundError } from './messages.js'
import { promptHidden } from './prompt.js'
import { LocationError, parseLocation, type StoreLocation } from './location.js'
import type { Backend } from '../backends/backend.js'
import { openFileBackend, openRedisBackend } from '../backends/open-backend.js'
import type { RedisBackend } from '../backends/redis/redis-backend.js'
import { readSource, TargetNotEmptyError, writeTarget } from '../maintenance/copy.js'

/** Wrong arguments: exit status 2. */
export class UsageError extends Error {
  readonly code = 'USAGE'
}

export type OptionValues = Record<string, string | string[] | boolean | undefined>

export interface CommandContext {
  args: string[]
  options: OptionValues
  env: NodeJS.ProcessEnv
  stdin: NodeJS.ReadableStream
  stdout: Writable
  stderr: Writable & { isTTY?: boolean; columns?: number }
  /** Whether stdin is a terminal, where --passphrase can prompt. */
  stdinIsTTY: boolean
}

interface KeyChoice {
  key: string
  /** Given with --key-file or ANYSTORE_KEY, not the default. */
  explicit: boolean
  /** Where the key came from, for messages: `--key-file app.key`, `$ANYSTORE_KEY`. */
  source: string
}

function readKeyFile(ctx: CommandContext, path: string, option: string): KeyChoice {
  return { key: readSecretFile(ctx, path, option).trim(), explicit: true, source: `${option} ${path}` }
}

/** The whole content of a key or passphrase file, warning when other users can read it. */
function readSecretFile(ctx: CommandContext, path: string, option: string): string {
  let text: string
  let mode: number
  try {
    const fd = openSync(expandPath(path), 'r')
    try {
      mode = fstatSync(fd).mode
      text = readFileSync(fd, 'utf8')
    } finally {
      closeSync(fd)
    }
  } catch (cause) {
    throw new UsageError(`Cannot read ${option} ${path}: ${(cause as Error).message}`)
  }
  // As ssh does for private keys: a key others can read protects nothing. Warn, and say the fix.
  if ((mode & 0o077) !== 0) {
    const octal = (mode & 0o777).toString(8).padStart(4, '0')
    ctx.stderr.write(
      `anystore: warning: ${option} ${path} is accessible by other users (mode ${octal}): run \`chmod 600 ${path}\`\n`,
    )
  }
  return text
}

/**
 * The passphrase from `fileOption` (the file's content without its final line break: spaces
 * are part of a passphrase) or, with `promptOption`, typed at a prompt without echo.
 * Undefined when neither is given. Checked here, so that the message names where it came from.
 */
async function choosePassphrase(
  ctx: CommandContext,
  fileOption: 'passphrase-file' | 'new-passphrase-file' | 'to-passphrase-file',
  promptOption: 'passphrase' | 'new-passphrase' | 'to-passphrase',
  question: string,
): Promise<string | undefined> {
  const file = ctx.options[fileOption]
  let passphrase: string
  let source: string
  if (typeof file === 'string') {
    if (ctx.options[promptOption] === true) {
      throw new UsageError(`Pass either --${fileOption} or --${promptOption}, not both`)
    }
    passphrase = readSecretFile(ctx, file, `--${fileOption}`).replace(/\r?\n$/, '')
    source = `--${fileOption} ${file}`
  } else if (ctx.options[promptOption] === true) {
    if (!ctx.stdinIsTTY) {
      throw new UsageError(
        `--${promptOption} asks on a terminal, but stdin is not one: use --${fileOption} FILE`,
      )
    }
    passphrase = await promptHidden(`${question}: `)
    // A new secret is asked twice: a typing mistake there would lock the store away for good.
    if (promptOption !== 'passphrase') {
      const again = await promptHidden(`${question} (again): `)
      if (again !== passphrase) throw new UsageError('The two passphrases typed differ: nothing was changed')
    }
    source = `--${promptOption}`
  } else {
    return undefined
  }
  try {
    passphraseOption({ passphrase }, 'passphrase')
  } catch (error) {
    if (error instanceof InvalidKeyError) throw new CliPassphraseError(source, error)
    throw error
  }
  return passphrase
}

/** What the library is given: the key, or the passphrase. */
type SecretOption = { encryptionKey: string } | { passphrase: string }

/**
 * The store's secret: a passphrase (--passphrase-file, --passphrase), else the key
 * (--key-file, $ANYSTORE_KEY, the default key). --key-file with a passphrase is a usage error;
 * $ANYSTORE_KEY is ignored when a passphrase is given, as flags win over the environment.
 */
async function chooseSecret(
  ctx: CommandContext,
  warn: boolean,
  where: string = locate(ctx.args[0]!).display,
): Promise<{ secret: SecretOption; explicit: boolean }> {
  const asked = ctx.options['passphrase-file'] !== undefined || ctx.options.passphrase === true
  if (asked && ctx.options['key-file'] !== undefined) {
    throw new UsageError('Pass either --key-file or a passphrase (--passphrase-file, --passphrase), not both')
  }
  const passphrase = await choosePassphrase(ctx, 'passphrase-file', 'passphrase', `Passphrase for ${where}`)
  if (passphrase !== undefined) return { secret: { passphrase }, explicit: true }
  const choice = chooseKey(ctx, warn)
  return { secret: { encryptionKey: validKey(choice) }, explicit: choice.explicit }
}

/**
 * The key, checked here rather than by the store: only the CLI knows where it came from, and
 * the message has to say which of two keys (rekey) or which source is wrong.
 */
function validKey(choice: KeyChoice): string {
  try {
    parseKey(choice.key)
  } catch (error) {
    if (error instanceof InvalidKeyError) throw new CliKeyError(choice.source, error)
    throw error
  }
  return choice.key
}

function chooseKey(ctx: CommandContext, warn: boolean): KeyChoice {
  const file = ctx.options['key-file']
  if (typeof file === 'string') return readKeyFile(ctx, file, '--key-file')
  const fromEnv = ctx.env.ANYSTORE_KEY
  if (fromEnv !== undefined && fromEnv.trim() !== '') {
    return { key: fromEnv.trim(), explicit: true, source: '$ANYSTORE_KEY' }
  }
  // The CLI words the warning for its own options (or, for `info`, gives none on purpose):
  // the library's, which names the `encryptionKey` option, would only repeat it.
  markDefaultKeyWarningGiven()
  if (warn) {
    ctx.stderr.write(
      'anystore: warning: no --key-file or ANYSTORE_KEY given: using the public default key, which only obfuscates the store\n',
    )
  }
  return { key: DEFAULT_ENCRYPTION_KEY, explicit: false, source: 'the default key' }
}

/**
 * The keys of `--accepted-key-file` (repeatable), each checked where it was read so that an
 * invalid one is named by its file.
 */
function acceptedKeys(ctx: CommandContext): string[] {
  const files = ctx.options['accepted-key-file']
  if (files === undefined) return []
  const list = Array.isArray(files) ? files : [String(files)]
  return list.map((file) => validKey(readKeyFile(ctx, file, '--accepted-key-file')))
}

function lockTimeout(ctx: CommandContext): number | undefined {
  const text = ctx.options['lock-timeout']
  if (text === undefined) return undefined
  const ms = Number(text)
  if (typeof text !== 'string' || text.trim() === '' || !Number.isFinite(ms) || ms < 0) {
    throw new UsageError(`--lock-timeout must be a number of milliseconds, got ${String(text)}`)
  }
  return ms
}

const LOCK_MODES: readonly LockMode[] = ['flock', 'proper-lockfile', 'auto']

function lockMode(ctx: CommandContext): LockMode | undefined {
  const text = ctx.options.lock
  if (text === undefined) return undefined
  if (typeof text !== 'string' || !(LOCK_MODES as readonly string[]).includes(text)) {
    throw new UsageError(`--lock must be flock, proper-lockfile or auto, got ${String(text)}`)
  }
  return text as LockMode
}

function storeKey(ctx: CommandContext, text: string): StoreKey {
  if (!ctx.options.number) return text
  const number = Number(text)
  if (text.trim() === '' || (Number.isNaN(number) && text.trim() !== 'NaN')) {
    throw new UsageError(`--number: KEY must be a number, got ${JSON.stringify(text)}`)
  }
  return number
}

async function readStdin(ctx: CommandContext): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of ctx.stdin) {
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer))
  }
  return Buffer.concat(chunks).toString('utf8')
}

/**
 * The input of `import`: stdin for `-` or nothing; JSON text when it starts (after whitespace)
 * with `{`, as every dump does (kept from when the argument was always JSON); else a file to
 * read. A file that cannot be read is a usage error (exit 2), as for --key-file: exit 4 is
 * kept for a missing store file, which scripts may test for.
 */
async function importText(ctx: CommandContext, given: string | undefined): Promise<string> {
  if (given === undefined || given === '-') return readStdin(ctx)
  if (given.trimStart().startsWith('{')) return given
  try {
    return readFileSync(expandPath(given), 'utf8')
  } catch (cause) {
    throw new UsageError(`Cannot read the JSON file ${given}: ${(cause as Error).message}`)
  }
}

async function write(stream: Writable, text: string): Promise<void> {
  if (!stream.write(text)) await once(stream, 'drain')
}

/** Writes many small pieces in large writes, waiting for the stream to drain. */
async function writeChunks(stream: Writable, chunks: Iterable<string>): Promise<void> {
  let buffer = ''
  for (const chunk of chunks) {
    buffer += chunk
    if (buffer.length >= 1 << 16) {
      await write(stream, buffer)
      buffer = ''
    }
  }
  if (buffer !== '') await write(stream, buffer)
}

/** The compression the file uses now, so that writes from the CLI keep it. */
function fileCompresses(file: string): boolean {
  // Anything but a regular file is left to the store to reject with its own error.
  if (!statSync(file, { throwIfNoEntry: false })?.isFile()) return false
  try {
    return isDeflated(readFileHeader(file).header)
  } catch (error) {
    if (error instanceof StoreFileNotFoundError) return false
    throw error
  }
}

/** A FILE argument as a location; a malformed Redis URL is a usage error. */
function locate(text: string): StoreLocation {
  try {
    return parseLocation(text)
  } catch (error) {
    if (error instanceof LocationError) throw new UsageError(error.message)
    throw error
  }
}

/** Flags that only mean something for a store file, with why a Redis store has no use for them. */
const FILE_ONLY_FLAGS = {
  lock: 'a Redis store takes no lock: the server checks each commit',
  'lock-timeout': 'a Redis store takes no lock: --redis-timeout MS bounds each call',
  'accepted-key-file': 'a Redis store is sealed under one key for life',
  compress: 'entries in Redis are not compressed',
} as const

type FileOnlyFlag = keyof typeof FILE_ONLY_FLAGS

/**
 * Refuses flags that do not apply to where the stores live: `fileOnly` flags when `redis` is the
 * store they would act on, --redis-timeout when no store is in Redis. Refused, not ignored: a
 * flag that silently does nothing misleads.
 */
function refuseFlags(
  ctx: CommandContext,
  redis: StoreLocation | undefined,
  anyRedis: boolean,
  fileOnly: readonly FileOnlyFlag[] = Object.keys(FILE_ONLY_FLAGS) as FileOnlyFlag[],
): void {
  if (redis !== undefined && redis.kind === 'redis') {
    for (const flag of fileOnly) {
      if (ctx.options[flag] !== undefined) {
        throw new UsageError(
          `--${flag} applies to store files, not to ${redis.display}: ${FILE_ONLY_FLAGS[flag]}`,
        )
      }
    }
  }
  if (!anyRedis && ctx.options['redis-timeout'] !== undefined) {
    throw new UsageError('--redis-timeout applies to Redis stores (redis://HOST#NAME), not to store files')
  }
}

function redisTimeout(ctx: CommandContext): number | undefined {
  const text = ctx.options['redis-timeout']
  if (text === undefined) return undefined
  const ms = Number(text)
  if (typeof text !== 'string' || text.trim() === '' || !Number.isFinite(ms) || ms <= 0) {
    throw new UsageError(`--redis-timeout must be a positive number of milliseconds, got ${String(text)}`)
  }
  return ms
}

/** A command that reads a store file's bytes or rewrites the file: refused on Redis, saying what to do. */
function refuseRedis(location: StoreLocation, why: string): void {
  if (location.kind === 'redis') throw new UsageError(`${location.display} is a Redis store: ${why}`)
}

/**
 * Opens the Redis store at `location`. `mustExist`: a name with no store under it is an error
 * (exit status 4, as for a missing file), found without creating anything; otherwise a writable
 * open creates the store.
 */
async function openRedis(
  ctx: CommandContext,
  location: Extract<StoreLocation, { kind: 'redis' }>,
  secret: SecretOption,
  open: OpenOptions,
): Promise<RedisBackend> {
  const resolved = resolveOptions({
    redis: { url: location.url, name: location.name, timeoutMs: redisTimeout(ctx) },
    ...secret,
    readOnly: open.mustExist || !open.write,
  })
  const backend = await openRedisBackend(resolved)
  if (open.mustExist && !backend.exists) {
    backend.close()
    throw new RedisStoreNotFoundError(location.display)
  }
  if (!open.write || !backend.readOnly) return backend
  // Found by a read-only open, so that a mistyped name creates nothing; now opened to write.
  backend.close()
  return openRedisBackend({ ...resolved, readOnly: false })
}

interface OpenOptions {
  mustExist: boolean
  write?: boolean
}

async function withStore<T>(
  ctx: CommandContext,
  open: OpenOptions,
  fn: (store: AnyStore<unknown>, where: string) => Promise<T>,
): Promise<T> {
  const location = locate(ctx.args[0]!)
  refuseFlags(ctx, location, location.kind === 'redis')
  if (location.kind === 'redis') {
    const { secret } = await chooseSecret(ctx, true, location.display)
    const backend = await openRedis(ctx, location, secret, open)
    try {
      // The store wraps the backend opened here, which it leaves to this function to close.
      const store = await AnyStore.open({ backend })
      try {
        return await fn(store, location.display)
      } finally {
        await store.close()
      }
    } finally {
      backend.close()
    }
  }
  const file = location.file
  if (open.mustExist) assertFileExists(file)
  const { secret } = await chooseSecret(ctx, true, file)
  const compress = open.write ? ctx.options.compress === true || fileCompresses(file) : false
  const store = await AnyStore.open({
    file,
    ...secret,
    acceptedKeys: acceptedKeys(ctx),
    compress,
    lockTimeoutMs: lockTimeout(ctx),
    lock: lockMode(ctx),
  })
  try {
    return await fn(store, file)
  } finally {
    await store.close()
  }
}

/** Decodes every value, naming the key of one that does not decode. */
function decodeAll(file: string, store: AnyStore<unknown>): Promise<[StoreKey, unknown][]> {
  return store.entries().catch(async (cause) => {
    for (const key of await store.keys()) {
      try {
        await store.get(key)
      } catch (inner) {
        throw new CorruptFileError(file, `the value of ${JSON.stringify(key)} does not decode`, {
          cause: inner,
        })
      }
    }
    throw cause
  })
}

/**
 * `edit URL#NAME KEY`: what editThing does for a file, on a Redis store. The value (null when
 * absent) is edited as tagged JSON and written back if the text changed; the last writer wins,
 * as with a file.
 */
async function editRedisValue(ctx: CommandContext, key: StoreKey): Promise<void> {
  const { editText } = await import('../config/editor.js')
  await withStore(ctx, { mustExist: false, write: true }, async (store) => {
    const current = (await store.has(key)) ? await store.get(key) : null
    const { value, changed } = await editText(
      `${stringifyTagged(current, 2)}\n`,
      (edited) => {
        const parsed = parseTagged(edited, 'the edited file')
        encodeValue(parsed)
        return parsed
      },
      { editor: ctx.options.editor as string | undefined },
    )
    if (changed) await store.set(key, value)
  })
}

/** `copy`'s destination secret: --to-key-file or a --to-passphrase, else the source's. */
async function chooseTargetSecret(
  ctx: CommandContext,
  source: SecretOption,
  where: string,
): Promise<SecretOption> {
  const keyFile = ctx.options['to-key-file']
  const asked = ctx.options['to-passphrase-file'] !== undefined || ctx.options['to-passphrase'] === true
  if (typeof keyFile === 'string' && asked) {
    throw new UsageError('Pass either --to-key-file or a --to-passphrase option, not both')
  }
  if (typeof keyFile === 'string') {
    return { encryptionKey: validKey(readKeyFile(ctx, keyFile, '--to-key-file')) }
  }
  const passphrase = await choosePassphrase(
    ctx,
    'to-passphrase-file',
    'to-passphrase',
    `Passphrase for ${where}`,
  )
  return passphrase === undefined ? source : { passphrase }
}

function sameStore(a: StoreLocation, b: StoreLocation): boolean {
  if (a.kind === 'file' && b.kind === 'file') return realFile(a.file) === realFile(b.file)
  if (a.kind === 'redis' && b.kind === 'redis') {
    return a.name === b.name && redisServerOf(a.url) === redisServerOf(b.url)
  }
  return false
}

/** A file's path with links resolved, or as given when it does not exist yet. */
function realFile(file: string): string {
  try {
    return realpathSync(file)
  } catch {
    return resolve(file)
  }
}

/**
 * A Redis URL as the database it names: host, port and database number with their defaults,
 * without credentials or a trailing slash. Two spellings of one address written differently
 * (a name against an IP address) still compare unequal; a copy onto itself is then one commit
 * that leaves the store as it was, not a loss.
 */
function redisServerOf(url: string): string {
  const parsed = new URL(url)
  const database = Number(parsed.pathname.replace(/^\//, '') || '0')
  return `${parsed.protocol}//${parsed.hostname.toLowerCase()}:${parsed.port || '6379'}/${database}`
}

/** The compression a file copied to keeps: --compress, else what it uses now, else the source's. */
function copyCompresses(ctx: CommandContext, target: string, source: StoreLocation): boolean {
  if (ctx.options.compress === true) return true
  if (statSync(target, { throwIfNoEntry: false }) !== undefined) return fileCompresses(target)
  return source.kind === 'file' && fileCompresses(source.file)
}

/** Opens one side of a copy as a backend: the source read-only (it must exist), the target to write. */
async function openCopySide(
  ctx: CommandContext,
  location: StoreLocation,
  secret: SecretOption,
  side: 'source' | 'target',
  compress: boolean,
): Promise<Backend> {
  if (location.kind === 'redis') {
    return openRedis(ctx, location, secret, side === 'source' ? { mustExist: true } : { mustExist: false, write: true })
  }
  if (side === 'source') assertFileExists(location.file)
  const resolved = resolveOptions({
    file: location.file,
    ...secret,
    acceptedKeys: side === 'source' ? acceptedKeys(ctx) : [],
    lock: lockMode(ctx),
    lockTimeoutMs: lockTimeout(ctx),
    readOnly: side === 'source',
  })
  return openFileBackend(location.file, resolved, { compress })
}

export const RUN: Record<string, (ctx: CommandContext) => Promise<void>> = {
  async newkey(ctx) {
    const file = ctx.args[0]
    if (file === undefined) {
      await write(ctx.stdout, `${newKey()}\n`)
      return
    }
    // 'wx' = O_CREAT | O_EXCL: never replaces a file (an overwritten key loses its store) and
    // never follows a link planted at the name; 0600 from the start, not chmod-ed afterwards.
    try {
      writeFileSync(expandPath(file), `${newKey()}\n`, { flag: 'wx', mode: 0o600 })
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new UsageError(`${file} already exists; newkey never overwrites a key file`)
      }
      throw cause
    }
  },

  async get(ctx) {
    await withStore(ctx, { mustExist: true }, async (store, file) => {
      const key = storeKey(ctx, ctx.args[1]!)
      if (!(await store.has(key))) throw new ThingNotFoundError(file, key)
      const value = await store.get(key)
      const text =
        ctx.options.raw && typeof value === 'string'
          ? value
          : stringifyTagged(value, ctx.options.pretty ? 2 : undefined)
      await write(ctx.stdout, `${text}\n`)
    })
  },

  async set(ctx) {
    const key = storeKey(ctx, ctx.args[1]!)
    const given = ctx.args[2]!
    const text = given === '-' ? await readStdin(ctx) : given
    const value = ctx.options.json ? parseTagged(text, 'VALUE') : text
    await withStore(ctx, { mustExist: false, write: true }, (store) => store.set(key, value))
  },

  async delete(ctx) {
    await withStore(ctx, { mustExist: true, write: true }, async (store, file) => {
      const key = storeKey(ctx, ctx.args[1]!)
      if (!(await store.delete(key))) throw new ThingNotFoundError(file, key)
    })
  },

  async keys(ctx) {
    await withStore(ctx, { mustExist: true }, async (store) => {
      const keys = await store.keys()
      const text = ctx.options.json
        ? `${stringifyTagged(keys)}\n`
        : keys.map((key) => `${String(key)}\n`).join('')
      await write(ctx.stdout, text)
    })
  },

  async size(ctx) {
    await withStore(ctx, { mustExist: true }, async (store) => {
      await write(ctx.stdout, `${await store.size()}\n`)
    })
  },

  async dump(ctx) {
    await withStore(ctx, { mustExist: true }, async (store, file) => {
      const entries = await decodeAll(file, store)
      const progress = new ProgressBar('dump', entries.length, ctx.stderr)
      let done = 0
      const entriesForm = ctx.options.entries === true || needsEntriesForm(entries.map(([k]) => k))
      await writeChunks(
        ctx.stdout,
        storeJsonChunks(entries, { entriesForm, onEntry: () => progress.update(++done) }),
      )
      progress.finish()
    })
  },

  async import(ctx) {
    const text = await importText(ctx, ctx.args[1])
    const entries = storeFromJson(parseJson(text))
    // Checked before taking the lock, so a bad value fails without blocking other writers.
    for (const [, value] of entries) encodeValue(value)
    await withStore(ctx, { mustExist: false, write: true }, async (store) => {
      const progress = new ProgressBar('import', entries.length, ctx.stderr)
      await store.run(async (tx) => {
        if (ctx.options.replace) await tx.clear()
        let done = 0
        for (const [key, value] of entries) {
          await tx.set(key, value)
          progress.update(++done)
        }
      })
      progress.finish()
    })
  },

  async edit(ctx) {
    // The editor's code (and its child_process and readline) loads only for this command.
    const { editText, editThing } = await import('../config/editor.js')
    const location = locate(ctx.args[0]!)
    if (ctx.args[1] !== undefined && location.kind === 'redis') {
      await editRedisValue(ctx, storeKey(ctx, ctx.args[1]))
      return
    }
    if (ctx.args[1] !== undefined && location.kind === 'file') {
      const file = location.file
      refuseFlags(ctx, location, false)
      const { secret } = await chooseSecret(ctx, true, file)
      await editThing<unknown>({
        file,
        key: storeKey(ctx, ctx.args[1]),
        ...secret,
        acceptedKeys: acceptedKeys(ctx),
        compress: ctx.options.compress === true || fileCompresses(file),
        defaults: null,
        editor: ctx.options.editor as string | undefined,
        lock: lockMode(ctx),
        lockTimeoutMs: lockTimeout(ctx),
      })
      return
    }
    await withStore(ctx, { mustExist: false, write: true }, async (store, storeFile) => {
      const before = await decodeAll(storeFile, store)
      const beforeJson = new Map(before.map(([key, value]) => [key, stringifyTagged(value)]))
      const text = [
        ...storeJsonChunks(before, {
          entriesForm: needsEntriesForm(beforeJson.keys()),
          indent: 2,
        }),
      ].join('')
      const { value: after, changed } = await editText(
        text,
        (edited) => {
          const entries = storeFromJson(parseJson(edited, 'the edited file'))
          for (const [, value] of entries) encodeValue(value)
          return entries
        },
        { editor: ctx.options.editor as string | undefined, fileName: 'store.json' },
      )
      if (!changed) return
      // Only what the user changed is written: keys another process changed meanwhile survive.
      const afterKeys = new Set(after.map(([key]) => key))
      await store.run(async (tx) => {
        for (const key of beforeJson.keys()) if (!afterKeys.has(key)) await tx.delete(key)
        for (const [key, value] of after) {
          if (beforeJson.get(key) !== stringifyTagged(value)) await tx.set(key, value)
        }
      })
    })
  },

  async rekey(ctx) {
    refuseRedis(
      locate(ctx.args[0]!),
      'it is sealed under one key for life; `anystore copy SRC DST --to-key-file NEW.key` copies it under a new key (to a new name, or a file)',
    )
    refuseFlags(ctx, undefined, false)
    const file = expandPath(ctx.args[0]!)
    const newKeyFile = ctx.options['new-key-file']
    const newPassphraseGiven =
      ctx.options['new-passphrase-file'] !== undefined || ctx.options['new-passphrase'] === true
    if (typeof newKeyFile === 'string' && newPassphraseGiven) {
      throw new UsageError('Pass either --new-key-file or a new passphrase, not both')
    }
    if (typeof newKeyFile !== 'string' && !newPassphraseGiven) {
      throw new UsageError('rekey needs --new-key-file FILE, --new-passphrase-file FILE or --new-passphrase')
    }
    const { secret } = await chooseSecret(ctx, true)
    const newSecret =
      typeof newKeyFile === 'string'
        ? { newEncryptionKey: validKey(readKeyFile(ctx, newKeyFile, '--new-key-file')) }
        : {
            newPassphrase: (await choosePassphrase(
              ctx,
              'new-passphrase-file',
              'new-passphrase',
              `New passphrase for ${file}`,
            ))!,
          }
    let progress: ProgressBar | undefined
    const { entries } = await rekey({
      file,
      ...secret,
      acceptedKeys: acceptedKeys(ctx),
      ...newSecret,
      compress: ctx.options.compress === true ? true : undefined,
      lockTimeoutMs: lockTimeout(ctx),
      lock: lockMode(ctx),
      onProgress: (done, total) => {
        progress ??= new ProgressBar('rekey', total, ctx.stderr)
        progress.update(done)
      },
    })
    progress?.finish()
    await write(ctx.stdout, `re-encrypted ${entries} entries\n`)
  },

  async restore(ctx) {
    const why =
      'restore works on store files; `anystore copy BACKUP DST --force` puts the entries of one store in place of another\'s, in one commit'
    refuseRedis(locate(ctx.args[0]!), why)
    refuseRedis(locate(ctx.args[1]!), why)
    refuseFlags(ctx, undefined, false)
    const file = expandPath(ctx.args[0]!)
    const backup = expandPath(ctx.args[1]!)
    const { secret } = await chooseSecret(ctx, true)
    const backupKeyFile = ctx.options['backup-key-file']
    // Absent, not undefined, when not given: restore() then reads the backup with the store's key.
    const backupKey =
      typeof backupKeyFile === 'string'
        ? { fromEncryptionKey: validKey(readKeyFile(ctx, backupKeyFile, '--backup-key-file')) }
        : {}
    let progress: ProgressBar | undefined
    const { entries } = await restore({
      file,
      from: backup,
      ...secret,
      acceptedKeys: acceptedKeys(ctx),
      ...backupKey,
      compress: ctx.options.compress === true ? true : undefined,
      lock: lockMode(ctx),
      lockTimeoutMs: lockTimeout(ctx),
      onProgress: (done, total) => {
        progress ??= new ProgressBar('restore', total, ctx.stderr)
        progress.update(done)
      },
    })
    progress?.finish()
    await write(ctx.stdout, `restored ${entries} entries from ${ctx.args[1]!}\n`)
  },

  async copy(ctx) {
    const from = locate(ctx.args[0]!)
    const to = locate(ctx.args[1]!)
    if (sameStore(from, to)) throw new UsageError(`SRC and DST are the same store: ${from.display}`)
    const anyRedis = from.kind === 'redis' || to.kind === 'redis'
    refuseFlags(ctx, from, anyRedis, ['accepted-key-file'])
    if (from.kind === 'redis' && to.kind === 'redis') refuseFlags(ctx, from, true, ['lock', 'lock-timeout'])
    refuseFlags(ctx, to, anyRedis, ['compress'])
    const { secret } = await chooseSecret(ctx, true, from.display)
    const targetSecret = await chooseTargetSecret(ctx, secret, to.display)
    const replace = ctx.options.force === true
    // The source is read, checked and closed first: a source that does not open (a wrong key,
    // no such store) or does not decode leaves the destination as it was, not even created.
    let progress: ProgressBar | undefined
    const source = await openCopySide(ctx, from, secret, 'source', false)
    let entries: Awaited<ReturnType<typeof readSource>>
    try {
      entries = await readSource(source, (done, total) => {
        progress ??= new ProgressBar('copy', total, ctx.stderr)
        progress.update(done)
      })
    } finally {
      await source.close()
    }
    const compress = to.kind === 'file' && copyCompresses(ctx, to.file, from)
    const target = await openCopySide(ctx, to, targetSecret, 'target', compress)
    try {
      await writeTarget(target, entries, { replace })
    } catch (error) {
      if (error instanceof TargetNotEmptyError) {
        throw new UsageError(
          `${to.display} already holds ${error.size} ${error.size === 1 ? 'entry' : 'entries'}: nothing was copied. --force replaces them (every entry of DST is deleted in the same commit)`,
        )
      }
      throw error
    } finally {
      await target.close()
    }
    const copied = entries.length
    progress?.finish()
    await write(ctx.stdout, `copied ${copied} entries from ${from.display} to ${to.display}\n`)
  },

  async info(ctx) {
    refuseRedis(
      locate(ctx.args[0]!),
      'info reads the header of a store file, and a Redis store has none; `anystore size` counts its entries and `anystore verify` checks them',
    )
    refuseFlags(ctx, undefined, false)
    const file = expandPath(ctx.args[0]!)
    const { header, size } = readFileHeader(file)
    const compressed = isDeflated(header)
    const info = {
      file,
      size,
      formatVersion: header.version,
      flags: `0x${header.flags.toString(16).padStart(4, '0')}`,
      compressed,
      keyBytes: header.keyLength,
      cipher: `AES-${header.keyLength * 8}-GCM`,
      lastCommit: new Date(header.commitTime).toISOString(),
      // Format version 3 only: versions 1 and 2 carry neither.
      storeId: header.storeId === undefined ? null : header.storeId.toString('hex'),
      commitCounter: header.storeId === undefined ? null : Number(header.counter),
      // Only a passphrase store has these: how its key is derived (the salt is not shown).
      passphrase:
        header.kdf === undefined
          ? null
          : { kdf: header.kdf.algorithm, log2N: header.kdf.log2N, r: header.kdf.r, p: header.kdf.p },
      entries: null as number | null,
    }
    // The count needs the key. Without one given, the default key is tried quietly: a file
    // written with another key then shows "unknown" rather than an error.
    const choice = await chooseSecret(ctx, false)
    let failure: unknown
    try {
      const store = await AnyStore.open({
        file,
        ...choice.secret,
        acceptedKeys: acceptedKeys(ctx),
        lockTimeoutMs: lockTimeout(ctx),
        lock: lockMode(ctx),
      })
      try {
        info.entries = await store.size()
      } finally {
        await store.close()
      }
    } catch (error) {
      if (choice.explicit || !(error instanceof WrongKeyError)) failure = error
    }
    const entriesText =
      info.entries === null
        ? failure === undefined
          ? 'unknown (needs the key: --key-file or ANYSTORE_KEY)'
          : 'unknown (see the error below)'
        : String(info.entries)
    const text = ctx.options.json
      ? `${JSON.stringify(info, null, 2)}\n`
      : [
          `file:            ${info.file}`,
          `size:            ${info.size} bytes`,
          `format version:  ${info.formatVersion}`,
          `flags:           ${info.flags}${compressed ? ' (deflate)' : ''}`,
          `cipher:          ${info.cipher} (${info.keyBytes}-byte key)`,
          `last commit:     ${info.lastCommit}`,
          ...(header.storeId === undefined
            ? []
            : [`store id:        ${info.storeId}`, `commit number:   ${header.counter}`]),
          ...(header.kdf === undefined
            ? []
            : [
                `passphrase:      scrypt, N = 2^${header.kdf.log2N}, r = ${header.kdf.r}, p = ${header.kdf.p}`,
              ]),
          `entries:         ${entriesText}`,
          '',
        ].join('\n')
    await write(ctx.stdout, text)
    if (failure !== undefined) throw failure
  },

  async verify(ctx) {
    await withStore(ctx, { mustExist: true }, async (store, file) => {
      const entries = await decodeAll(file, store)
      if (store.backendKind === 'redis') {
        await write(ctx.stdout, `ok: ${entries.length} entries\n`)
        return
      }
      const { header } = readFileHeader(file)
      await write(
        ctx.stdout,
        `ok: ${entries.length} entries, format version ${header.version}, ${isDeflated(header) ? 'deflate' : 'not compressed'}\n`,
      )
    })
  },
}
