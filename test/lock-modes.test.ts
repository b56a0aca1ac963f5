import { existsSync, statSync, utimesSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { nodeFileSystem } from '../src/backends/file/fsio.js'
import { AnyStore, type LockMode, LockModeMismatchError } from '../src/index.js'
import { createLock } from '../src/lock.js'
import { nextMessage, rejection, spawnFixture, tempDir } from './helpers.js'

describe('flock and proper-lockfile on one file', () => {
  it('a flock holder makes a proper-lockfile acquisition fail, and the .plock is released', async () => {
    const target = join(tempDir(), 's.db')
    const flockHolder = createLock('flock', nodeFileSystem, target, 2000)
    const plockHolder = createLock('proper-lockfile', nodeFileSystem, target, 2000)
    await flockHolder.acquire(100)
    const error = await rejection(plockHolder.acquire(100))
    expect(error).toBeInstanceOf(LockModeMismatchError)
    expect(error.code).toBe('ERR_ANYSTORE_LOCK_MODE_MISMATCH')
    // It let go of its lock directory, so other proper-lockfile users are not blocked.
    expect(existsSync(`${target}.plock`)).toBe(false)
    await flockHolder.release()
    // With the flock holder gone the same lock works: a leftover lockfile is not a holder.
    await plockHolder.acquire(100)
    await plockHolder.release()
    flockHolder.close()
    plockHolder.close()
  })

  it('a proper-lockfile holder makes a flock acquisition fail, and the flock is released', async () => {
    const target = join(tempDir(), 's.db')
    const plockHolder = createLock('proper-lockfile', nodeFileSystem, target, 2000)
    const flockHolder = createLock('flock', nodeFileSystem, target, 2000)
    const otherFlock = createLock('flock', nodeFileSystem, target, 2000)
    await plockHolder.acquire(100)
    const error = await rejection(flockHolder.acquire(100))
    expect(error.code).toBe('ERR_ANYSTORE_LOCK_MODE_MISMATCH')
    await plockHolder.release()
    // The failed flock user did not keep its lock: another flock user gets it at once.
    await otherFlock.acquire(100)
    await otherFlock.release()
    await flockHolder.acquire(100)
    await flockHolder.release()
    for (const lock of [plockHolder, flockHolder, otherFlock]) lock.close()
  })

  it('a stale lock directory left by a killed proper-lockfile holder does not stop flock users', async () => {
    const target = join(tempDir(), 's.db')
    const store = await AnyStore.open({ file: target, lock: 'flock', staleMs: 2000 })
    await store.set('a', 1)
    // What a SIGKILLed proper-lockfile holder leaves: the directory, no longer refreshed.
    nodeFileSystem.mkdirSync(`${target}.plock`, 0o700)
    expect((await rejection(store.set('b', 2))).code).toBe('ERR_ANYSTORE_LOCK_MODE_MISMATCH')
    const old = new Date(Date.now() - 3000)
    utimesSync(`${target}.plock`, old, old)
    await store.set('b', 2)
    expect(await store.get('b')).toBe(2)
    await store.close()
  })

  it('a mismatch fails before anything is written', async () => {
    const target = join(tempDir(), 's.db')
    const flockStore = await AnyStore.open({ file: target, lock: 'flock' })
    await flockStore.set('k', 'before')
    const before = statSync(target).ino
    const held = createLock('proper-lockfile', nodeFileSystem, target, 2000)
    await held.acquire(100)
    let ran = false
    const error = await rejection(
      flockStore.run(async (tx) => {
        ran = true
        await tx.set('k', 'after')
      }),
    )
    expect(error.code).toBe('ERR_ANYSTORE_LOCK_MODE_MISMATCH')
    expect(ran).toBe(false)
    expect(statSync(target).ino).toBe(before)
    await held.release()
    held.close()
    expect(await flockStore.get('k')).toBe('before')
    await flockStore.close()
  })
})

describe('processes of both lock modes on one file', () => {
  it('2 flock + 2 proper-lockfile processes × 200 increments: every acknowledged one counts', async () => {
    const file = join(tempDir(), 'mixed.db')
    const modes: LockMode[] = ['flock', 'proper-lockfile', 'flock', 'proper-lockfile']
    const children = modes.map((lock) => spawnFixture('mixed-counter.mjs', [file, '200', lock]))
    for (const child of children) expect(await nextMessage(child)).toBe('ready')
    const reports = children.map((child) =>
      nextMessage<{ acked: number; failures: Record<string, number> }>(child),
    )
    for (const child of children) child.send('go')
    const results = await Promise.all(reports)
    const acked = results.reduce((sum, r) => sum + r.acked, 0)
    const failureKinds = new Set(results.flatMap((r) => Object.keys(r.failures)))

    const store = await AnyStore.open<number>({ file, lock: 'flock' })
    const count = (await store.get('n')) ?? 0
    await store.close()
    // Lost updates show as a count below the acknowledged increments; any failure other than
    // the typed mismatch (a raw ENOENT from a rename, say) shows in the kinds.
    expect({ count, failureKinds: [...failureKinds] }).toEqual({
      count: acked,
      failureKinds: expect.arrayContaining([]),
    })
    for (const kind of failureKinds) {
      expect(kind).toBe('LockModeMismatchError ERR_ANYSTORE_LOCK_MODE_MISMATCH')
    }
    expect(acked).toBeGreaterThan(0)
  })
})
