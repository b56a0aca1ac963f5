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
import { encodeValue } from '../codec.js'
import { DEFAULT_ENCRYPTION_KEY, FLAG_DEFLATE, newKey, parseKey } from '../crypto.js'
import { markDefaultKeyWarningGiven } from '../default-key-warning.js'
import { editText, editThing } from '../editor.js'
import {
  CorruptFileError,
  InvalidKeyError,
  StoreFileNotFoundError,
  ThingNotFoundError,
  WrongKeyError,
} from '../errors.js'
import { assertFileExists, readFileHeader } from '../file-info.js'
import { expandPath, type LockMode } from '../options.js'
import { ProgressBar } from '../progress.js'
import { rekey } from '../rekey.js'
import { restore } from '../restore.js'
import { needsEntriesForm, storeFromJson, storeJsonChunks } from '../store-json.js'
import { parseJson, parseTagged, stringifyTagged } from '../tagged-json.js'
import type { StoreKey } from '../types.js'
import { CliKeyError } from './messages.js'

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
}

interface KeyChoice {
  key: string
  /** Given with --key-file or ANYSTORE_KEY, not the default. */
  explicit: boolean
  /** Where the key came from, for messages: `--key-file app.key`, `$ANYSTORE_KEY`. */
  source: string
}

function readKeyFile(ctx: CommandContext, path: string, option: string): KeyChoice {
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
  return { key: text.trim(), explicit: true, source: `${option} ${path}` }
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
    return (readFileHeader(file).header.flags & FLAG_DEFLATE) !== 0
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
  const key = validKey(chooseKey(ctx, true))
  const compress = open.write ? ctx.options.compress === true || fileCompresses(file) : false
  const store = await AnyStore.open({
    file,
    encryptionKey: key,
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
    const file = expandPath(ctx.args[0]!)
    if (ctx.args[1] !== undefined) {
      const key = validKey(chooseKey(ctx, true))
      await editThing<unknown>({
        file,
        key: storeKey(ctx, ctx.args[1]),
        encryptionKey: key,
        acceptedKeys: acceptedKeys(ctx),
        compress: ctx.options.compress === true || fileCompresses(file),
        defaults: null,
        editor: ctx.options.editor as string | undefined,
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
    const newKeyFile = ctx.options['new-key-file']
    if (typeof newKeyFile !== 'string') throw new UsageError('rekey needs --new-key-file FILE')
    const newEncryptionKey = validKey(readKeyFile(ctx, newKeyFile, '--new-key-file'))
    const file = expandPath(ctx.args[0]!)
    const key = validKey(chooseKey(ctx, true))
    let progress: ProgressBar | undefined
    const { entries } = await rekey({
      file,
      encryptionKey: key,
      acceptedKeys: acceptedKeys(ctx),
      newEncryptionKey,
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
    const key = validKey(chooseKey(ctx, true))
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
      encryptionKey: key,
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
    const compressed = (header.flags & FLAG_DEFLATE) !== 0
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
      entries: null as number | null,
    }
    // The count needs the key. Without one given, the default key is tried quietly: a file
    // written with another key then shows "unknown" rather than an error.
    const choice = chooseKey(ctx, false)
    let failure: unknown
    try {
      const store = await AnyStore.open({
        file,
        encryptionKey: validKey(choice),
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
        `ok: ${entries.length} entries, format version ${header.version}, ${header.flags & FLAG_DEFLATE ? 'deflate' : 'not compressed'}\n`,
      )
    })
  },
}
