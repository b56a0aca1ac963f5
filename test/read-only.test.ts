import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { AnyStore, MemoryBackend, newKey } from '../src/index.js'
import { tempDir } from './helpers.js'

describe('readOnly: true', () => {
  it('creates no directory, lockfile or temp file, even for a store that does not exist', async () => {
    const dir = join(tempDir(), 'not', 'there')
    const store = await AnyStore.open({ file: join(dir, 's.db'), readOnly: true })
    expect(await store.size()).toBe(0)
    expect(await store.get('a')).toBeUndefined()
    await expect(store.set('a', 1)).rejects.toMatchObject({ code: 'ERR_ANYSTORE_READ_ONLY' })
    await store.close()
    expect(existsSync(join(dir, '..'))).toBe(false)
  })

  it('reads what a writer commits, refuses every write, and leaves the directory as it was', async () => {
    const dir = tempDir()
    const file = join(dir, 's.db')
    const encryptionKey = newKey()
    const writer = await AnyStore.open({ file, encryptionKey })
    await writer.set('a', 1)
    const before = readdirSync(dir).sort()
    const mtime = statSync(file).mtimeMs

    const reader = await AnyStore.open({ file, encryptionKey, readOnly: true })
    expect(reader.readOnly).toBe(true)
    expect(reader.lockMode).toBeUndefined()
    expect(await reader.get('a')).toBe(1)
    for (const write of [
      () => reader.set('b', 2),
      () => reader.delete('a'),
      () => reader.clear(),
      () => reader.run(async (tx) => tx.set('b', 2)),
      () => reader.run(async (tx) => tx.delete('a')),
      () => reader.run(async (tx) => tx.clear()),
    ]) {
      await expect(write()).rejects.toMatchObject({ code: 'ERR_ANYSTORE_READ_ONLY' })
    }
    // A transaction that only reads runs, without taking the lock.
    expect(await reader.run(async (tx) => [await tx.get('a'), await tx.size()])).toEqual([1, 1])

    await writer.set('a', 2)
    expect(await reader.get('a')).toBe(2)
    await reader.close()
    await writer.close()
    expect(readdirSync(dir).sort()).toEqual(before)
    expect(statSync(file).mtimeMs).toBeGreaterThanOrEqual(mtime)
  })

  it('still reports a wrong key at open', async () => {
    const file = join(tempDir(), 's.db')
    const writer = await AnyStore.open({ file, encryptionKey: newKey() })
    await writer.set('a', 1)
    await writer.close()
    await expect(
      AnyStore.open({ file, encryptionKey: newKey(), readOnly: true }),
    ).rejects.toMatchObject({ code: 'ERR_ANYSTORE_WRONG_KEY' })
  })
})

describe('key queries and iteration', () => {
  for (const persist of [false, true]) {
    it(`prefix selects string keys only, in insertion order (${persist ? 'file' : 'memory'})`, async () => {
      const store = persist
        ? await AnyStore.open({ file: join(tempDir(), 's.db'), encryptionKey: newKey() })
        : await AnyStore.open()
      for (const key of ['user:1', 'team:1', 12, 'user:2', 'user', 'user:0']) await store.set(key, String(key))
      await store.delete('user:1')
      await store.set('user:1', 'again')
      expect(await store.keys({ prefix: 'user:' })).toEqual(['user:2', 'user:0', 'user:1'])
      expect(await store.keys({ prefix: '1' })).toEqual([])
      expect(await store.keys({ prefix: '' })).toEqual((await store.keys()).filter((k) => typeof k === 'string'))
      expect(await store.entries({ prefix: 'team' })).toEqual([['team:1', 'team:1']])
      const keys: unknown[] = []
      for await (const key of store.iterateKeys({ prefix: 'user:' })) keys.push(key)
      expect(keys).toEqual(['user:2', 'user:0', 'user:1'])
      const entries: unknown[] = []
      for await (const entry of store.iterateEntries()) entries.push(entry)
      expect(entries).toEqual(await store.entries())
      expect(
        await store.run(async (tx) => {
          await tx.set('user:3', 3)
          await tx.delete('user:2')
          return tx.keys({ prefix: 'user:' })
        }),
      ).toEqual(['user:0', 'user:1', 'user:3'])
      await expect(store.keys({ prefix: 1 as unknown as string })).rejects.toMatchObject({
        code: 'ERR_ANYSTORE_INVALID_OPTION',
      })
      await store.close()
    })
  }
})

describe('readOnly on other backends', () => {
  it('holds for an in-memory store and for a backend passed in', async () => {
    const shared = new MemoryBackend()
    const writer = await AnyStore.open({ backend: shared })
    await writer.set('a', 1)
    for (const store of [
      await AnyStore.open({ readOnly: true }),
      await AnyStore.open({ backend: shared, readOnly: true }),
    ]) {
      expect(store.readOnly).toBe(true)
      await expect(store.set('b', 2)).rejects.toMatchObject({ code: 'ERR_ANYSTORE_READ_ONLY' })
      await expect(store.run(async (tx) => tx.set('b', 2))).rejects.toMatchObject({
        code: 'ERR_ANYSTORE_READ_ONLY',
      })
      await store.close()
    }
    expect(await writer.keys()).toEqual(['a'])
  })
})

describe('run() edge cases', () => {
  it('close() from inside run() on the same store fails instead of waiting for itself', async () => {
    for (const store of [
      await AnyStore.open(),
      await AnyStore.open({ file: join(tempDir(), 's.db'), encryptionKey: newKey() }),
    ]) {
      const inside = await store.run(async () => store.close().then(() => 'closed', (e) => e.code))
      expect(inside).toBe('ERR_ANYSTORE_REENTRANT')
      expect(store.closed).toBe(false)
      await store.close()
    }
  })

  it('maxRunAttempts is a whole number of at least 1', async () => {
    for (const maxRunAttempts of [0, 0.5, -1, Number.NaN, '3']) {
      await expect(
        AnyStore.open({ maxRunAttempts: maxRunAttempts as number }),
      ).rejects.toMatchObject({ code: 'ERR_ANYSTORE_INVALID_OPTION' })
    }
    await (await AnyStore.open({ maxRunAttempts: 1 })).close()
  })
})
