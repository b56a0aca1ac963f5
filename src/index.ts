export { AnyStore } from './anystore.js'
export { DEFAULT_ENCRYPTION_KEY, newKey } from './crypto.js'
export { chooseEditor, type EditThingOptions, editThing } from './editor.js'
export {
  AnyStoreError,
  CorruptFileError,
  EditAbortedError,
  FileTooLargeError,
  InvalidJsonError,
  InvalidKeyError,
  InvalidOptionError,
  InvalidPathError,
  LockCompromisedError,
  LockModeMismatchError,
  LockTimeoutError,
  NotAnyStoreFileError,
  NotATerminalError,
  ReentrantCallError,
  RollbackError,
  type SchemaIssue,
  SchemaValidationError,
  StoreClosedError,
  StoreFileNotFoundError,
  StoreReplacedError,
  ThingNotFoundError,
  UnsupportedFormatError,
  UnsupportedKeyError,
  UnsupportedValueError,
  WrongKeyError,
} from './errors.js'
export { readFileHeader } from './file-info.js'
export type { AnyStoreOptions, LockMode, SyncMode } from './options.js'
export { DEFAULT_OPTIONS } from './options.js'
export { type RekeyOptions, rekey } from './rekey.js'
export { type RestoreOptions, restore } from './restore.js'
export type { StandardSchemaV1 } from './schema.js'
export {
  DEFAULT_STASH_FILE_NAME,
  defaultStashFile,
  type StashOptions,
  stash,
  type ThingLocation,
  type UnstashOptions,
  unstash,
} from './stash.js'
export { fromTagged, parseTagged, stringifyTagged, toTagged } from './tagged-json.js'
export type { StoreKey, Transaction } from './types.js'
