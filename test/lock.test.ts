import { existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { nodeFileSystem } from '../src/backends/file/fsio.js'
import { AnyStore } from '../src/index.js'
import {
  createLock,
  FlockLock,
  LockRecordFile,
  loadFlock,
  ProperLockfileLock,
} from '../src/lock.js'
import { rejection, tempDir } from './helpers.js'

const flock = loadFlock()

describe('flock lock', () => {
  it('loads fs-ext here', () => {
    expect(flock).not.toBeNull()
  })

  it('excludes a second holder, which times out naming the recorded holder pid', async () => {
    const target = join(tempDir(), 's.db')
    const first = createLock('flock', nodeFileSystem, target, 5000)
    const second = createLock('flock', nodeFileSystem, target, 5000)
    expect(first).toBeInstanceOf(FlockLock)
    await first.acquire(100)
    first.record.write({ pid: 4242, token: '00112233aabbccdd' })
    const error = await rejection(second.acquire(50))
    expect(error.code).toBe('ERR_ANYSTORE_LOCK_TIMEOUT')
    expect((error as { holderPid?: number }).holderPid).toBe(4242)
    await first.release()
    await second.acquire(100)
    expect(second.record.read()).toEqual({ pid: 4242, token: '00112233aabbccdd' })
    await second.release()
    first.close()
    second.close()
    expect(statSync(`${target}.lock`).mode & 0o777).toBe(0o600)
  })

  it('notices a lockfile deleted or replaced while held', async () => {
    const target = join(tempDir(), 's.db')
    const lock = createLock('flock', nodeFileSystem, target, 5000)
    await lock.acquire(100)
    lock.assertHeld()
    rmSync(`${target}.lock`)
    expect(() => lock.assertHeld()).toThrow(
      expect.objectContaining({ code: 'ERR_ANYSTORE_LOCK_COMPROMISED' }),
    )
    await lock.release()
    // The next acquisition locks the file that is now at the path.
    await lock.acquire(100)
    lock.assertHeld()
    writeFileSync(`${target}.replacement`, '')
    renameSync(`${target}.replacement`, `${target}.lock`)
    expect(() => lock.assertHeld()).toThrow(
      expect.objectContaining({ code: 'ERR_ANYSTORE_LOCK_COMPROMISED' }),
    )
    await lock.release()
    lock.close()
  })

  it('a commit whose lockfile was deleted mid-transaction is abandoned and writes nothing', async () => {
    const file = join(tempDir(), 'victim.db')
    const store = await AnyStore.open({ file, lock: 'flock' })
    await store.set('a', 1)
    const before = readFileSync(file)
    const error = await rejection(
      store.run(async (tx) => {
        await tx.set('b', 2)
        rmSync(`${file}.lock`)
      }),
    )
    expect(error.code).toBe('ERR_ANYSTORE_LOCK_COMPROMISED')
    expect(readFileSync(file).equals(before)).toBe(true)
    await store.set('c', 3)
    expect(await store.keys()).toEqual(['a', 'c'])
    await store.close()
  })
})

describe('lock record', () => {
  it('ignores a lockfile whose content is not a record', () => {
    const path = join(tempDir(), 'x.lock')
    writeFileSync(path, 'something else entirely')
    const record = new LockRecordFile(nodeFileSystem, path)
    expect(record.read()).toBeUndefined()
    record.write({ pid: 7, token: 'ffffffffffffffff' })
    expect(record.read()).toEqual({ pid: 7, token: 'ffffffffffffffff' })
    record.close()
  })
})

describe('proper-lockfile lock', () => {
  it('uses <file>.plock, so it never collides with the flock file', async () => {
    const target = join(tempDir(), 's.db')
    const lock = createLock('proper-lockfile', nodeFileSystem, target, 2000)
    expect(lock).toBeInstanceOf(ProperLockfileLock)
    await lock.acquire(100)
    expect(statSync(`${target}.plock`).isDirectory()).toBe(true)
    const other = createLock('proper-lockfile', nodeFileSystem, target, 2000)
    expect((await rejection(other.acquire(50))).code).toBe('ERR_ANYSTORE_LOCK_TIMEOUT')
    await lock.release()
    expect(existsSync(`${target}.plock`)).toBe(false)
    await other.acquire(100)
    await other.release()
  })

  it('marks the lock compromised instead of crashing the process when the lock dir vanishes', async () => {
    const target = join(tempDir(), 's.db')
    const lock = createLock('proper-lockfile', nodeFileSystem, target, 2000)
    await lock.acquire(100)
    rmSync(`${target}.plock`, { recursive: true })
    // proper-lockfile checks the directory every staleMs / 2.
    const deadline = Date.now() + 5000
    while (Date.now() < deadline) {
      try {
        lock.assertHeld()
      } catch (error) {
        expect((error as { code: string }).code).toBe('ERR_ANYSTORE_LOCK_COMPROMISED')
        await lock.release()
        return
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    expect.fail('the vanished lock directory was never noticed')
  })
})
