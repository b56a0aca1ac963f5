import { join } from 'node:path'
import { readStoreFile } from '../../src/format/store-file.js'
import { AnyStore, newKey } from '../../src/index.js'
import { keyringOption } from '../../src/store/options.js'
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
        // The records of the file itself, decrypted apart from any store.
        storedCount: async () =>
          readStoreFile(file, keyringOption({ encryptionKey }), Number.POSITIVE_INFINITY).entries.size,
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
    storedCount: true,
    events: true,
  },
)
