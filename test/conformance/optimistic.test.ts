import { describe, expect, it, onTestFinished } from 'vitest'
import { AnyStore, type AnyStoreOptions, type Transaction } from '../../src/index.js'
import { OptimisticBackend, OptimisticServer } from './optimistic-backend.js'
import { describeConformance } from './suite.js'

// A different seed per store: each test meets other interleavings of reads and commits.
let seed = 0

describeConformance(
  'optimistic',
  {
    create() {
      const server = new OptimisticServer({ seed: ++seed })
      return {
        open: () => AnyStore.open({ backend: new OptimisticBackend(server) }),
        openReadOnly: () =>
          AnyStore.open({ backend: new OptimisticBackend(server, { readOnly: true }) }),
        storedCount: async () => server.storedCount,
      }
    },
  },
  {
    persistent: true,
    wrongKey: false,
    multiProcess: false,
    sharedInstances: true,
    exclusive: false,
    readOnly: true,
    storedCount: true,
    events: true,
  },
)

describe('optimistic: conflicts and retries', () => {
  async function setup(options: Omit<AnyStoreOptions, 'backend'> = {}) {
    const server = new OptimisticServer({ seed: ++seed })
    const opened: AnyStore[] = []
    onTestFinished(async () => {
      await Promise.allSettled(opened.map((s) => s.close()))
    })
    const open = async () => {
      const store = await AnyStore.open({ ...options, backend: new OptimisticBackend(server) })
      opened.push(store)
      return store
    }
    return { server, store: await open(), open }
  }

  /** An increment of `n` that counts the attempts it took. */
  function countingIncrement(counter: { calls: number }) {
    return async (tx: Transaction<unknown>) => {
      counter.calls++
      const n = ((await tx.get('n')) as number | undefined) ?? 0
      await tx.set('n', n + 1)
      return counter.calls
    }
  }

  it('fewer injected conflicts than the attempt limit: run() succeeds after running its callback again', async () => {
    const { server, store } = await setup()
    server.injectConflicts(3)
    const counter = { calls: 0 }
    // What run() returns comes from the attempt that committed.
    expect(await store.run(countingIncrement(counter))).toBe(4)
    expect(counter.calls).toBe(4)
    expect(await store.get('n')).toBe(1)
    expect(server.stats).toMatchObject({ commits: 1, conflicts: 3 })
  })

  it('maxRunAttempts is the number of attempts: one fewer conflict still commits', async () => {
    const { server, store } = await setup({ maxRunAttempts: 3 })
    server.injectConflicts(2)
    const counter = { calls: 0 }
    await store.run(countingIncrement(counter))
    expect(counter.calls).toBe(3)
    expect(await store.get('n')).toBe(1)
  })

  it('a conflict on every attempt (50 by default) is TransactionConflictError and commits nothing', async () => {
    const { server, store } = await setup()
    await store.set('kept', 1)
    server.injectConflicts(50)
    const counter = { calls: 0 }
    const error = await store.run(countingIncrement(counter)).then(
      () => {
        throw new Error('expected a conflict')
      },
      (e: unknown) => e as { code?: string; attempts?: number },
    )
    expect(error.code).toBe('ERR_ANYSTORE_CONFLICT')
    expect(error.attempts).toBe(50)
    expect(counter.calls).toBe(50)
    expect(await store.entries()).toEqual([['kept', 1]])
    // Nothing is left over from the failed run: the next one commits at once.
    counter.calls = 0
    await store.run(countingIncrement(counter))
    expect(counter.calls).toBe(1)
    expect(await store.get('n')).toBe(1)
  })

  it('maxRunAttempts: 1 never retries', async () => {
    const { server, store } = await setup({ maxRunAttempts: 1 })
    server.injectConflicts(1)
    const counter = { calls: 0 }
    const error = await store.run(countingIncrement(counter)).catch((e: { code?: string }) => e)
    expect((error as { code?: string }).code).toBe('ERR_ANYSTORE_CONFLICT')
    expect(counter.calls).toBe(1)
    expect(await store.has('n')).toBe(false)
  })

  it('an error thrown by the callback is not retried', async () => {
    const { store } = await setup()
    let calls = 0
    await expect(
      store.run(async () => {
        calls++
        throw new Error('mine')
      }),
    ).rejects.toThrow('mine')
    expect(calls).toBe(1)
  })

  it('when another instance changes what the transaction read, the retry reads the new value', async () => {
    const { store: a, open } = await setup()
    const b = await open()
    await a.set('n', 1)
    let calls = 0
    await a.run(async (tx) => {
      calls++
      const n = (await tx.get('n')) as number
      // Only the first attempt is interfered with.
      if (calls === 1) await b.set('n', 100)
      await tx.set('n', n + 1)
    })
    expect(calls).toBe(2)
    expect(await b.get('n')).toBe(101)
  })

  it('a listing read in the transaction conflicts with any commit made meanwhile', async () => {
    const { store: a, open } = await setup()
    const b = await open()
    let calls = 0
    await a.run(async (tx) => {
      calls++
      const size = await tx.size()
      if (calls === 1) await b.set('other', 1)
      await tx.set('size', size)
    })
    expect(calls).toBe(2)
    expect(await a.get('size')).toBe(1)
  })

  it('a commit elsewhere to a key the transaction never read does not make it retry', async () => {
    const { store: a, open } = await setup()
    const b = await open()
    let calls = 0
    await a.run(async (tx) => {
      calls++
      const n = ((await tx.get('n')) as number | undefined) ?? 0
      await b.set('unrelated', 1)
      await tx.set('n', n + 1)
    })
    expect(calls).toBe(1)
    expect(await a.entries()).toEqual([
      ['unrelated', 1],
      ['n', 1],
    ])
  })

  it('set() and delete() go through despite reported conflicts', async () => {
    const { server, store } = await setup()
    await store.set('a', 1)
    server.injectConflicts(2)
    const results = await Promise.all([store.delete('a'), store.delete('a'), store.set('b', 2)])
    expect(results).toEqual([true, false, undefined])
    expect(await store.entries()).toEqual([['b', 2]])
  })

  it('two instances incrementing one counter concurrently with run() end exact', async () => {
    const { server, store: a, open } = await setup()
    const b = await open()
    const increments = async (store: AnyStore) => {
      for (let i = 0; i < 100; i++) {
        await store.run(async (tx) =>
          tx.set('n', (((await tx.get('n')) as number | undefined) ?? 0) + 1),
        )
      }
    }
    await Promise.all([increments(a), increments(b)])
    expect(await a.get('n')).toBe(200)
    // They did meet: without a conflict this test would not be about retries.
    expect(server.stats.conflicts).toBeGreaterThan(0)
  })
})
