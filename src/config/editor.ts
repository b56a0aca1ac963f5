import { spawn } from 'node:child_process'
import {
  closeSync,
  constants,
  fstatSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { encodeValue } from '../format/codec.js'
import {
  type AnyStoreError,
  EditAbortedError,
  InvalidJsonError,
  NotATerminalError,
  SchemaValidationError,
  UnsupportedValueError,
} from '../store/errors.js'
import { checkOptionNames, keyringOption } from '../store/options.js'
import { validateWithSchema } from './schema.js'
import {
  type StashOptions,
  stashWithKeyRing,
  type UnstashOptions,
  unstashWithKeyRing,
} from './stash.js'
import { parseTagged, stringifyTagged } from '../format/tagged-json.js'
import { chooseEditor } from './choose-editor.js'

export { chooseEditor }

/** Errors that mean "the text the user wrote is not acceptable": shown, then the user may edit again. */
function isRejection(error: unknown): error is AnyStoreError {
  return (
    error instanceof InvalidJsonError ||
    error instanceof SchemaValidationError ||
    error instanceof UnsupportedValueError
  )
}

const INTERRUPTS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

/**
 * While the editor or the prompt runs, a signal must not kill this process: the temp file has
 * to be removed first. The phase running decides what a signal means (`onInterrupt`); one that
 * arrives between phases is noted in `signal`, and the edit then stops.
 */
class InterruptWatch {
  signal: NodeJS.Signals | undefined
  onInterrupt: ((signal: NodeJS.Signals) => void) | undefined
  #onSignal = (signal: NodeJS.Signals) => {
    if (this.onInterrupt === undefined) this.signal ??= signal
    else this.onInterrupt(signal)
  }

  start(): void {
    for (const signal of INTERRUPTS) process.on(signal, this.#onSignal)
  }

  stop(): void {
    for (const signal of INTERRUPTS) process.off(signal, this.#onSignal)
  }
}

function runEditor(editor: string, file: string, watch: InterruptWatch): Promise<void> {
  return new Promise((resolve, reject) => {
    // Through the shell, as git does, so `$EDITOR` may carry arguments ("code --wait").
    const child = spawn('sh', ['-c', `${editor} "$1"`, 'anystore-edit', file], { stdio: 'inherit' })
    watch.onInterrupt = (signal) => {
      // Ctrl-C reaches the editor through the terminal, and the editor decides: vim uses it to
      // leave insert mode, so only an editor that exits on it (status or signal) aborts.
      if (signal === 'SIGINT') return
      watch.signal ??= signal
      child.kill(signal)
    }
    child.once('error', (cause) =>
      reject(new EditAbortedError(`the editor could not be started (${cause.message})`)),
    )
    child.once('exit', (code, signal) => {
      watch.onInterrupt = undefined
      if (watch.signal !== undefined) reject(new EditAbortedError(`interrupted by ${watch.signal}`))
      else if (signal !== null) reject(new EditAbortedError(`the editor was killed by ${signal}`))
      else if (code !== 0) reject(new EditAbortedError(`the editor exited with status ${code}`))
      else resolve()
    })
  })
}

/** Asks `Edit again? [Y/n]` until the answer is yes or no; Ctrl-C, a signal or end of input mean no. */
async function askEditAgain(watch: InterruptWatch): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true })
  try {
    return await new Promise<boolean>((resolve) => {
      const ask = () => {
        rl.question('Edit again? [Y/n] ', (answer) => {
          const a = answer.trim().toLowerCase()
          if (a === '' || a === 'y' || a === 'yes') resolve(true)
          else if (a === 'n' || a === 'no') resolve(false)
          else ask()
        })
      }
      // In raw mode Ctrl-C is a key, not a signal: readline reports it as 'SIGINT'.
      rl.once('SIGINT', () => resolve(false))
      rl.once('close', () => resolve(false))
      watch.onInterrupt = (signal) => {
        watch.signal ??= signal
        resolve(false)
      }
      if (watch.signal === undefined) ask()
      else resolve(false)
    })
  } finally {
    watch.onInterrupt = undefined
    rl.close()
  }
}

/** O_NOFOLLOW is 0 where the platform has none (Windows). */
const NOFOLLOW = constants.O_NOFOLLOW ?? 0

/** Creates the temp file: a new name (O_EXCL), never through a link, private to us. */
function writeNewFile(file: string, text: string): void {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | NOFOLLOW
  const fd = openSync(file, flags, 0o600)
  try {
    writeFileSync(fd, text)
  } finally {
    closeSync(fd)
  }
}

/**
 * Reads the temp file back, refusing what the store did not put there: a link at its name (the
 * private directory makes that unlikely, but following one would save some other file's
 * content into the store) or a file that is not a regular file of our own.
 */
function readOwnFile(file: string): string {
  let fd: number
  try {
    fd = openSync(file, constants.O_RDONLY | NOFOLLOW)
  } catch (error) {
    if ((error as { code?: string }).code !== 'ELOOP') throw error
    throw new EditAbortedError(`the edited file ${file} was replaced by a symbolic link`)
  }
  try {
    const stats = fstatSync(fd)
    const euid = process.geteuid?.()
    if (!stats.isFile() || (euid !== undefined && stats.uid !== euid)) {
      throw new EditAbortedError(
        `the edited file ${file} was replaced by something other than a regular file of ours`,
      )
    }
    return readFileSync(fd, 'utf8')
  } finally {
    closeSync(fd)
  }
}

export interface EditTextOptions {
  /** The editor command; `$VISUAL` and `$EDITOR` take precedence. */
  editor?: string | undefined
  /** The temp file's name (its extension lets the editor pick a syntax). */
  fileName?: string | undefined
}

/**
 * Lets the user edit `text` in their editor until `accept` takes the result. The text lives in
 * a private temp file (directory 0700, file 0600) that is removed whatever happens. `accept`
 * rejecting with InvalidJsonError, SchemaValidationError or UnsupportedValueError shows the
 * error and asks to edit again; anything else it throws ends the edit. Resolves to what
 * `accept` returned and whether the text changed; throws EditAbortedError when nothing is to
 * be saved, NotATerminalError when stdin is not a terminal.
 */
export async function editText<T>(
  text: string,
  accept: (edited: string) => Promise<T> | T,
  options: EditTextOptions = {},
): Promise<{ value: T; changed: boolean }> {
  if (!process.stdin.isTTY) throw new NotATerminalError()
  const editor = chooseEditor(options.editor)
  const dir = mkdtempSync(join(tmpdir(), 'anystore-edit-'))
  const watch = new InterruptWatch()
  watch.start()
  try {
    const file = join(dir, options.fileName ?? 'thing.json')
    writeNewFile(file, text)
    for (;;) {
      if (watch.signal !== undefined) throw new EditAbortedError(`interrupted by ${watch.signal}`)
      await runEditor(editor, file, watch)
      const edited = readOwnFile(file)
      try {
        return { value: await accept(edited), changed: edited !== text }
      } catch (error) {
        if (!isRejection(error)) throw error
        process.stderr.write(`${error.message}\n`)
      }
      if (!(await askEditAgain(watch))) {
        throw new EditAbortedError(
          watch.signal === undefined ? 'editing was not resumed' : `interrupted by ${watch.signal}`,
        )
      }
    }
  } finally {
    watch.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

export interface EditThingOptions<T>
  extends Omit<UnstashOptions<T>, 'key'>,
    Pick<StashOptions<T>, 'writer' | 'lock' | 'lockTimeoutMs'> {
  key: StashOptions<T>['key']
  /** The editor command; `$VISUAL` and `$EDITOR` take precedence. @default vim, vi or nano */
  editor?: string
}

/**
 * Opens the thing stored under `key` (or `defaults`) in the user's editor as JSON (tagged
 * form for non-JSON types), validates the result with `schema` when given, and stores it
 * back to the file and/or `writer`. Resolves to the saved thing.
 */
export async function editThing<T>(options: EditThingOptions<T>): Promise<T> {
  const writer = (options as Partial<EditThingOptions<T>> | undefined)?.writer
  let handedOver = false
  try {
    checkOptionNames(options, 'editThing')
    // Resolved once, and the one keyring used for the read and the write below: they see the
    // keys the caller gave (an omitted key stays the public default rather than `undefined`).
    const keyring = keyringOption(options)
    const { schema } = options
    // Only what unstash() takes: the writer, the schema and the editor are editThing's own.
    // Copied and deleted rather than listed, so an option the caller left out stays absent.
    const location: Partial<EditThingOptions<T>> = { ...options }
    delete location.writer
    delete location.schema
    delete location.editor
    delete location.lock
    delete location.lockTimeoutMs
    if (!process.stdin.isTTY) throw new NotATerminalError()
    delete location.encryptionKey
    delete location.acceptedKeys
    delete location.passphrase
    const current = await unstashWithKeyRing<T>({ ...location, key: options.key }, keyring)
    const text = `${stringifyTagged(current, 2)}\n`
    const { value, changed } = await editText(
      text,
      async (edited) => {
        const parsed = parseTagged(edited, 'the edited file')
        const result =
          schema === undefined ? (parsed as T) : await validateWithSchema(schema, parsed)
        encodeValue(result)
        return result
      },
      { editor: options.editor },
    )
    // Read from the file and left as it was: nothing to commit.
    const saveToFile = changed || options.reader !== undefined
    if (!saveToFile && writer === undefined) return value
    handedOver = true
    await stashWithKeyRing(
      {
        file: saveToFile ? options.file : undefined,
        name: saveToFile ? options.name : undefined,
        writer,
        key: options.key,
        thing: value,
        compress: options.compress,
        lock: options.lock,
        lockTimeoutMs: options.lockTimeoutMs,
      },
      keyring,
    )
    return value
  } finally {
    if (!handedOver) writer?.destroy()
  }
}
