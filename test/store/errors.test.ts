import { describe, expect, expectTypeOf, it } from 'vitest'
import * as api from '../../src/index.js'
import { type AnyStoreErrorCode, ERROR_CODES } from '../../src/store/errors.js'

type Api = typeof api
type ErrorClassName = Exclude<
  {
    [N in keyof Api]: Api[N] extends abstract new (...args: never[]) => api.AnyStoreError ? N : never
  }[keyof Api],
  'AnyStoreError'
>
type CodeOf<N extends ErrorClassName> = InstanceType<Api[N]>['code']
type IsUnion<T, U = T> = T extends unknown ? ([U] extends [T] ? false : true) : never

/**
 * Typed against each class's declared `code`, and compared below with what its constructor
 * passes to super(): the two are written separately in each class, and only this ties them.
 * The mapped type also makes leaving out an exported error class a compile error.
 */
const CODE_OF: { readonly [N in ErrorClassName]: CodeOf<N> } = {
  CorruptFileError: 'ERR_ANYSTORE_CORRUPT_FILE',
  EditAbortedError: 'ERR_ANYSTORE_EDIT_ABORTED',
  BackendUnavailableError: 'ERR_ANYSTORE_UNAVAILABLE',
  FileTooLargeError: 'ERR_ANYSTORE_FILE_TOO_LARGE',
  ForeignDataError: 'ERR_ANYSTORE_FOREIGN_DATA',
  InvalidJsonError: 'ERR_ANYSTORE_INVALID_JSON',
  InvalidKeyError: 'ERR_ANYSTORE_INVALID_KEY',
  InvalidOptionError: 'ERR_ANYSTORE_INVALID_OPTION',
  InvalidPathError: 'ERR_ANYSTORE_INVALID_PATH',
  LockCompromisedError: 'ERR_ANYSTORE_LOCK_COMPROMISED',
  LockModeMismatchError: 'ERR_ANYSTORE_LOCK_MODE_MISMATCH',
  LockTimeoutError: 'ERR_ANYSTORE_LOCK_TIMEOUT',
  NotAnyStoreFileError: 'ERR_ANYSTORE_NOT_ANYSTORE_FILE',
  NotATerminalError: 'ERR_ANYSTORE_NOT_A_TERMINAL',
  ReadOnlyError: 'ERR_ANYSTORE_READ_ONLY',
  ReentrantCallError: 'ERR_ANYSTORE_REENTRANT',
  RollbackError: 'ERR_ANYSTORE_ROLLBACK',
  SchemaValidationError: 'ERR_ANYSTORE_SCHEMA_VALIDATION',
  StoreClosedError: 'ERR_ANYSTORE_CLOSED',
  StoreFileNotFoundError: 'ERR_ANYSTORE_FILE_NOT_FOUND',
  StoreReplacedError: 'ERR_ANYSTORE_STORE_REPLACED',
  ThingNotFoundError: 'ERR_ANYSTORE_THING_NOT_FOUND',
  TransactionConflictError: 'ERR_ANYSTORE_CONFLICT',
  UnsupportedFormatError: 'ERR_ANYSTORE_UNSUPPORTED_FORMAT',
  UnsupportedKeyError: 'ERR_ANYSTORE_UNSUPPORTED_KEY',
  UnsupportedValueError: 'ERR_ANYSTORE_UNSUPPORTED_VALUE',
  WrongKeyError: 'ERR_ANYSTORE_WRONG_KEY',
}

/** Every exported error class, found at run time, each built with placeholder arguments. */
type AnyErrorClass = new (...args: unknown[]) => api.AnyStoreError

function exportedErrors(): [string, AnyErrorClass, api.AnyStoreError][] {
  return Object.entries(api)
    .filter(
      ([name, value]) =>
        typeof value === 'function' &&
        value.prototype instanceof api.AnyStoreError &&
        name !== 'AnyStoreError',
    )
    .map(([name, value]) => {
      const ErrorClass = value as AnyErrorClass
      return [name, ErrorClass, Reflect.construct(ErrorClass, ['x', 'y', 'z'])]
    })
}

describe('error codes', () => {
  it('are listed once each, and look alike', () => {
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length)
    for (const code of ERROR_CODES) expect(code).toMatch(/^ERR_ANYSTORE_[A-Z_]+$/)
    expect(Object.isFrozen(ERROR_CODES)).toBe(true)
  })

  it('every exported error class is in the table, and nothing else is', () => {
    const names = exportedErrors().map(([name]) => name)
    expect(names.sort()).toEqual(Object.keys(CODE_OF).sort())
  })

  it('each class sets the code it declares, as an own property, and keeps its class', () => {
    for (const [name, ErrorClass, error] of exportedErrors()) {
      expect(error.code, name).toBe(CODE_OF[name as ErrorClassName])
      expect(Object.hasOwn(error, 'code'), name).toBe(true)
      expect(error, name).toBeInstanceOf(ErrorClass)
      expect(error, name).toBeInstanceOf(api.AnyStoreError)
      expect(error, name).toBeInstanceOf(Error)
      expect(error.name).toBe(name)
    }
  })

  it('the classes and the code list cover each other, one class per code', () => {
    const codes = exportedErrors().map(([, , error]) => error.code)
    expect(new Set(codes).size).toBe(codes.length)
    expect([...codes].sort()).toEqual([...ERROR_CODES].sort())
  })

  it('the union is the list, and each class narrows `code` to one member of it', () => {
    expectTypeOf<api.AnyStoreErrorCode>().toEqualTypeOf<AnyStoreErrorCode>()
    expectTypeOf<AnyStoreErrorCode>().toEqualTypeOf<(typeof ERROR_CODES)[number]>()
    expectTypeOf<api.AnyStoreError['code']>().toEqualTypeOf<AnyStoreErrorCode>()
    expectTypeOf<CodeOf<ErrorClassName>>().toEqualTypeOf<AnyStoreErrorCode>()
    type NotOneCode = {
      [N in ErrorClassName]: IsUnion<CodeOf<N>> extends false ? never : N
    }[ErrorClassName]
    expectTypeOf<NotOneCode>().toEqualTypeOf<never>()
    expectTypeOf<api.ReadOnlyError['code']>().toEqualTypeOf<'ERR_ANYSTORE_READ_ONLY'>()
    expectTypeOf<api.TransactionConflictError['code']>().toEqualTypeOf<'ERR_ANYSTORE_CONFLICT'>()
  })

  it('narrowing by instanceof keeps the code typed', () => {
    const caught: unknown = new api.StoreClosedError()
    if (!(caught instanceof api.AnyStoreError)) throw new Error('not an AnyStoreError')
    expectTypeOf(caught.code).toEqualTypeOf<AnyStoreErrorCode>()
    // @ts-expect-error a code that does not exist cannot be compared with
    expect(caught.code === 'ERR_ANYSTORE_STORE_CLOSED').toBe(false)
    expect(caught.code === 'ERR_ANYSTORE_CLOSED').toBe(true)
  })

  it('the base class takes only a listed code', () => {
    // @ts-expect-error not in AnyStoreErrorCode
    const unlisted = new api.AnyStoreError('ERR_ANYSTORE_SOMETHING_NEW', 'message')
    expect(unlisted).toBeInstanceOf(api.AnyStoreError)
    expect(new api.AnyStoreError('ERR_ANYSTORE_CONFLICT', 'message').code).toBe(
      'ERR_ANYSTORE_CONFLICT',
    )
  })
})
