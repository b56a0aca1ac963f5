import { readdirSync, readlinkSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { AnyStore, type Change, type CommitOutcome, newKey, rekey } from '../../src/index.js'
import { OptimisticBackend, OptimisticServer } from '../conformance/optimistic-backend.js'
import { tempDir } from '../helpers.js'

/** Settles within `ms`, or says it did not: a hang must fail the test, not time it out. */
function within<T>(promise: Promise<T>, ms = 2000): Promise<T | 'never settled'> {
  return Promise.race([
    promise,
    new Promise<'never settled'>((resolve) => setTimeout(() => resolve('never settled'), ms)),
  ])
}

function errorCode(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => 'resolved',
    (error: { code?: string }) => error.code,
  )
}

/** The descriptors this process still has open under `dir`, once background closes are done. */
async function openDescriptorsUnder(dir: string): Promise<string[]> {
  for (let i = 0; i < 20 && listDescriptorsUnder(dir).length > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  return listDescriptorsUnder(dir)
}

function listDescriptorsUnder(dir: string): string[] {
  return readdirSync('/proc/self/fd')
    .map((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`)
      } catch {
        return ''
      }
    })
    .filter((target) => target.startsWith(dir))
}

describe('enablePersistence()', () => {
  it('keeps writes made just before and while it runs', async () => {
    const file = join(tempDir(), 's.db')
    const encryptionKey = newKey()
    const store = await AnyStore.open({ persist: false, encryptionKey })
    await store.set('old', 1)
    const before = store.set('a', 1)
    const enabling = store.enablePersistence(file)
    const during = store.set('b', 2)
    await Promise.all([before, enabling, during])
    expect(store.backendKind).toBe('file')
    expect(await store.entries()).toEqual([
      ['old', 1],
      ['a', 1],
      ['b', 2],
    ])
    await store.close()
    const reopened = await AnyStore.open({ file, encryptionKey })
    expect(await reopened.keys()).toEqual(['old', 'a', 'b'])
    await reopened.close()
  })

  it('inside run() fails instead of waiting for the run', async () => {
    const store = await AnyStore.open({ persist: false })
    const file = join(tempDir(), 's.db')
    const inside = await within(store.run(() => errorCode(store.enablePersistence(file))))
    expect(inside).toBe('ERR_ANYSTORE_REENTRANT')
    await store.close()
  })

  it('twice at once: the same file joins the first call, another file is refused, nothing leaks', async () => {
    const dir = tempDir()
    const store = await AnyStore.open({ persist: false, encryptionKey: newKey() })
    await store.set('k', 1)
    const outcomes = await Promise.allSettled([
      store.enablePersistence(join(dir, 'a.db')),
      store.enablePersistence(join(dir, 'a.db')),
      store.enablePersistence(join(dir, 'b.db')),
    ])
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected'])
    expect(store.file).toBe(join(dir, 'a.db'))
    await store.close()
    expect(await openDescriptorsUnder(dir)).toEqual([])
  })

  it('with close() called meanwhile leaves nothing open', async () => {
    const dir = tempDir()
    const store = await AnyStore.open({ persist: false, encryptionKey: newKey() })
    await store.set('k', 1)
    const enabling = store.enablePersistence(join(dir, 's.db'))
    await store.close()
    await enabling.catch(() => {})
    expect(store.closed).toBe(true)
    expect(await openDescriptorsUnder(dir)).toEqual([])
  })
})

describe('group commit on an optimistic backend', () => {
  it('a batch retried after a conflict commits before a later write, not over it', async () => {
    const server = new OptimisticServer({ seed: 1 })
    let later: Promise<void> | undefined
    const commit = server.commit.bind(server)
    server.commit = (reads, changes: readonly Change[]): CommitOutcome => {
      const outcome = commit(reads, changes)
      // While the refused batch backs off, a later write of the same key arrives.
      if (!outcome.committed && later === undefined) later = store.set('k', 'second')
      return outcome
    }
    const store: AnyStore = await AnyStore.open({ backend: new OptimisticBackend(server) })
    server.injectConflicts(1)
    await store.set('k', 'first')
    await later
    expect(later).toBeDefined()
    expect(await store.get('k')).toBe('second')
    await store.close()
  })
})

describe('what a run() holds ends with it', () => {
  for (const kind of ['memory', 'file']) {
    it(`async work a callback started may write once the run is over (${kind})`, async () => {
      const store =
        kind === 'file'
          ? await AnyStore.open({ file: join(tempDir(), 's.db'), encryptionKey: newKey() })
          : await AnyStore.open()
      let later: Promise<unknown> | undefined
      await store.run(async (tx) => {
        await tx.set('a', 1)
        later = (async () => {
          await new Promise((resolve) => setTimeout(resolve, 20))
          return errorCode(store.set('b', 2))
        })()
      })
      expect(await later).toBe('resolved')
      expect(await store.get('b')).toBe(2)
      await store.close()
    })
  }

  it('close() inside run() fails on every backend, also while a close is under way', async () => {
    const optimistic = await AnyStore.open({ backend: new OptimisticBackend(new OptimisticServer()) })
    expect(await within(optimistic.run(() => errorCode(optimistic.close())))).toBe(
      'ERR_ANYSTORE_REENTRANT',
    )
    await optimistic.close()

    const memory = await AnyStore.open()
    let release!: () => void
    const released = new Promise<void>((resolve) => {
      release = resolve
    })
    let inner: Promise<unknown> | undefined
    const running = memory.run(async () => {
      await released
      inner = errorCode(memory.close())
      return inner
    })
    // A close() from outside, under way while the run waits, then one from inside the run.
    const outer = memory.close()
    release()
    expect(await within(running)).toBe('ERR_ANYSTORE_REENTRANT')
    expect(await within(outer)).toBeUndefined()
  })

  it('rekey() of the file a run() holds fails instead of waiting for it', async () => {
    const file = join(tempDir(), 's.db')
    const encryptionKey = newKey()
    const store = await AnyStore.open({ file, encryptionKey })
    await store.set('a', 1)
    const inside = await within(
      store.run(() => errorCode(rekey({ file, encryptionKey, newEncryptionKey: newKey() }))),
    )
    expect(inside).toBe('ERR_ANYSTORE_REENTRANT')
    await store.close()
  })
})

describe('tx.delete()', () => {
  for (const kind of ['memory', 'file']) {
    it(`orders with the calls after it, awaited or not, as outside run() (${kind})`, async () => {
      const store =
        kind === 'file'
          ? await AnyStore.open({ file: join(tempDir(), 's.db'), encryptionKey: newKey() })
          : await AnyStore.open()
      await store.set('a', 0)
      await store.set('b', 0)
      const results = await store.run(async (tx) =>
        Promise.all([tx.delete('a'), tx.set('a', 1), tx.delete('b'), tx.delete('b')]),
      )
      expect(results).toEqual([true, undefined, true, false])
      expect(await store.entries()).toEqual([['a', 1]])
      await store.close()
    })
  }
})
