import type { AnyStoreErrorCode } from '../store/errors.js'

/** The exit statuses that no error class has: success, usage errors, other errors, Ctrl-C. */
export type GeneralExitCodeName = 'OK' | 'ERROR' | 'USAGE' | 'INTERRUPTED'

/**
 * What EXIT_CODES must hold: a status for every error code, so an error class added without
 * an exit status is a compile error here rather than a silent exit status 1.
 */
export type ExitCodeTable = Readonly<Record<GeneralExitCodeName | AnyStoreErrorCode, number>>

/**
 * The CLI's exit status for each error class, by error `code`. These numbers are part of the
 * public interface (the README lists them): never renumber, only append.
 */
export const EXIT_CODES = Object.freeze({
  OK: 0,
  /** Anything not listed below, including system errors (EACCES, ENOSPC, ...). */
  ERROR: 1,
  USAGE: 2,
  ERR_ANYSTORE_THING_NOT_FOUND: 3,
  ERR_ANYSTORE_FILE_NOT_FOUND: 4,
  ERR_ANYSTORE_WRONG_KEY: 5,
  ERR_ANYSTORE_CORRUPT_FILE: 6,
  ERR_ANYSTORE_NOT_ANYSTORE_FILE: 7,
  ERR_ANYSTORE_UNSUPPORTED_FORMAT: 8,
  ERR_ANYSTORE_INVALID_KEY: 9,
  ERR_ANYSTORE_LOCK_TIMEOUT: 10,
  ERR_ANYSTORE_LOCK_COMPROMISED: 11,
  ERR_ANYSTORE_UNSUPPORTED_VALUE: 12,
  ERR_ANYSTORE_INVALID_JSON: 13,
  ERR_ANYSTORE_SCHEMA_VALIDATION: 14,
  ERR_ANYSTORE_EDIT_ABORTED: 15,
  ERR_ANYSTORE_NOT_A_TERMINAL: 16,
  ERR_ANYSTORE_FILE_TOO_LARGE: 17,
  ERR_ANYSTORE_INVALID_PATH: 18,
  ERR_ANYSTORE_INVALID_OPTION: 19,
  ERR_ANYSTORE_UNSUPPORTED_KEY: 20,
  ERR_ANYSTORE_LOCK_MODE_MISMATCH: 21,
  ERR_ANYSTORE_STORE_REPLACED: 22,
  ERR_ANYSTORE_ROLLBACK: 23,
  ERR_ANYSTORE_CLOSED: 24,
  ERR_ANYSTORE_REENTRANT: 25,
  ERR_ANYSTORE_READ_ONLY: 26,
  ERR_ANYSTORE_CONFLICT: 27,
  ERR_ANYSTORE_FOREIGN_DATA: 28,
  ERR_ANYSTORE_UNAVAILABLE: 29,
  /** Stopped by Ctrl-C (128 + SIGINT), as shells report it. */
  INTERRUPTED: 130,
} satisfies ExitCodeTable)

export type ExitCodeName = keyof typeof EXIT_CODES

/** The exit status for an error thrown by a command. */
export function exitCodeFor(error: unknown): number {
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code === 'string' && Object.hasOwn(EXIT_CODES, code)) {
    return EXIT_CODES[code as ExitCodeName]
  }
  return EXIT_CODES.ERROR
}
