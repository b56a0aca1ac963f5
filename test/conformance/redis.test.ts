import { randomBytes } from 'node:crypto'
import { createClient, RESP_TYPES } from 'redis'
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
        // The suite checks what transactions see and commit, not how soon they get through.
        // Real round trips on a loaded machine (test files run in parallel) let a reader lose
        // more than the default ten times in a row to a writer that pauses 1 ms; and under four
        // processes incrementing one key without pause, about one run() in a thousand does
        // (measured). More attempts keep those tests about consistency.
        const maxRunAttempts = 1000
        return {
          open: () => AnyStore.open({ redis, encryptionKey, maxRunAttempts }),
          openWithWrongKey: () => AnyStore.open({ redis, encryptionKey: newKey() }),
          openReadOnly: () => AnyStore.open({ redis, encryptionKey, readOnly: true, maxRunAttempts }),
          processOptions: { redis, encryptionKey, maxRunAttempts },
          // The entries the server holds, expired ones still there included.
          storedCount: async () => {
            const client = createClient({ url })
            await client.connect()
            try {
              // Entry fields are 16 bytes; the store id and counters have short names.
              const entries = `anystore:{${redis.name}}:entries`
              const raw = client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer })
              return ((await raw.hKeys(entries)) as unknown as Buffer[]).filter((field) => field.length === 16).length
            } finally {
              client.destroy()
            }
          },
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
      storedCount: true,
      events: true,
    },
  )
}
