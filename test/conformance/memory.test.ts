import { AnyStore } from '../../src/index.js'
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
  { persistent: false, wrongKey: false, multiProcess: false, sharedInstances: false, exclusive: true },
)
