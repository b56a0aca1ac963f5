import { randomBytes } from 'node:crypto'
import { afterAll, describe, it } from 'vitest'
import { AnyStore, newKey } from '../../src/index.js'
import { type RedisServer, redisTestsEnabled, SKIP_MESSAGE, startRedis } from '../backends/redis/server.js'
import { describeConformance } from './suite.js'

// One server for the whole file; each test gets a store of its own under a fresh name.
const server: RedisServer | undefined = redisTestsEnabled ? await startRedis() : undefined
afterAll(async () => {
  await server?.stop()
})

if (server === undefined) {
  describe('redis: conformance', () => {
    it.skip(SKIP_MESSAGE, () => {})
  })
} else {
  const url = server.url
  describeConformance(
    'redis',
    {
      create() {
        const redis = { url, name: `conformance:${randomBytes(6).toString('hex')}` }
        // Not the default key: the wrong-key tests need a key that another one is not.
        const encryptionKey = newKey()
        return {
          open: () => AnyStore.open({ redis, encryptionKey }),
          openWithWrongKey: () => AnyStore.open({ redis, encryptionKey: newKey() }),
          openReadOnly: () => AnyStore.open({ redis, encryptionKey, readOnly: true }),
          // Each child starts its next transaction the moment its last one committed: under
          // four such writers on one key, about one run() in a thousand loses the race more
          // than the default ten times in a row (measured), so the children may try more often.
          processOptions: { redis, encryptionKey, maxRunAttempts: 1000 },
        }
      },
    },
    {
      persistent: true,
      wrongKey: true,
      multiProcess: true,
      sharedInstances: true,
      exclusive: false,
      readOnly: true,
    },
  )
}
