import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { type FileSystem, nodeFileSystem } from '../src/fsio.js'
import { AnyStore } from '../src/index.js'
import { linkCountRevealsReplacement } from '../src/link-count.js'

const WRITER = fileURLToPath(new URL('./fixtures/set-value.mjs', import.meta.url))

/** Sets `key` from another process; returns once that process's set() has resolved. */
function setElsewhere(file: string, key: string, value: unknown): void {
  execFileSync(process.execPath, [WRITER, file, key, JSON.stringify(value)], { stdio: 'inherit' })
}

/** The real file system, counting the calls the read path makes on the store file. */
function countingFileSystem(file: () => string) {
  const calls = { stat: 0, fstat: 0, open: 0 }
  const io: FileSystem = {
    ...nodeFileSystem,
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
  const store = await AnyStore.open(io ? { file, fs: io } : { file })
  stores.push(store)
  return store
}

describe('reads of an unchanged store', () => {
  it('make no call on the store path once loaded: one fstat where link counts are trusted, else one stat', async () => {
    setElsewhere(file, 'a', 1)
    const { io, calls } = countingFileSystem(() => file)
    const reader = await openReader(io)
    expect(await reader.get('a')).toBe(1)
    const before = { ...calls }
    for (let i = 0; i < 50; i++) expect(await reader.get('a')).toBe(1)
    expect(calls.open - before.open).toBe(0)
    if (linkCountRevealsReplacement(dir)) {
      expect(calls.stat - before.stat).toBe(0)
      expect(calls.fstat - before.fstat).toBe(50)
    } else {
      expect(calls.stat - before.stat).toBe(50)
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

describe('a store file changed outside the store', () => {
  it('reads as empty once deleted', async () => {
    setElsewhere(file, 'n', 1)
    const reader = await openReader()
    expect(await reader.get('n')).toBe(1)
    fs.unlinkSync(file)
    expect(await reader.get('n')).toBeUndefined()
    expect(await reader.size()).toBe(0)
  })

  it('reads the version renamed over it (a restore from a copy)', async () => {
    setElsewhere(file, 'n', 1)
    const copy = join(dir, 'copy.anystore')
    fs.copyFileSync(file, copy)
    setElsewhere(file, 'n', 2)
    const reader = await openReader()
    expect(await reader.get('n')).toBe(2)
    fs.renameSync(copy, file)
    expect(await reader.get('n')).toBe(1)
  })
})
