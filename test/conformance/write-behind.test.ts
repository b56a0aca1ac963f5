import { join } from 'node:path'
import { AnyStore, MemoryBackend, newKey } from '../../src/index.js'
import { tempDir } from '../helpers.js'
import { OptimisticBackend, OptimisticServer } from './optimistic-backend.js'
import { type Capabilities, describeConformance } from './suite.js'

/**
 * The whole suite again with `sync: { everyMs }` on each kind of backend: one instance must
 * behave exactly as with a commit per write (read-your-writes, Map order, delete results,
 * transactions, errors), whether the backend's reads are synchronous (file, memory) or not
 * (optimistic). What differs on purpose is what other instances see: a write reaches them with
 * its commit, up to everyMs later. The tests that read one instance's write from another right
 * after it resolved do not apply, and are skipped (test/store/write-behind.test.ts checks what
 * other instances do see, and when).
 */
const sync = { everyMs: 20 }
const deferred = 'by design: other instances see a write-behind change only once it is committed'
const crossInstance = Object.fromEntries(
  [
    "a write by one instance is seen by the other's next read",
    'both instances see the same Map order',
    'run() in one instance starts from what the other committed',
    'concurrent set() calls from two instances all land',
    'two instances agree on when an entry expires',
    'an instance that never read the expired entry drops it at its commit',
  ].map((title) => [title, deferred]),
)
const readOnlyInstance = Object.fromEntries(
  [
    'reads what the store holds and sees later commits of a writer',
    'refuses every write with ReadOnlyError, and nothing changes',
  ].map((title) => [title, deferred]),
)

const file: Capabilities = {
  persistent: true,
  wrongKey: true,
  multiProcess: true,
  sharedInstances: true,
  exclusive: true,
  readOnly: true,
  // Events report commits, and write-behind commits later and in batches: the group's timing
  // and grouping do not apply here.
  events: false,
}

describeConformance(
  'file, write-behind',
  {
    create() {
      const path = join(tempDir(), 'store.db')
      const encryptionKey = newKey()
      return {
        open: () => AnyStore.open({ file: path, encryptionKey, sync }),
        openWithWrongKey: () => AnyStore.open({ file: path, encryptionKey: newKey(), sync }),
        openReadOnly: () => AnyStore.open({ file: path, encryptionKey, readOnly: true, sync }),
        processOptions: { file: path, encryptionKey, sync },
      }
    },
  },
  file,
  {
    notApplicable: {
      ...crossInstance,
      ...readOnlyInstance,
      "a child reads the parent's write, and the parent's next read sees the child's": deferred,
      'another process sees an entry until the moment it expires, and not after': deferred,
    },
  },
)

describeConformance(
  'memory, one MemoryBackend shared, write-behind',
  {
    create() {
      const backend = new MemoryBackend()
      return { open: () => AnyStore.open({ backend, sync }) }
    },
  },
  { ...file, wrongKey: false, multiProcess: false, readOnly: false },
  { notApplicable: crossInstance },
)

let seed = 0

describeConformance(
  'optimistic, write-behind',
  {
    create() {
      const server = new OptimisticServer({ seed: ++seed })
      return {
        open: () => AnyStore.open({ backend: new OptimisticBackend(server), sync }),
        openReadOnly: () =>
          AnyStore.open({ backend: new OptimisticBackend(server, { readOnly: true }), sync }),
      }
    },
  },
  { ...file, wrongKey: false, multiProcess: false, exclusive: false },
  { notApplicable: { ...crossInstance, ...readOnlyInstance } },
)
