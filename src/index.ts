export { AnyStore } from './anystore.js'
export { DEFAULT_ENCRYPTION_KEY, newKey } from './crypto.js'
export {
  AnyStoreError,
  CorruptFileError,
  FileTooLargeError,
  InvalidKeyError,
  InvalidOptionError,
  InvalidPathError,
  LockCompromisedError,
  LockTimeoutError,
  NotAnyStoreFileError,
  ReentrantCallError,
  StoreClosedError,
  UnsupportedFormatError,
  UnsupportedKeyError,
  UnsupportedValueError,
  WrongKeyError,
} from './errors.js'
export type { FileSystem } from './fsio.js'
export type { AnyStoreOptions, LockMode, SyncMode } from './options.js'
export { DEFAULT_OPTIONS } from './options.js'
export type { StoreKey, Transaction } from './types.js'
