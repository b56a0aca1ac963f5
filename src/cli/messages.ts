import {
  AnyStoreError,
  FileTooLargeError,
  InvalidKeyError,
  InvalidOptionError,
  LockTimeoutError,
  NotATerminalError,
  ThingNotFoundError,
  WrongKeyError,
} from '../store/errors.js'

/**
 * A key given to the CLI (in --key-file, --new-key-file or $ANYSTORE_KEY) that is not a valid
 * key. Same code, so the same exit status, as the InvalidKeyError it wraps; the message says
 * where the key came from, which the library cannot know.
 */
export class CliKeyError extends AnyStoreError {
  constructor(source: string, cause: InvalidKeyError) {
    super(cause.code, keyMessage(source, cause.detail), { cause })
  }
}

/** A passphrase given to the CLI that is too short or empty; named by where it came from. */
export class CliPassphraseError extends AnyStoreError {
  constructor(source: string, cause: InvalidKeyError) {
    super(
      cause.code,
      `The passphrase from ${source} must be at least 8 bytes, ${cause.detail}: a passphrase is only as strong as it is long`,
      { cause },
    )
  }
}

/**
 * No store under the name a Redis URL gives: the same code, so the same exit status, as a store
 * file that does not exist.
 */
export class RedisStoreNotFoundError extends AnyStoreError {
  constructor(where: string) {
    super(
      'ERR_ANYSTORE_FILE_NOT_FOUND',
      `${where}: no store has this name on the server: check the URL and the name after '#' (set, import and copy create a store)`,
    )
  }
}

function keyMessage(source: string, detail: string): string {
  return `The key in ${source} must be base64 of 16, 24 or 32 bytes, ${detail}: \`anystore newkey\` makes one`
}

/** `text` as one shell word, quoted only when it needs to be, for commands shown to copy. */
function shellWord(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`
}

/** CLI flags for the library options whose InvalidOptionError can reach the command line. */
const OPTION_FLAGS: Record<string, string> = {
  editor: '--editor CMD',
}

/**
 * The text the CLI prints for an error. Library messages name API options and functions
 * (`lockTimeoutMs`, `defaults`, newKey()), which a shell user cannot act on; here the errors
 * that can reach the command line with such wording are rephrased from their fields to name
 * flags and commands instead. Codes, and so exit statuses, stay as they are.
 */
export function cliMessage(error: AnyStoreError): string {
  if (error instanceof InvalidKeyError) {
    // The CLI checks keys where it reads them (CliKeyError); this is the fallback.
    return keyMessage('--key-file FILE or $ANYSTORE_KEY', error.detail)
  }
  if (error instanceof WrongKeyError) {
    // The library's message names its options; here the flags that give the same secrets.
    if (error.needs === 'passphrase') {
      return `${error.file} was written with a passphrase, not with a key: pass --passphrase-file FILE or --passphrase ${error.untouched}`
    }
    if (error.needs === 'key') {
      return `${error.file} was written with a key, not with a passphrase: pass --key-file FILE or $ANYSTORE_KEY (or the key with --accepted-key-file) ${error.untouched}`
    }
    if (error.keysTried > 1) {
      return `${error.file} was written with none of the ${error.keysTried} keys given (--key-file or $ANYSTORE_KEY, --accepted-key-file): pass the key it was written with ${error.untouched}`
    }
    return error.message
  }
  if (error instanceof LockTimeoutError) {
    const holder = error.holderPid === undefined ? '' : ` (last taken by pid ${error.holderPid})`
    return `Could not lock ${error.lockPath} within ${error.timeoutMs} ms${holder}: another process holds it; raise --lock-timeout MS or find the holder`
  }
  if (error instanceof ThingNotFoundError) {
    return `Nothing is stored under the key ${JSON.stringify(error.key)} in ${error.where}: \`anystore keys ${shellWord(error.where)}\` lists the keys`
  }
  if (error instanceof FileTooLargeError) {
    // The CLI has no flag to raise the limit: larger files are refused, as hostile input may be.
    const what = error.inflated
      ? `holds ${error.size} compressed bytes that inflate to more than ${error.limit} bytes`
      : `is ${error.size} bytes`
    return `${error.file} ${what}, over the limit of ${error.limit} bytes that the anystore command opens (a guard against hostile files)`
  }
  if (error instanceof NotATerminalError) {
    return 'Editing needs an interactive terminal, but stdin is not a TTY: run it from a terminal, or use `anystore set` or `anystore import` instead'
  }
  if (error instanceof InvalidOptionError && error.option !== undefined) {
    // Such messages name the option once, as `name`: the flag takes its place.
    if (Object.hasOwn(OPTION_FLAGS, error.option)) {
      return error.message.replace(`\`${error.option}\``, OPTION_FLAGS[error.option]!)
    }
  }
  return error.message
}
