import { AnyStore, MemoryBackend } from '../../src/index.js'
import { describeConformance } from './suite.js'

describeConformance(
  'memory',
  {
    create() {
      let opened = false
      return {
        async open() {
          // Each AnyStore.open() without a file is a store of its own: there is no second
          // instance of one, and nothing to open again.
          if (opened) throw new Error('an in-memory store has exactly one instance')
          opened = true
          return AnyStore.open({ persist: false })
        },
      }
    },
  },
  {
    persistent: false,
    wrongKey: false,
    multiProcess: false,
    sharedInstances: false,
    exclusive: true,
    readOnly: false,
    events: true,
  },
)

describeConformance(
  'memory, one MemoryBackend shared by several instances',
  {
    create() {
      // The store never closes a backend it was given, so the entries outlive every instance.
      const backend = new MemoryBackend()
      return {
        open: () => AnyStore.open({ backend }),
        storedCount: async () => [...backend.snapshot()].length,
      }
    },
  },
  {
    persistent: true,
    wrongKey: false,
    multiProcess: false,
    sharedInstances: true,
    exclusive: true,
    readOnly: false,
    storedCount: true,
    events: true,
  },
)
