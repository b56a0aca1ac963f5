import {
  chownSync,
  existsSync,
  linkSync,
  lstatSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { AnyStore, InvalidPathError, type LockMode } from '../src/index.js'
import { nextMessage, rejection, spawnFixture, tempDir } from './helpers.js'

const modes: LockMode[] = ['flock', 'proper-lockfile']

describe.each(modes)('lock %s: <file>.lock is never followed or shared', (lock) => {
  it('a symbolic link planted at <file>.lock fails the write and leaves its target untouched', async () => {
    const dir = tempDir()
    const file = join(dir, 's.db')
    const victim = join(dir, 'victim')
    const original = Buffer.from('precious bytes that must not be overwritten\n')
    writeFileSync(victim, original)
    symlinkSync(victim, `${file}.lock`)
    const store = await AnyStore.open({ file, lock })
    const error = await rejection(store.set('k', 'v'))
    expect(error).toBeInstanceOf(InvalidPathError)
    expect(error.code).toBe('ERR_ANYSTORE_INVALID_PATH')
    expect(error.message).toContain(`${file}.lock`)
    expect(readFileSync(victim)).toEqual(original)
    expect(lstatSync(`${file}.lock`).isSymbolicLink()).toBe(true)
    expect(existsSync(file)).toBe(false)
    await store.close()
  })

  it('a dangling symbolic link at <file>.lock fails the write and creates nothing', async () => {
    const dir = tempDir()
    const file = join(dir, 's.db')
    const target = join(dir, 'created-through-the-link')
    symlinkSync(target, `${file}.lock`)
    const store = await AnyStore.open({ file, lock })
    expect((await rejection(store.set('k', 'v'))).code).toBe('ERR_ANYSTORE_INVALID_PATH')
    expect(existsSync(target)).toBe(false)
    expect(existsSync(file)).toBe(false)
    await store.close()
  })

  it('a <file>.lock owned by another user is refused', async () => {
    const dir = tempDir()
    const file = join(dir, 's.db')
    writeFileSync(`${file}.lock`, '', { mode: 0o600 })
    // As root (these tests run as root) the file can be given away; as another user the
    // open fails with EACCES anyway, since the lockfile is 0600.
    chownSync(`${file}.lock`, 4321, 4321)
    const store = await AnyStore.open({ file, lock })
    expect((await rejection(store.set('k', 'v'))).code).toBe('ERR_ANYSTORE_INVALID_PATH')
    expect(existsSync(file)).toBe(false)
    await store.close()
  })

  it('a <file>.lock with a second hard link is refused, and the other name left untouched', async () => {
    const dir = tempDir()
    const file = join(dir, 's.db')
    const other = join(dir, 'other')
    const original = Buffer.from('another file that shares the inode\n')
    writeFileSync(other, original, { mode: 0o600 })
    linkSync(other, `${file}.lock`)
    const store = await AnyStore.open({ file, lock })
    expect((await rejection(store.set('k', 'v'))).code).toBe('ERR_ANYSTORE_INVALID_PATH')
    expect(readFileSync(other)).toEqual(original)
    await store.close()
  })
})

describe('proper-lockfile: the lock directory', () => {
  it('is 0700 while held, even under umask 0', async () => {
    const file = join(tempDir(), 's.db')
    const child = spawnFixture('plock-mode.mjs', [file])
    expect(await nextMessage(child)).toBe(0o700)
  })
})
