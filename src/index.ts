export { AnyStore } from './anystore.js'
export type {
  Backend,
  BackendTransaction,
  BackendWatcher,
  Change,
  ChangeResult,
  CommitOutcome,
  EntryChange,
  EntryReader,
  KeyQuery,
  MaybePromise,
} from './backends/backend.js'
export { MemoryBackend } from './backends/memory.js'
export type { Entry } from './format/payload.js'
export { DEFAULT_ENCRYPTION_KEY, newKey } from './crypto.js'
export { chooseEditor } from './config/choose-editor.js'
export { type EditThingOptions, editThing } from './config/edit-thing.js'
export {
  AnyStoreError,
  type AnyStoreErrorCode,
  BackendUnavailableError,
  CorruptFileError,
  EditAbortedError,
  FileTooLargeError,
  ForeignDataError,
  InvalidJsonError,
  InvalidKeyError,
  InvalidOptionError,
  InvalidPathError,
  LockCompromisedError,
  LockModeMismatchError,
  LockTimeoutError,
  NotAnyStoreFileError,
  NotATerminalError,
  ReadOnlyError,
  ReentrantCallError,
  RollbackError,
  type SchemaIssue,
  SchemaValidationError,
  StoreClosedError,
  StoreFileNotFoundError,
  StoreReplacedError,
  ThingNotFoundError,
  TransactionConflictError,
  UnsupportedFormatError,
  UnsupportedKeyError,
  UnsupportedValueError,
  WrongKeyError,
} from './store/errors.js'
export { readFileHeader } from './format/file-info.js'
export type { AnyStoreOptions, LockMode, SyncMode, SyncPolicy } from './store/options.js'
export { DEFAULT_OPTIONS } from './store/options.js'
export { type RekeyOptions, rekey } from './maintenance/rekey.js'
export { type RestoreOptions, restore } from './maintenance/restore.js'
export type { StandardSchemaV1 } from './config/schema.js'
export {
  DEFAULT_STASH_FILE_NAME,
  defaultStashFile,
  type StashOptions,
  stash,
  type ThingLocation,
  type UnstashOptions,
  unstash,
} from './config/stash.js'
export { fromTagged, parseTagged, stringifyTagged, toTagged } from './format/tagged-json.js'
export type { SetOptions, StoreKey, Transaction } from './store/types.js'
export type {
  ChangeStream,
  KeyAdded,
  KeyChanged,
  KeyDeleted,
  StoreChange,
  Watcher,
  WatchOptions,
} from './store/watch.js'
