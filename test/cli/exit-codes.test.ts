import { describe, expect, expectTypeOf, it } from 'vitest'
import { UsageError } from '../../src/cli/commands.js'
import {
  EXIT_CODES,
  type ExitCodeName,
  type ExitCodeTable,
  exitCodeFor,
  type GeneralExitCodeName,
} from '../../src/cli/exit-codes.js'
import { CliKeyError } from '../../src/cli/messages.js'
import * as api from '../../src/index.js'
import { type AnyStoreErrorCode, ERROR_CODES } from '../../src/store/errors.js'

/**
 * The published statuses, written out so that renumbering one fails here; a new error code gets
 * the next free number below 128 (the statuses above are taken by signals).
 */
const PUBLISHED = {
  OK: 0,
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
  INTERRUPTED: 130,
} as const

const GENERAL: readonly GeneralExitCodeName[] = ['OK', 'ERROR', 'USAGE', 'INTERRUPTED']

describe('EXIT_CODES', () => {
  it('keeps every published number', () => {
    expect({ ...EXIT_CODES }).toEqual(PUBLISHED)
    expect(Object.isFrozen(EXIT_CODES)).toBe(true)
  })

  it('has a status for every error code, and no other names', () => {
    const names = Object.keys(EXIT_CODES)
    expect(names.filter((name) => !GENERAL.includes(name as GeneralExitCodeName)).sort()).toEqual(
      [...ERROR_CODES].sort(),
    )
    for (const name of GENERAL) expect(names).toContain(name)
  })

  it('gives each name its own status, a valid exit status', () => {
    const statuses = Object.values(EXIT_CODES)
    expect(new Set(statuses).size).toBe(statuses.length)
    for (const status of statuses) {
      expect(Number.isInteger(status)).toBe(true)
      expect(status).toBeGreaterThanOrEqual(0)
      expect(status).toBeLessThanOrEqual(255)
    }
  })

  it('is typed as exactly the error codes plus the general names', () => {
    expectTypeOf<ExitCodeName>().toEqualTypeOf<AnyStoreErrorCode | GeneralExitCodeName>()
    expectTypeOf(EXIT_CODES).toExtend<ExitCodeTable>()
  })

  it('a table without a status for some error code does not compile', () => {
    const { ERR_ANYSTORE_CONFLICT, ...missingOne } = EXIT_CODES
    // @ts-expect-error ERR_ANYSTORE_CONFLICT has no exit status
    const incomplete = missingOne satisfies ExitCodeTable
    const misspelt = {
      ...EXIT_CODES,
      // @ts-expect-error not an error code
      ERR_ANYSTORE_STORE_CLOSED: 28,
    } satisfies ExitCodeTable
    expect(Object.keys(incomplete)).not.toContain('ERR_ANYSTORE_CONFLICT')
    expect({ ERR_ANYSTORE_CONFLICT, misspelt: misspelt.ERR_ANYSTORE_STORE_CLOSED }).toEqual({
      ERR_ANYSTORE_CONFLICT: 27,
      misspelt: 28,
    })
  })
})

describe('exitCodeFor', () => {
  it('maps every exported error class to the status of its code, never to ERROR', () => {
    const classes = Object.entries(api).filter(
      ([name, value]) =>
        typeof value === 'function' &&
        value.prototype instanceof api.AnyStoreError &&
        name !== 'AnyStoreError',
    )
    expect(classes.length).toBe(ERROR_CODES.length)
    for (const [name, value] of classes) {
      const error = Reflect.construct(value as new (...args: unknown[]) => api.AnyStoreError, [
        'x',
        'y',
        'z',
      ])
      expect(exitCodeFor(error), name).toBe(EXIT_CODES[error.code])
      expect(exitCodeFor(error), name).not.toBe(EXIT_CODES.ERROR)
    }
  })

  it('maps the errors the CLI raises itself', () => {
    expect(exitCodeFor(new UsageError('bad'))).toBe(EXIT_CODES.USAGE)
    const invalid = new api.InvalidKeyError('got 7 bytes')
    expect(exitCodeFor(new CliKeyError('--key-file k', invalid))).toBe(
      EXIT_CODES.ERR_ANYSTORE_INVALID_KEY,
    )
  })

  it('maps anything else to ERROR', () => {
    const system = Object.assign(new Error('no space'), { code: 'ENOSPC' })
    for (const thrown of [system, new Error('plain'), 'text', null, undefined, { code: 7 }])
      expect(exitCodeFor(thrown)).toBe(EXIT_CODES.ERROR)
    expect(exitCodeFor({ code: 'toString' })).toBe(EXIT_CODES.ERROR)
  })
})
