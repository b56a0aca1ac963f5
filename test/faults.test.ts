import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { openWithFileSystem } from '../src/anystore.js'
import { AnyStore, type AnyStoreOptions } from '../src/index.js'
import { COMMIT_STEPS, FaultyFileSystem } from './faulty-fs.js'

/**
 * Faults injected through openWithFileSystem() at every step of a commit. Whatever fails, the
 * error reaches the caller, the file keeps a complete version, no temp file is left, and the
 * store works again once the fault clears.
 */

const root = mkdtempSync(join(tmpdir(), 'anystore-faults-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

const CODES = ['ENOSPC', 'EIO', 'EACCES'] as const

let counter = 0
let injected = 0

function temps(file: string): string[] {
  return readdirSync(join(file, '..')).filter((n) => n.endsWith('.tmp'))
}

/** A store with committed content, plus a second instance that goes through the faulty seam. */
async function seeded(options: AnyStoreOptions = {}) {
  const file = join(root, `case-${counter++}`, 'store.db')
  const clean = await AnyStore.open({ file, ...options })
  await clean.set('a', 'old')
  await clean.set('b', 1)
  await clean.close()
  const io = new FaultyFileSystem()
  const store = await openWithFileSystem({ file, ...options }, io)
  return { file, io, store }
}

async function fileContent(file: string): Promise<[unknown, unknown][]> {
  const reader = await AnyStore.open({ file })
  try {
    return await reader.entries()
  } finally {
    await reader.close()
  }
}

/**
 * The same version of the store file: every byte equal but the status byte, which a failed
 * commit may have set before its rename failed (docs/FORMAT.md); the content is the same.
 */
function sameVersion(now: Buffer, before: Buffer): boolean {
  const content = (bytes: Buffer) => bytes.subarray(0, bytes.length - 1)
  return now.length === before.length && content(now).equals(content(before)) && (now.at(-1) ?? 9) <= 1
}

type Write = 'set' | 'delete' | 'run' | 'clear'

async function write(store: AnyStore, kind: Write): Promise<unknown> {
  switch (kind) {
    case 'set':
      return store.set('a', 'new')
    case 'delete':
      return store.delete('a')
    case 'clear':
      return store.clear()
    case 'run':
      return store.run(async (tx) => {
        await tx.set('a', 'new')
        await tx.set('b', ((await tx.get('b')) as number) + 1)
      })
  }
}

describe.each(CODES)('%s', (code) => {
  test.each(COMMIT_STEPS)(
    `at step %s: caller sees ${code}, nothing is lost, the store recovers`,
    async (step) => {
      for (const kind of ['set', 'run', 'delete', 'clear'] as const) {
        const { file, io, store } = await seeded()
        const before = readFileSync(file)
        io.fault = { step, code }
        await expect(write(store, kind)).rejects.toMatchObject({ code })
        expect(io.fired).toBeGreaterThan(0)
        injected += io.fired
        io.fault = undefined

        expect(temps(file)).toStrictEqual([])
        const content = await fileContent(file)
        if (io.firedAfterRename) {
          // The rename happened; the caller was told the commit may not be durable.
          expect(['fstat-new-file', 'open-dir', 'fsync-dir']).toContain(step)
          expect(content).not.toStrictEqual([
            ['a', 'old'],
            ['b', 1],
          ])
        } else {
          expect(sameVersion(readFileSync(file), before)).toBe(true)
          expect(content).toStrictEqual([
            ['a', 'old'],
            ['b', 1],
          ])
        }
        // The faulty instance reads what the file holds, and writes again.
        expect(await store.entries()).toStrictEqual(content)
        await store.set('after', step)
        expect(await fileContent(file)).toStrictEqual([
          ...content.filter(([k]) => k !== 'after'),
          ['after', step],
        ])
        expect(temps(file)).toStrictEqual([])
        await store.close()
      }
    },
  )
})

describe('other faults', () => {
  test('a failing read while loading reaches the caller; the next read works', async () => {
    const { file, io, store } = await seeded()
    const writer = await AnyStore.open({ file })
    await writer.set('a', 'changed elsewhere')
    io.fault = { step: 'read-file', code: 'EIO' }
    await expect(store.get('a')).rejects.toMatchObject({ code: 'EIO' })
    await expect(store.set('c', 1)).rejects.toMatchObject({ code: 'EIO' })
    io.fault = undefined
    expect(await store.get('a')).toBe('changed elsewhere')
    await store.set('c', 1)
    expect(await writer.get('c')).toBe(1)
    await writer.close()
    await store.close()
  })

  test('short writes (write(2) writing fewer bytes than asked) still produce a complete file', async () => {
    const { file, io, store } = await seeded()
    io.partialWrites = 7
    const big = 'x'.repeat(100_000)
    await store.set('big', big)
    await store.run(async (tx) => tx.set('b', 2))
    expect(await fileContent(file)).toStrictEqual([
      ['a', 'old'],
      ['b', 2],
      ['big', big],
    ])
    await store.close()
  })

  test('a fault that persists for many commits: every write fails, none is half-applied', async () => {
    const { file, io, store } = await seeded()
    const before = readFileSync(file)
    io.fault = { step: 'fsync-temp', code: 'ENOSPC' }
    const outcomes = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => store.set(`k${i}`, i)),
    )
    expect(
      outcomes.every(
        (o) => o.status === 'rejected' && (o.reason as { code?: string }).code === 'ENOSPC',
      ),
    ).toBe(true)
    injected += io.fired
    io.fault = undefined
    expect(readFileSync(file).equals(before)).toBe(true)
    expect(await store.has('k0')).toBe(false)
    expect(temps(file)).toStrictEqual([])
    await store.set('k0', 0)
    expect(await store.get('k0')).toBe(0)
    await store.close()
  })

  test('a temp file that could not be removed is removed by the next lock holder', async () => {
    const { file, io, store } = await seeded()
    // The write fails, and so does the cleanup: the temp stays behind for now.
    let failUnlink = true
    const unlink = io.unlinkSync.bind(io)
    io.unlinkSync = (path: string) => {
      if (failUnlink) throw Object.assign(new Error('EIO: injected'), { code: 'EIO' })
      unlink(path)
    }
    io.fault = { step: 'fsync-temp', code: 'EIO' }
    await expect(store.set('a', 'new')).rejects.toMatchObject({ code: 'EIO' })
    expect(temps(file)).toHaveLength(1)
    io.fault = undefined
    failUnlink = false
    // The next acquisition reads the holder record left in the lockfile and removes the named
    // temp (this instance swept the directory already, so the record is what finds it).
    await store.set('c', 3)
    expect(temps(file)).toStrictEqual([])
    const other = await AnyStore.open({ file })
    expect(await other.entries()).toStrictEqual([
      ['a', 'old'],
      ['b', 1],
      ['c', 3],
    ])
    await other.close()
    await store.close()
  })

  test('faults were really injected', () => {
    // Every step, code and write kind above fired at least once; this is the total.
    console.log(`[faults] injected=${injected} steps=${COMMIT_STEPS.length} codes=${CODES.length}`)
    expect(injected).toBeGreaterThanOrEqual(COMMIT_STEPS.length * CODES.length * 4)
  })
})
