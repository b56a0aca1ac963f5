import { randomBytes } from 'node:crypto'
import { createClient } from 'redis'
import { onTestFinished } from 'vitest'
import { COMMIT, pack } from '../../../src/backends/redis/scripts.js'
import { AnyStore, type AnyStoreOptions, newKey } from '../../../src/index.js'
import type { RedisServer } from './server.js'

/** What the Redis tests share: a fresh store name, its keys, a raw client, a store. */

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export const freshName = () => `test:${randomBytes(6).toString('hex')}`

/** The keys of the store `name` (src/backends/redis/layout.ts), spelt out as the server sees them. */
export const keysOf = (name: string) => {
  const prefix = `anystore:{${name}}:`
  return {
    meta: `${prefix}meta`,
    entries: `${prefix}entries`,
    order: `${prefix}order`,
    expiry: `${prefix}expiry`,
    channel: `${prefix}changes`,
    commits: `${prefix}commits`,
    commitsOther: `${prefix}commits-2`,
    all: ['meta', 'entries', 'order', 'commits', 'commits-2', 'expiry'].map(
      (k) => `${prefix}${k}`,
    ),
  }
}

/**
 * The fields of the entries hash `entries` that hold entries (16 bytes each), as Buffers: the
 * hash also holds the store id and counters under short fields (`id`, `seq`, `ins`, `x`).
 */
export async function entryFields(client: { hKeys(key: string): Promise<unknown> }, entries: string): Promise<Buffer[]> {
  const raw = (client as unknown as { withTypeMapping(m: object): typeof client }).withTypeMapping({ [36]: Buffer })
  const fields = (await raw.hKeys(entries)) as Buffer[]
  return fields.filter((field) => field.length === 16)
}

/** A raw node-redis client on `server`, closed when the test ends. */
export async function admin(server: RedisServer) {
  const client = createClient({ url: server.url })
  await client.connect()
  onTestFinished(() => client.destroy())
  return client
}

/** Opens a store on `server`; closed when the test ends. */
export async function open(
  server: RedisServer,
  redis: Partial<NonNullable<AnyStoreOptions['redis']>> = {},
  options: Omit<AnyStoreOptions, 'redis'> = {},
) {
  const secret = 'passphrase' in options || 'encryptionKey' in options ? {} : { encryptionKey: newKey() }
  const store = await AnyStore.open({
    redis: { url: server.url, name: freshName(), ...redis },
    ...secret,
    ...options,
  })
  onTestFinished(() => store.close())
  return store
}

type AdminClient = Awaited<ReturnType<typeof admin>>

/** How many commit ids the store `name` has recorded (both generations of the record). */
export async function recordedCommits(client: AdminClient, name: string): Promise<number> {
  const k = keysOf(name)
  return (await client.hLen(k.commits)) + (await client.hLen(k.commitsOther))
}

/**
 * The commit script of the store `name`, called directly: `commit(commitId, changes,
 * sentBefore, reads, conditions)` with the changes and reads as the script takes them (see
 * COMMIT) answers the script's reply, each part as text. The conditions go as the store sends
 * them ('' when there is nothing in them), or always packed with `conditions: 'packed'`.
 */
export async function commitScript(client: AdminClient, name: string) {
  const k = keysOf(name)
  const raw = client.withTypeMapping({ [36]: Buffer } as const)
  const id = (await client.hGet(k.meta, 'id'))!
  return async (
    commitId: string,
    changes: (string | Buffer)[],
    sentBefore: boolean,
    reads: (string | Buffer)[] = [],
    conditions: 'as sent' | 'packed' = 'as sent',
  ): Promise<string[]> => {
    const packed = sentBefore || reads.length > 0 || conditions === 'packed'
    const reply = (await raw.evalSha(COMMIT.sha, {
      keys: k.all,
      arguments: [
        id,
        commitId,
        String(Date.now()),
        packed ? pack([sentBefore ? '1' : '0', '', '', ...reads]) : '',
        '',
        ...changes,
      ],
    })) as unknown as Buffer[]
    return reply.map(String)
  }
}
