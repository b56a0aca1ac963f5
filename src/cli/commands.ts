import { once } from 'node:events'
import {
  closeSync,
  fstatSync,
  openSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs'
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
import { expandPath, type LockMode, passphraseOption } from '../store/options.js'
import { ProgressBar } from './progress.js'
import { rekey } from '../maintenance/rekey.js'
import { restore } from '../maintenance/restore.js'
import { needsEntriesForm, storeFromJson, storeJsonChunks } from './store-json.js'
import { parseJson, parseTagged, stringifyTagged } from '../format/tagged-json.js'
import type { StoreKey } from '../store/types.js'
import { CliKeyError, CliPassphraseError } from './messages.js'
import { promptHidden } from './prompt.js'

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
  fileOption: 'passphrase-file' | 'new-passphrase-file',
  promptOption: 'passphrase' | 'new-passphrase',
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
    if (promptOption === 'new-passphrase') {
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
): Promise<{ secret: SecretOption; explicit: boolean }> {
  const file = expandPath(ctx.args[0]!)
  const asked = ctx.options['passphrase-file'] !== undefined || ctx.options.passphrase === true
  if (asked && ctx.options['key-file'] !== undefined) {
    throw new UsageError('Pass either --key-file or a passphrase (--passphrase-file, --passphrase), not both')
  }
  const passphrase = await choosePassphrase(ctx, 'passphrase-file', 'passphrase', `Passphrase for ${file}`)
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
      'anystore: warning: no --key-file or ANYSTORE_KEY given: using the public default key, which only obfuscates the file\n',
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

interface OpenOptions {
  mustExist: boolean
  write?: boolean
}

async function withStore<T>(
  ctx: CommandContext,
  open: OpenOptions,
  fn: (store: AnyStore<unknown>, file: string) => Promise<T>,
): Promise<T> {
  const file = expandPath(ctx.args[0]!)
  if (open.mustExist) assertFileExists(file)
  const { secret } = await chooseSecret(ctx, true)
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
    const file = expandPath(ctx.args[0]!)
    if (ctx.args[1] !== undefined) {
      const { secret } = await chooseSecret(ctx, true)
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

  async info(ctx) {
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
      const { header } = readFileHeader(file)
      const entries = await decodeAll(file, store)
      await write(
        ctx.stdout,
        `ok: ${entries.length} entries, format version ${header.version}, ${isDeflated(header) ? 'deflate' : 'not compressed'}\n`,
      )
    })
  },
}
