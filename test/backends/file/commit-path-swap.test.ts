import { chmodSync, lstatSync, readFileSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { openWithFileSystem } from '../../../src/anystore.js'
import { type FileSystem, nodeFileSystem } from '../../../src/backends/file/fsio.js'
import { newKey } from '../../../src/index.js'
import { rejection, tempDir } from '../../helpers.js'

/**
 * A store file the process may only read is loaded read-only; a commit then opens the path again
 * to set the replaced version's status byte. Someone who can write the directory may swap the
 * path between the refresh under the lock and that open: the byte must not land in the file put
 * there, or behind a link put there. The tests run as root, so the read-only open that a user
 * without write permission would get is made by refusing 'r+' on the store file, and the swap
 * happens at the temp file's fsync, inside the commit.
 */
async function commitWithSwap(swap: (file: string, dir: string) => void) {
  const dir = tempDir()
  const file = join(dir, 'store.db')
  const encryptionKey = newKey()
  const first = await openWithFileSystem({ file, encryptionKey }, nodeFileSystem)
  await first.set('a', 'x')
  await first.close()
  chmodSync(file, 0o400)
  let swapped = false
  const io: FileSystem = {
    ...nodeFileSystem,
    openSync(path, flags, mode) {
      if (path === file && flags === 'r+' && (statSync(file).mode & 0o200) === 0) {
        throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' })
      }
      return nodeFileSystem.openSync(path, flags, mode)
    },
    fsyncSync(fd) {
      nodeFileSystem.fsyncSync(fd)
      if (!swapped) {
        swapped = true
        swap(file, dir)
      }
    },
  }
  const store = await openWithFileSystem({ file, encryptionKey }, io)
  const error = await rejection(store.set('b', 'y'))
  await store.close()
  return { error, swapped, file }
}

describe('a commit over a read-only loaded version', () => {
  it('does not write through a symbolic link put at the path during the commit', async () => {
    const dir = tempDir()
    const victim = join(dir, 'victim.txt')
    writeFileSync(victim, 'A'.repeat(400))
    const { error, swapped, file } = await commitWithSwap((path, storeDir) => {
      renameSync(path, join(storeDir, 'moved'))
      symlinkSync(victim, path)
    })
    expect(swapped).toBe(true)
    expect(error.code).toBe('ERR_ANYSTORE_INVALID_PATH')
    expect(readFileSync(victim, 'utf8')).toBe('A'.repeat(400))
    expect(lstatSync(file).isSymbolicLink()).toBe(true)
  })

  it('does not mark another file put at the path during the commit', async () => {
    let other = Buffer.alloc(0)
    const { error, swapped, file } = await commitWithSwap((path, storeDir) => {
      const copy = join(storeDir, 'copy')
      writeFileSync(copy, readFileSync(path))
      renameSync(copy, path)
      other = readFileSync(path)
    })
    expect(swapped).toBe(true)
    expect(error.code).toBe('ERR_ANYSTORE_INVALID_PATH')
    expect(readFileSync(file)).toEqual(other)
  })
})
