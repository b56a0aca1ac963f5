import { createClient, createCluster } from 'redis'
import { describe, expect, it, onTestFinished } from 'vitest'
import { AnyStore, newKey } from '../../../src/index.js'
import { freshName, sleep } from './helpers.js'
import { freePort, redisTestsEnabled, SKIP_MESSAGE, startRedis } from './server.js'

// A store through a node-redis cluster client (createCluster()), on a cluster of one node that
// serves every slot: the client routes each command by its key, and a store's keys share one
// slot. The backend sends its commands through a cluster's typed methods, and through
// sendCommand() on a client of one server; this runs the first.

describe('redis backend: a cluster client', () => {
  if (!redisTestsEnabled) {
    it.skip(SKIP_MESSAGE, () => {})
    return
  }
  it('opens, reads, writes, lists and runs transactions through createCluster()', { timeout: 60_000 }, async () => {
    // The cluster bus on a port of its own: by default it is the port plus 10,000, past 65,535
    // for a high port.
    const busPort = await freePort()
    const server = await startRedis([
      '--cluster-enabled', 'yes',
      '--cluster-port', String(busPort),
      '--cluster-announce-ip', '127.0.0.1',
    ])
    onTestFinished(() => server.stop())
    const admin = createClient({ url: server.url })
    await admin.connect()
    onTestFinished(() => admin.destroy())
    await admin.sendCommand(['CLUSTER', 'ADDSLOTSRANGE', '0', '16383'])
    const deadline = Date.now() + 20_000
    while (!String(await admin.sendCommand(['CLUSTER', 'INFO'])).includes('cluster_state:ok')) {
      if (Date.now() > deadline) throw new Error('the one-node cluster never became ready')
      await sleep(50)
    }
    const cluster = createCluster({ rootNodes: [{ url: server.url }] })
    await cluster.connect()
    onTestFinished(() => cluster.destroy())
    const redis = { client: cluster, name: freshName() }
    const encryptionKey = newKey()
    const store = await AnyStore.open({ redis, encryptionKey })
    onTestFinished(() => store.close())
    await store.set('a', 1)
    await Promise.all([store.set('b', { x: 2 }), store.set('c', 'three', { ttlMs: 3_600_000 })])
    expect(await store.get('a')).toBe(1)
    expect(await store.get('b')).toEqual({ x: 2 })
    expect(await store.keys()).toEqual(['a', 'b', 'c'])
    expect(await store.size()).toBe(3)
    await store.run(async (tx) => {
      await tx.set('a', ((await tx.get('a')) as number) + 1)
    })
    expect(await store.delete('b')).toBe(true)
    // Another instance on the same cluster sees the same store.
    const other = await AnyStore.open({ redis, encryptionKey })
    onTestFinished(() => other.close())
    expect(await other.entries()).toEqual([
      ['a', 2],
      ['c', 'three'],
    ])
  })
})
