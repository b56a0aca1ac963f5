import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'
import { openWithFileSystem } from '../src/anystore.js'
import { type FileSystem, nodeFileSystem } from '../src/backends/file/fsio.js'
import { AnyStore, newKey } from '../src/index.js'
import { LockRecordFile } from '../src/lock.js'
import { rejection, tempDir } from './helpers.js'

/** A file system that counts the renames (one per commit) and can fail chosen calls. */
function countingFs() {
  const counts = { rename: 0 }
  const io: FileSystem = {
    ...nodeFileSystem,
    renameSync: (from, to) => {
      counts.rename++
      nodeFileSystem.renameSync(from, to)
    },
  }
  return { io, counts }
}

describe('in memory', () => {
  it('is the default without a file, and supports every operation', async () => {
    const store = await AnyStore.open<unknown>()
    expect(store.file).toBeUndefined()
    await store.set('a', 1)
    await store.set(1, 'number key')
    expect(await store.get('a')).toBe(1)
    expect(await store.get(1)).toBe('number key')
    expect(await store.get('1')).toBeUndefined()
    expect(await store.has(1)).toBe(true)
    expect(await store.keys()).toEqual(['a', 1])
    expect(await store.size()).toBe(2)
    expect(await store.entries()).toEqual([
      ['a', 1],
      [1, 'number key'],
    ])
    expect(await store.delete('a')).toBe(true)
    expect(await store.delete('a')).toBe(false)
    await store.clear()
    expect(await store.size()).toBe(0)
    await store.close()
  })

})

describe('persisted', () => {
  it('survives reopening, keeps key types and creates private files', async () => {
    const dir = join(tempDir(), 'new', 'nested')
    const file = join(dir, 'store.db')
    const store = await AnyStore.open<unknown>({ file })
    expect(store.file).toBe(file)
    await store.set(1, 'one')
    await store.set('1', 'string one')
    await store.close()
    expect(statSync(dir).mode & 0o777).toBe(0o700)
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(statSync(`${file}.lock`).mode & 0o777).toBe(0o600)

    const again = await AnyStore.open<unknown>({ file })
    expect(await again.get(1)).toBe('one')
    expect(await again.get('1')).toBe('string one')
    expect(await again.keys()).toEqual([1, '1'])
    await again.close()
  })

  it("expands '~/' to the home directory", async () => {
    const dir = tempDir()
    const previous = process.env.HOME
    process.env.HOME = dir
    try {
      expect(homedir()).toBe(dir)
      const store = await AnyStore.open({ file: '~/sub/s.db' })
      await store.set('k', 'v')
      expect(store.file).toBe(join(dir, 'sub', 's.db'))
      await store.close()
    } finally {
      process.env.HOME = previous
    }
  })

  it('keeps no plaintext key or value in the file', async () => {
    const file = join(tempDir(), 'secret.db')
    const store = await AnyStore.open({ file, encryptionKey: newKey() })
    await store.set('visible-key-name', 'visible value text')
    await store.close()
    const bytes = readFileSync(file)
    expect(bytes.includes('visible-key-name')).toBe(false)
    expect(bytes.includes('visible value text')).toBe(false)
    expect(bytes.subarray(0, 8).toString()).toBe('ANYSTORE')
  })

  it('with a wrong key: open fails with WrongKeyError and set() leaves the bytes as they were', async () => {
    const file = join(tempDir(), 'k.db')
    const key = newKey()
    const owner = await AnyStore.open({ file, encryptionKey: key })
    await owner.set('a', 1)
    const before = readFileSync(file)

    expect((await rejection(AnyStore.open({ file, encryptionKey: newKey() }))).code).toBe(
      'ERR_ANYSTORE_WRONG_KEY',
    )
    // A store that opened fine, then finds the file rewritten under another key.
    const other = join(tempDir(), 'other.db')
    const intruder = await AnyStore.open({ file: other, encryptionKey: newKey() })
    await intruder.set('z', 26)
    await intruder.close()
    const foreign = readFileSync(other)
    writeFileSync(file, foreign)
    const error = await rejection(owner.set('b', 2))
    expect(error.code).toBe('ERR_ANYSTORE_WRONG_KEY')
    expect(error.message).not.toContain(key)
    expect(readFileSync(file).equals(foreign)).toBe(true)
    expect((await rejection(owner.get('a'))).code).toBe('ERR_ANYSTORE_WRONG_KEY')
    expect(before.equals(foreign)).toBe(false)
    await owner.close()
  })

  it('reports a flipped byte as CorruptFileError and never overwrites the file', async () => {
    const file = join(tempDir(), 'c.db')
    const store = await AnyStore.open({ file })
    await store.set('a', 'x'.repeat(100))
    await store.close()
    const bytes = readFileSync(file)
    bytes[bytes.length - 30]! ^= 0x01
    writeFileSync(file, bytes)
    expect((await rejection(AnyStore.open({ file }))).code).toBe('ERR_ANYSTORE_CORRUPT_FILE')
    expect(readFileSync(file).equals(bytes)).toBe(true)
  })

  it('rejects an unstorable value before anything is written', async () => {
    const file = join(tempDir(), 'v.db')
    const { io, counts } = countingFs()
    const store = await openWithFileSystem({ file }, io)
    await store.set('ok', 1)
    for (const bad of [() => 1, Symbol('s'), new (class Point {})(), new WeakMap()]) {
      expect((await rejection(store.set('bad', bad))).code).toBe('ERR_ANYSTORE_UNSUPPORTED_VALUE')
    }
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    expect((await rejection(store.set('bad', cyclic))).code).toBe('ERR_ANYSTORE_UNSUPPORTED_VALUE')
    expect(counts.rename).toBe(1)
    expect(await store.keys()).toEqual(['ok'])
    await store.close()
  })

  it('coalesces concurrent set() calls into few commits (group commit)', async () => {
    const file = join(tempDir(), 'g.db')
    const { io, counts } = countingFs()
    const store = await openWithFileSystem<number>({ file }, io)
    await Promise.all(Array.from({ length: 1000 }, (_, i) => store.set(`k${i}`, i)))
    expect(counts.rename).toBe(1)
    expect(await store.size()).toBe(1000)
    for (let i = 0; i < 10; i++) await store.set(`s${i}`, i)
    expect(counts.rename).toBe(11)
    await store.close()
    const reopened = await AnyStore.open<number>({ file })
    expect(await reopened.get('k999')).toBe(999)
    await reopened.close()
  })

  it('run() commits once, or not at all when the callback throws', async () => {
    const file = join(tempDir(), 'tx.db')
    const { io, counts } = countingFs()
    const store = await openWithFileSystem<number>({ file }, io)
    await store.run(async (tx) => {
      for (let i = 0; i < 10; i++) await tx.set(`k${i}`, i)
      expect(await tx.size()).toBe(10)
      expect(await tx.keys()).toHaveLength(10)
    })
    expect(counts.rename).toBe(1)
    await expect(
      store.run(async (tx) => {
        await tx.clear()
        throw new Error('abort')
      }),
    ).rejects.toThrow('abort')
    expect(counts.rename).toBe(1)
    expect(await store.size()).toBe(10)
    await store.run(async (tx) => tx.get('k1'))
    expect(counts.rename).toBe(1)
    await store.close()
  })

  it('a nested run() fails with a message that names only what exists', async () => {
    for (const file of [join(tempDir(), 'nested.db'), undefined]) {
      const store = await AnyStore.open<number>({ file })
      const error = await rejection(store.run(async () => store.run(async () => 1)))
      expect(error.code).toBe('ERR_ANYSTORE_REENTRANT')
      expect(error.message).toContain('store.run()')
      expect(error.message).not.toContain('tx.run')
      // The writes a transaction can make are named as `tx` methods, which do exist.
      const write = await rejection(store.run(async () => store.delete('x')))
      expect(write.message).toContain('tx.delete')
      await store.close()
    }
  })

})

describe('switching persistence', () => {
  it('enablePersistence merges in-memory entries into the file, memory winning', async () => {
    const file = join(tempDir(), 'merge.db')
    const existing = await AnyStore.open({ file })
    await existing.set('shared', 'from file')
    await existing.set('file-only', 1)
    await existing.close()

    const store = await AnyStore.open()
    await store.set('shared', 'from memory')
    await store.set('memory-only', 2)
    await store.enablePersistence(file)
    expect(store.file).toBe(file)
    const expected = { shared: 'from memory', 'file-only': 1, 'memory-only': 2 }
    expect(Object.fromEntries(await store.entries())).toEqual(expected)
    await store.close()
    const reopened = await AnyStore.open({ file })
    expect(Object.fromEntries(await reopened.entries())).toEqual(expected)
    await reopened.close()
  })

  it('enablePersistence on an unreadable file fails and keeps the store in memory', async () => {
    const file = join(tempDir(), 'foreign.db')
    writeFileSync(file, '{"not": "ours"}')
    const store = await AnyStore.open()
    await store.set('a', 1)
    const error = await rejection(store.enablePersistence(file))
    expect(error.code).toBe('ERR_ANYSTORE_NOT_ANYSTORE_FILE')
    expect(store.file).toBeUndefined()
    expect(await store.get('a')).toBe(1)
    expect(readFileSync(file, 'utf8')).toBe('{"not": "ours"}')
  })

  it('disablePersistence keeps the loaded state and stops touching the file', async () => {
    const file = join(tempDir(), 'off.db')
    const store = await AnyStore.open({ file })
    await store.set('a', 1)
    store.disablePersistence()
    expect(store.file).toBeUndefined()
    await store.set('b', 2)
    expect(await store.keys()).toEqual(['a', 'b'])
    const reader = await AnyStore.open({ file })
    expect(await reader.keys()).toEqual(['a'])
    await Promise.all([store.close(), reader.close()])
  })
})

describe('close', () => {
  it('is idempotent, waits for pending writes, and later calls throw StoreClosedError', async () => {
    const file = join(tempDir(), 'close.db')
    const store = await AnyStore.open({ file })
    const pending = store.set('late', 1)
    await Promise.all([store.close(), store.close()])
    await pending
    expect((await rejection(store.get('late'))).code).toBe('ERR_ANYSTORE_CLOSED')
    expect((await rejection(store.set('x', 1))).code).toBe('ERR_ANYSTORE_CLOSED')
    expect(store.closed).toBe(true)
    const reader = await AnyStore.open({ file })
    expect(await reader.get('late')).toBe(1)
    await reader.close()
    expect(readdirSync(join(file, '..')).sort()).toEqual(['close.db', 'close.db.lock'])
  })
})

describe('paths', () => {
  it('refuses a directory and a dangling symlink with InvalidPathError', async () => {
    const dir = tempDir()
    expect((await rejection(AnyStore.open({ file: dir }))).code).toBe('ERR_ANYSTORE_INVALID_PATH')
    const { symlinkSync } = await import('node:fs')
    const link = join(dir, 'dangling.db')
    symlinkSync(join(dir, 'missing-target'), link)
    expect((await rejection(AnyStore.open({ file: link }))).code).toBe('ERR_ANYSTORE_INVALID_PATH')
  })

  it('writes through a symlink to its target, keeping the link', async () => {
    const dir = tempDir()
    const target = join(dir, 'real.db')
    const seed = await AnyStore.open({ file: target })
    await seed.set('a', 1)
    await seed.close()
    const { lstatSync, symlinkSync } = await import('node:fs')
    const link = join(dir, 'link.db')
    symlinkSync(relative(dir, target), link)
    const store = await AnyStore.open({ file: link })
    await store.set('b', 2)
    await store.close()
    expect(lstatSync(link).isSymbolicLink()).toBe(true)
    const direct = await AnyStore.open({ file: target })
    expect(await direct.keys()).toEqual(['a', 'b'])
    await direct.close()
  })

  it('refuses a path with a NUL byte with InvalidPathError', async () => {
    const file = join(tempDir(), 'a\u0000b.db')
    expect((await rejection(AnyStore.open({ file }))).code).toBe('ERR_ANYSTORE_INVALID_PATH')
    const store = await AnyStore.open()
    expect((await rejection(store.enablePersistence(file))).code).toBe('ERR_ANYSTORE_INVALID_PATH')
  })

  it('handles unicode and spaces in the path', async () => {
    const file = join(tempDir(), 'dir with spaces', 'störe ✓.db')
    const store = await AnyStore.open({ file })
    await store.set('k', 'v')
    await store.close()
    const again = await AnyStore.open({ file })
    expect(await again.get('k')).toBe('v')
    await again.close()
  })
})

describe('options', () => {
  it('rejects invalid options with InvalidOptionError or InvalidKeyError', async () => {
    const cases: [object, string][] = [
      [{ sync: 'sometimes' }, 'ERR_ANYSTORE_INVALID_OPTION'],
      [{ lock: 'posix' }, 'ERR_ANYSTORE_INVALID_OPTION'],
      [{ lockTimeoutMs: -1 }, 'ERR_ANYSTORE_INVALID_OPTION'],
      [{ persist: true }, 'ERR_ANYSTORE_INVALID_OPTION'],
      [{ file: '' }, 'ERR_ANYSTORE_INVALID_OPTION'],
      [{ encryptionKey: 'c2hvcnQ=' }, 'ERR_ANYSTORE_INVALID_KEY'],
    ]
    for (const [options, code] of cases) {
      expect((await rejection(AnyStore.open(options))).code).toBe(code)
    }
  })

  it('persist: false with a file keeps the store in memory until enablePersistence()', async () => {
    const file = join(tempDir(), 'later.db')
    const store = await AnyStore.open({ file, persist: false })
    await store.set('a', 1)
    expect(() => statSync(file)).toThrow()
    await store.enablePersistence()
    expect(statSync(file).isFile()).toBe(true)
    await store.close()
  })

  it('compress: true round-trips and shrinks repetitive data', async () => {
    const dir = tempDir()
    const sizes: number[] = []
    for (const compress of [false, true]) {
      const file = join(dir, `${compress}.db`)
      const store = await AnyStore.open({ file, compress })
      await store.set('text', 'abc'.repeat(10_000))
      await store.close()
      const reader = await AnyStore.open({ file, compress: !compress })
      expect(await reader.get('text')).toBe('abc'.repeat(10_000))
      await reader.close()
      sizes.push(statSync(file).size)
    }
    expect(sizes[1]!).toBeLessThan(sizes[0]! / 10)
  })

  it('sync: never still commits atomically', async () => {
    const file = join(tempDir(), 'nosync.db')
    const store = await AnyStore.open({ file, sync: 'never' })
    await store.set('a', 1)
    const reader = await AnyStore.open({ file })
    expect(await reader.get('a')).toBe(1)
    await Promise.all([store.close(), reader.close()])
  })
})

describe('file permissions', () => {
  it('keeps working when the lockfile already exists with other content', async () => {
    const file = join(tempDir(), 'l.db')
    writeFileSync(`${file}.lock`, 'left over by someone else')
    chmodSync(`${file}.lock`, 0o600)
    const store = await AnyStore.open({ file })
    await store.set('a', 1)
    expect(await store.get('a')).toBe(1)
    await store.close()
  })
})

describe('temp files', () => {
  const tempsIn = (file: string) =>
    readdirSync(join(file, '..')).filter((name) => name.endsWith('.tmp'))

  it('the next lock holder removes temps that a killed writer left behind', async () => {
    const file = join(tempDir(), 't.db')
    const store = await AnyStore.open({ file })
    await store.set('a', 1)
    // What a writer killed between creating its temp and renaming it leaves: a temp named in
    // the lock record.
    writeFileSync(`${file}.0123456789abcdef.tmp`, 'partial')
    const record = new LockRecordFile(nodeFileSystem, `${file}.lock`)
    record.write({ pid: 999_999, token: '0123456789abcdef' })
    record.close()
    await store.set('b', 2)
    expect(tempsIn(file)).toEqual([])
    // Older leftovers not named in the record are swept by each instance's first lock.
    writeFileSync(`${file}.fedcba9876543210.tmp`, 'older')
    writeFileSync(join(file, '..', 'unrelated.fedcba9876543210.tmp'), 'not ours')
    const fresh = await AnyStore.open({ file })
    await fresh.set('c', 3)
    expect(tempsIn(file)).toEqual(['unrelated.fedcba9876543210.tmp'])
    await Promise.all([store.close(), fresh.close()])
  })

  it('a failed fsync removes the temp, keeps the file, and the store recovers', async () => {
    const file = join(tempDir(), 'f.db')
    let failNext = false
    const io: FileSystem = {
      ...nodeFileSystem,
      fsyncSync: (fd) => {
        if (failNext) {
          failNext = false
          throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' })
        }
        nodeFileSystem.fsyncSync(fd)
      },
    }
    const store = await openWithFileSystem({ file }, io)
    await store.set('a', 1)
    const before = readFileSync(file)
    failNext = true
    expect((await rejection(store.set('b', 2))).code).toBe('EIO')
    expect(readFileSync(file).equals(before)).toBe(true)
    expect(tempsIn(file)).toEqual([])
    expect(await store.has('b')).toBe(false)
    await store.set('c', 3)
    expect(await store.keys()).toEqual(['a', 'c'])
    await store.close()
  })
})

describe('values that authenticate but do not decode', () => {
  it('give CorruptFileError, not a raw decoder error', async () => {
    const { deriveKeys, parseKey, DEFAULT_ENCRYPTION_KEY } = await import('../src/crypto.js')
    const { seal } = await import('../src/format/store-file.js')
    const { encodePayload } = await import('../src/format/payload.js')
    const file = join(tempDir(), 'bad-value.db')
    // 0xc1 is the one byte MessagePack never uses: only a buggy or foreign writer with the key makes this.
    const payload = encodePayload([['broken', { value: Uint8Array.of(0xc1) }]])
    const sealed = seal(deriveKeys(parseKey(DEFAULT_ENCRYPTION_KEY)), payload, { compress: false })
    writeFileSync(file, Buffer.concat(sealed.parts))
    const store = await AnyStore.open({ file })
    expect(await store.keys()).toEqual(['broken'])
    expect((await rejection(store.get('broken'))).code).toBe('ERR_ANYSTORE_CORRUPT_FILE')
    expect((await rejection(store.entries())).code).toBe('ERR_ANYSTORE_CORRUPT_FILE')
    expect((await rejection(store.run((tx) => tx.get('broken')))).code).toBe('ERR_ANYSTORE_CORRUPT_FILE')
    expect((await rejection(store.run((tx) => tx.entries()))).code).toBe('ERR_ANYSTORE_CORRUPT_FILE')
    await store.close()
  })
})
