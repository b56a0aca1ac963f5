import { join } from 'node:path'
import { AnyStore, newKey } from '../../src/index.js'
import { tempDir } from '../helpers.js'
import { describeConformance } from './suite.js'

describeConformance(
  'file',
  {
    create() {
      const file = join(tempDir(), 'store.db')
      // Not the default key: the wrong-key tests need a key that another one is not.
      const encryptionKey = newKey()
      return {
        open: () => AnyStore.open({ file, encryptionKey }),
        openWithWrongKey: () => AnyStore.open({ file, encryptionKey: newKey() }),
        openReadOnly: () => AnyStore.open({ file, encryptionKey, readOnly: true }),
        processOptions: { file, encryptionKey },
      }
    },
  },
  {
    persistent: true,
    wrongKey: true,
    multiProcess: true,
    sharedInstances: true,
    exclusive: true,
    readOnly: true,
    events: true,
  },
)
