import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { type FileSystem, nodeFileSystem } from '../../../src/backends/file/fsio.js'
import { openWithFileSystem } from '../../../src/anystore.js'
import { AnyStore } from '../../../src/index.js'
import { encodeValue } from '../../../src/format/codec.js'
import { DEFAULT_ENCRYPTION_KEY, deriveKeys, parseKey } from '../../../src/crypto.js'
import { linkCountRevealsReplacement } from '../../../src/backends/file/link-count.js'
import { encodePayload } from '../../../src/format/payload.js'
import { sealVersion1 } from '../../format-v1.js'

const WRITER = fileURLToPath(new URL('../../fixtures/set-value.mjs', import.meta.url))

/** Sets `key` from another process; returns once that process's set() has resolved. */
function setElsewhere(file: string, key: string, value: unknown): void {
  execFileSync(process.execPath, [WRITER, file, key, JSON.stringify(value)], { stdio: 'inherit' })
}

/** The real file system, counting the calls the read path makes on the store file. */
function countingFileSystem(file: () => string) {
  const calls = { stat: 0, fstat: 0, open: 0, statusReads: 0 }
  const io: FileSystem = {
    ...nodeFileSystem,
    readSync: (fd, buffer, offset, length, position) => {
      if (length === 1) calls.statusReads++
      return nodeFileSystem.readSync(fd, buffer, offset, length, position)
    },
    statSync: (path) => {
      if (path === file()) calls.stat++
      return nodeFileSystem.statSync(path)
    },
    fstatSync: (fd) => {
      calls.fstat++
      return nodeFileSystem.fstatSync(fd)
    },
    openSync: (path, flags, mode) => {
      if (path === file()) calls.open++
      return nodeFileSystem.openSync(path, flags, mode)
    },
  }
  return { io, calls }
}

let dir: string
let file: string
const stores: AnyStore[] = []

beforeEach(() => {
  dir = fs.realpathSync(fs.mkdtempSync(join(tmpdir(), 'anystore-read-path-')))
  file = join(dir, 'store.anystore')
})

afterEach(async () => {
  for (const store of stores.splice(0)) await store.close()
  fs.rmSync(dir, { recursive: true, force: true })
})

async function openReader(io?: FileSystem): Promise<AnyStore> {
  const store = io ? await openWithFileSystem({ file }, io) : await AnyStore.open({ file })
  stores.push(store)
  return store
}

describe('reads of an unchanged store', () => {
  it('make no call on the store path once loaded: one pread of the status byte where link counts are trusted, else one stat', async () => {
    setElsewhere(file, 'a', 1)
    const { io, calls } = countingFileSystem(() => file)
    const reader = await openReader(io)
    expect(await reader.get('a')).toBe(1)
    const before = { ...calls }
    for (let i = 0; i < 50; i++) expect(await reader.get('a')).toBe(1)
    expect(calls.open - before.open).toBe(0)
    if (linkCountRevealsReplacement(dir)) {
      expect(calls.stat - before.stat).toBe(0)
      const preads = calls.statusReads - before.statusReads
      const fstats = calls.fstat - before.fstat
      // A full check (fstat) replaces the pread at most once per FULL_CHECK_EVERY_MS.
      expect(preads + fstats).toBe(50)
      expect(preads).toBeGreaterThanOrEqual(48)
    } else {
      expect(calls.stat - before.stat).toBe(50)
    }
  })

  it('check fully again at most 100 ms after the last full check', async () => {
    setElsewhere(file, 'a', 1)
    const { io, calls } = countingFileSystem(() => file)
    const reader = await openReader(io)
    expect(await reader.get('a')).toBe(1)
    await new Promise((resolve) => setTimeout(resolve, 150))
    const before = { ...calls }
    expect(await reader.get('a')).toBe(1)
    expect(await reader.get('a')).toBe(1)
    if (linkCountRevealsReplacement(dir)) {
      expect(calls.fstat - before.fstat).toBe(1)
      expect(calls.statusReads - before.statusReads).toBe(1)
    }
  })

  it('hand out equal primitives and fresh copies of objects', async () => {
    const store = await openReader()
    await store.set('text', 'hello')
    await store.set('object', { list: [1, 2] })
    expect(await store.get('text')).toBe('hello')
    expect(await store.get('text')).toBe('hello')
    const first = (await store.get('object')) as { list: number[] }
    first.list.push(3)
    expect(await store.get('object')).toEqual({ list: [1, 2] })
  })
})

describe('a commit by another process', () => {
  it('is seen by the next read, after exactly one reload, and later reads are fast again', async () => {
    setElsewhere(file, 'n', 0)
    const { io, calls } = countingFileSystem(() => file)
    const reader = await openReader(io)
    expect(await reader.get('n')).toBe(0)
    for (let round = 1; round <= 3; round++) {
      setElsewhere(file, 'n', round)
      const opens = calls.open
      expect(await reader.get('n')).toBe(round)
      expect(calls.open - opens).toBe(1)
      const afterReload = { ...calls }
      for (let i = 0; i < 20; i++) expect(await reader.get('n')).toBe(round)
      expect(calls.open).toBe(afterReload.open)
      if (linkCountRevealsReplacement(dir)) expect(calls.stat).toBe(afterReload.stat)
    }
  })

  it('is seen even when the loaded version has another hard link', async () => {
    setElsewhere(file, 'n', 1)
    const reader = await openReader()
    expect(await reader.get('n')).toBe(1)
    fs.linkSync(file, join(dir, 'backup.anystore'))
    expect(await reader.get('n')).toBe(1)
    setElsewhere(file, 'n', 2)
    expect(await reader.get('n')).toBe(2)
    // The backup link is still there: the new version has one link, the old one two.
    setElsewhere(file, 'n', 3)
    expect(await reader.get('n')).toBe(3)
  })

  it('is seen when a hard link is added and then removed again around it', async () => {
    setElsewhere(file, 'n', 1)
    const reader = await openReader()
    expect(await reader.get('n')).toBe(1)
    const backup = join(dir, 'backup.anystore')
    fs.linkSync(file, backup)
    setElsewhere(file, 'n', 2)
    // Now the loaded version has one link again (the backup's), like before the commit.
    expect(fs.statSync(backup).nlink).toBe(1)
    expect(await reader.get('n')).toBe(2)
  })

  it('is seen after the lockfile was deleted', async () => {
    setElsewhere(file, 'n', 1)
    const reader = await openReader()
    expect(await reader.get('n')).toBe(1)
    fs.unlinkSync(`${file}.lock`)
    setElsewhere(file, 'n', 2)
    expect(await reader.get('n')).toBe(2)
  })
})

/** Longer than FULL_CHECK_EVERY_MS: by then a read checks fully and sees what other programs did. */
const afterFullCheckInterval = () => new Promise((resolve) => setTimeout(resolve, 150))

describe('a store file changed outside the store (by another program) is seen within 100 ms', () => {
  it('reads as empty once deleted', async () => {
    setElsewhere(file, 'n', 1)
    const reader = await openReader()
    expect(await reader.get('n')).toBe(1)
    fs.unlinkSync(file)
    await afterFullCheckInterval()
    expect(await reader.get('n')).toBeUndefined()
    expect(await reader.size()).toBe(0)
  })

  /** A store that has loaded n = 2, and a copy of the version with n = 1 renamed over it since. */
  async function restoredUnderAnOpenStore(): Promise<AnyStore> {
    setElsewhere(file, 'n', 1)
    const copy = join(dir, 'copy.anystore')
    fs.copyFileSync(file, copy)
    setElsewhere(file, 'n', 2)
    const store = await openReader()
    expect(await store.get('n')).toBe(2)
    fs.renameSync(copy, file)
    return store
  }

  // Until format version 3 the copy was served as if it were the latest commit. Now a running
  // instance refuses it (test/store-identity.test.ts has the rest: other stores, deletes,
  // restore()).
  it('refuses the older version renamed over it with RollbackError, within 100 ms', async () => {
    const reader = await restoredUnderAnOpenStore()
    await afterFullCheckInterval()
    await expect(reader.get('n')).rejects.toMatchObject({ code: 'ERR_ANYSTORE_ROLLBACK' })
  })

  it('a write refuses it at once, because a commit checks fully under the lock', async () => {
    const writer = await restoredUnderAnOpenStore()
    await expect(writer.run(async (tx) => tx.set('m', await tx.get('n')))).rejects.toMatchObject({
      code: 'ERR_ANYSTORE_ROLLBACK',
    })
  })
})

describe('the status byte', () => {
  it('set by a committer that died before its rename: readers keep the version, then see the next commit', async () => {
    setElsewhere(file, 'n', 1)
    const { io, calls } = countingFileSystem(() => file)
    const reader = await openReader(io)
    expect(await reader.get('n')).toBe(1)
    // What a committer killed between marking and renaming leaves: the current version marked.
    const size = fs.statSync(file).size
    const fd = fs.openSync(file, 'r+')
    fs.writeSync(fd, Buffer.of(1), 0, 1, size - 1)
    fs.closeSync(fd)
    const opens = calls.open
    for (let i = 0; i < 20; i++) expect(await reader.get('n')).toBe(1)
    // Writing the byte changed the file's mtime: one reload, and no more.
    expect(calls.open - opens).toBeLessThanOrEqual(1)
    setElsewhere(file, 'n', 2)
    expect(await reader.get('n')).toBe(2)
  })

  it('is set in the version a commit replaces, and only there', async () => {
    setElsewhere(file, 'n', 1)
    const old = join(dir, 'old-version')
    fs.linkSync(file, old)
    expect(fs.readFileSync(old).at(-1)).toBe(0)
    setElsewhere(file, 'n', 2)
    expect(fs.readFileSync(old).at(-1)).toBe(1)
    expect(fs.readFileSync(file).at(-1)).toBe(0)
  })

  it('is absent from a version 1 file: it is read with the fstat check, and a commit over it leaves its bytes alone', async () => {
    const keys = deriveKeys(parseKey(DEFAULT_ENCRYPTION_KEY))
    const v1 = sealVersion1(keys, encodePayload([['n', { value: encodeValue(1) }]]))
    fs.writeFileSync(file, v1)
    const old = join(dir, 'old-version')
    fs.linkSync(file, old)
    const { io, calls } = countingFileSystem(() => file)
    const reader = await openReader(io)
    expect(await reader.get('n')).toBe(1)
    setElsewhere(file, 'n', 2)
    expect(await reader.get('n')).toBe(2)
    expect(fs.readFileSync(old).equals(v1)).toBe(true)
    if (linkCountRevealsReplacement(dir)) expect(calls.fstat).toBeGreaterThan(0)
  })
})
