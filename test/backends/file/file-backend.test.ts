import * as fs from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { type FileSystem, nodeFileSystem } from '../../../src/backends/file/fsio.js'
import { openWithFileSystem } from '../../../src/anystore.js'
import { AnyStore } from '../../../src/index.js'
import { tempDir } from '../../helpers.js'

/** The real file system, counting writes to the lockfile (the lock record). */
function countingRecordWrites() {
  const lockFds = new Set<number>()
  const counts = { recordWrites: 0 }
  const io: FileSystem = {
    ...nodeFileSystem,
    openSync: (path, flags, mode) => {
      const fd = nodeFileSystem.openSync(path, flags, mode)
      if (path.endsWith('.lock')) lockFds.add(fd)
      return fd
    },
    closeSync: (fd) => {
      lockFds.delete(fd)
      nodeFileSystem.closeSync(fd)
    },
    writeSync: (fd, buffer, offset, length, position) => {
      if (lockFds.has(fd)) counts.recordWrites++
      return nodeFileSystem.writeSync(fd, buffer, offset, length, position)
    },
  }
  return { io, counts }
}

/** The holder record in `<file>.lock` (docs/FORMAT.md): pid and temp-name token. */
function record(file: string): { pid: number; token: string } {
  const bytes = fs.readFileSync(`${file}.lock`)
  return { pid: bytes.readUInt32BE(4), token: bytes.toString('hex', 8, 16) }
}

function temps(file: string): string[] {
  return fs.readdirSync(join(file, '..')).filter((name) => name.endsWith('.tmp'))
}

describe('taking over the lock record', () => {
  it('is rewritten only when another holder came in between', async () => {
    const file = join(tempDir(), 'store.db')
    const { io, counts } = countingRecordWrites()
    const store = await openWithFileSystem({ file }, io)
    const other = await AnyStore.open({ file })

    for (let i = 0; i < 5; i++) await store.set('a', i)
    expect(counts.recordWrites).toBe(1)
    const ours = record(file)
    expect(ours.pid).toBe(process.pid)

    // Another instance (its own temp name) holds the lock once: the record names it now.
    await other.set('b', 1)
    expect(record(file).token).not.toBe(ours.token)

    await store.run(async (tx) => tx.set('a', ((await tx.get('a')) as number) + 1))
    expect(counts.recordWrites).toBe(2)
    expect(record(file)).toStrictEqual(ours)
    expect(await other.get('a')).toBe(5)
    expect(temps(file)).toStrictEqual([])
    await other.close()
    await store.close()
  })

  it('a file or link already at our temp name is removed and the commit goes ahead', async () => {
    const dir = tempDir()
    const file = join(dir, 'store.db')
    const victim = join(dir, 'victim.txt')
    fs.writeFileSync(victim, 'untouched')
    const store = await AnyStore.open({ file })
    await store.set('a', 1)
    const temp = `${file}.${record(file).token}.tmp`

    fs.writeFileSync(temp, 'left over')
    await store.set('a', 2)
    expect(temps(file)).toStrictEqual([])

    fs.symlinkSync(victim, temp)
    await store.set('a', 3)
    expect(temps(file)).toStrictEqual([])
    expect(fs.readFileSync(victim, 'utf8')).toBe('untouched')

    const reader = await AnyStore.open({ file })
    expect(await reader.get('a')).toBe(3)
    await reader.close()
    await store.close()
  })
})
