import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { AnyStore, newKey } from '../src/index.js'

/**
 * Every kind of bad file at the store path must end in a typed error from open() (or from
 * the first read or write), and must leave the file exactly as it was.
 */

const fixturePath = fileURLToPath(new URL('./fixtures/unprivileged.mjs', import.meta.url))
const root = mkdtempSync(join(tmpdir(), 'anystore-bad-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

const CONTENT: [string, unknown][] = [
  ['greeting', 'hello'],
  ['n', 42],
  ['nested', { list: [1, 2n, new Date(0)], map: new Map([['k', 'v']]) }],
]

/** The bytes of a small real store holding CONTENT. */
let good: Buffer
beforeAll(async () => {
  const file = join(root, 'good', 'store.db')
  const store = await AnyStore.open({ file })
  for (const [k, v] of CONTENT) await store.set(k, v)
  await store.close()
  good = readFileSync(file)
})

let counter = 0
/** Writes `bytes` at a fresh path and returns it. */
function place(bytes: Uint8Array | string): string {
  const dir = join(root, `case-${counter++}`)
  mkdirSync(dir)
  const file = join(dir, 'store.db')
  writeFileSync(file, bytes)
  return file
}

/** Opens the file, expects one of `codes`, and checks that the file was not touched. */
async function expectRefused(file: string, codes: string[]): Promise<string> {
  const before = readFileSync(file)
  let code: string | undefined
  try {
    const store = await AnyStore.open({ file })
    await store.close()
  } catch (error) {
    code = (error as { code?: string }).code
  }
  expect(code, 'open() must fail with a typed error').toBeDefined()
  expect(codes).toContain(code)
  expect(readFileSync(file).equals(before)).toBe(true)
  return code!
}

const CORRUPT = 'ERR_ANYSTORE_CORRUPT_FILE'
const NOT_OURS = 'ERR_ANYSTORE_NOT_ANYSTORE_FILE'
const NEWER = 'ERR_ANYSTORE_UNSUPPORTED_FORMAT'
const WRONG_KEY = 'ERR_ANYSTORE_WRONG_KEY'

/**
 * Recomputes the version 3 header checksum (bytes 156..160: first 4 bytes of SHA-256 over
 * bytes 0..156).
 */
function withChecksum(bytes: Buffer): Buffer {
  const out = Buffer.from(bytes)
  createHash('sha256').update(out.subarray(0, 156)).digest().copy(out, 156, 0, 4)
  return out
}

describe('files that are not (or no longer) a valid store', () => {
  test('the good store opens and holds its content (the baseline)', async () => {
    const store = await AnyStore.open({ file: place(good) })
    expect(await store.entries()).toStrictEqual(CONTENT)
    await store.close()
  })

  test('an empty file', async () => {
    await expectRefused(place(''), [NOT_OURS])
  })

  test('a one-byte file', async () => {
    await expectRefused(place('x'), [NOT_OURS])
    await expectRefused(place('A'), [CORRUPT]) // a prefix of the magic: a truncated store
  })

  test('the store truncated at every offset', async () => {
    const codes = new Map<string, number>()
    for (let length = 0; length < good.length; length++) {
      const code = await expectRefused(
        place(good.subarray(0, length)),
        length === 0 ? [NOT_OURS] : [CORRUPT],
      )
      codes.set(code, (codes.get(code) ?? 0) + 1)
    }
    expect(codes.get(CORRUPT)).toBe(good.length - 1)
  })

  test('every single-bit flip of the store is detected, except in the status byte, which holds no content', async () => {
    const file = place(good)
    const codes = new Map<string, number>()
    // The last byte is the status byte (docs/FORMAT.md): outside the authenticated data, and
    // only read as a hint that the file was superseded. A flip there leaves the content intact.
    const contentBits = (good.length - 1) * 8
    for (let bit = contentBits; bit < good.length * 8; bit++) {
      const bytes = Buffer.from(good)
      bytes[bit >> 3]! ^= 1 << (bit & 7)
      writeFileSync(file, bytes)
      const store = await AnyStore.open({ file })
      expect(await store.entries()).toStrictEqual(CONTENT)
      await store.close()
    }
    for (let bit = 0; bit < contentBits; bit++) {
      const bytes = Buffer.from(good)
      bytes[bit >> 3]! ^= 1 << (bit & 7)
      writeFileSync(file, bytes)
      const code = await expectRefused(file, [CORRUPT, NOT_OURS, NEWER, WRONG_KEY])
      codes.set(code, (codes.get(code) ?? 0) + 1)
    }
    console.log(`bit flips of a ${good.length}-byte store:`, Object.fromEntries(codes))
    // Flips in the magic are "not ours", high version bits "newer"; the rest is corruption.
    expect(codes.get(NOT_OURS)).toBe(64)
    expect(codes.get(CORRUPT)).toBeGreaterThan(contentBits - 64 - 32)
    // Afterwards the intact bytes still open: nothing in the decoder was left broken.
    writeFileSync(file, good)
    const store = await AnyStore.open({ file })
    expect(await store.entries()).toStrictEqual(CONTENT)
    await store.close()
  })

  test('random bytes, with and without the magic in front', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), fc.boolean(), async (random, magic) => {
        const bytes = magic ? Buffer.concat([Buffer.from('ANYSTORE'), random]) : Buffer.from(random)
        await expectRefused(place(bytes), [CORRUPT, NOT_OURS, NEWER, WRONG_KEY])
      }),
      { numRuns: 200 },
    )
  })

  test('a JSON file', async () => {
    await expectRefused(place(JSON.stringify({ greeting: 'hello', n: 42 })), [NOT_OURS])
  })

  test('a file from a newer format version, or with flags this version does not know', async () => {
    const newer = Buffer.from(good)
    newer.writeUInt16BE(4, 8)
    await expectRefused(place(withChecksum(newer)), [NEWER])
    const flagged = Buffer.from(good)
    flagged.writeUInt16BE(0x8000, 10)
    await expectRefused(place(withChecksum(flagged)), [NEWER])
  })

  test('a store written with another key', async () => {
    const file = join(root, `case-${counter++}`, 'store.db')
    const key = newKey()
    const other = await AnyStore.open({ file, encryptionKey: key })
    await other.set('secret', 1)
    await other.close()
    await expectRefused(file, [WRONG_KEY])
    const before = readFileSync(file)
    await expect(AnyStore.open({ file, encryptionKey: Buffer.alloc(16, 7) })).rejects.toMatchObject(
      {
        code: WRONG_KEY,
      },
    )
    expect(readFileSync(file).equals(before)).toBe(true)
    const right = await AnyStore.open({ file, encryptionKey: key })
    expect(await right.get('secret')).toBe(1)
    await right.close()
  })

  test('a file that goes bad under an open store: reads and writes fail, the file is kept', async () => {
    const file = place(good)
    const store = await AnyStore.open({ file })
    const garbage = Buffer.from(good)
    garbage[100]! ^= 0xff
    writeFileSync(`${file}.new`, garbage)
    // Replaced the way another writer would (rename), so the store notices a new version:
    // a write at once (it checks fully under the lock), a read within FULL_CHECK_EVERY_MS.
    const { renameSync } = await import('node:fs')
    renameSync(`${file}.new`, file)
    await expect(store.set('n', 43)).rejects.toMatchObject({ code: CORRUPT })
    await expect(store.run(async (tx) => tx.set('n', 44))).rejects.toMatchObject({ code: CORRUPT })
    await expect(store.get('n')).rejects.toMatchObject({ code: CORRUPT })
    expect(readFileSync(file).equals(garbage)).toBe(true)
    await store.close()
  })
})

describe('paths that cannot hold a store', () => {
  test('a directory where the file should be', async () => {
    const file = join(root, `case-${counter++}`, 'store.db')
    mkdirSync(file, { recursive: true })
    await expect(AnyStore.open({ file })).rejects.toMatchObject({
      code: 'ERR_ANYSTORE_INVALID_PATH',
    })
    expect(lstatSync(file).isDirectory()).toBe(true)
  })

  test('a dangling symbolic link', async () => {
    const dir = join(root, `case-${counter++}`)
    mkdirSync(dir)
    const file = join(dir, 'store.db')
    symlinkSync(join(dir, 'missing-target.db'), file)
    await expect(AnyStore.open({ file })).rejects.toMatchObject({
      code: 'ERR_ANYSTORE_INVALID_PATH',
    })
    expect(lstatSync(file).isSymbolicLink()).toBe(true)
    expect(existsSync(join(dir, 'missing-target.db'))).toBe(false)
  })

  test('a symbolic link loop', async () => {
    const dir = join(root, `case-${counter++}`)
    mkdirSync(dir)
    symlinkSync(join(dir, 'b.db'), join(dir, 'a.db'))
    symlinkSync(join(dir, 'a.db'), join(dir, 'b.db'))
    await expect(AnyStore.open({ file: join(dir, 'a.db') })).rejects.toMatchObject({
      code: 'ERR_ANYSTORE_INVALID_PATH',
    })
    expect(lstatSync(join(dir, 'a.db')).isSymbolicLink()).toBe(true)
  })

  test('a path under a regular file', async () => {
    const file = place(good)
    await expect(AnyStore.open({ file: join(file, 'inner.db') })).rejects.toMatchObject({
      code: 'ERR_ANYSTORE_INVALID_PATH',
    })
    expect(readFileSync(file).equals(good)).toBe(true)
  })

  test('a file over maxFileSize is refused before it is read', async () => {
    const file = place(good)
    await expect(AnyStore.open({ file, maxFileSize: good.length - 1 })).rejects.toMatchObject({
      code: 'ERR_ANYSTORE_FILE_TOO_LARGE',
    })
    expect(readFileSync(file).equals(good)).toBe(true)
    const store = await AnyStore.open({ file, maxFileSize: good.length })
    expect(await store.get('n')).toBe(42)
    await store.close()
  })

  test('a symbolic link to a store: commits replace the target and keep the link', async () => {
    const target = place(good)
    const link = join(root, `case-${counter++}-link.db`)
    symlinkSync(target, link)
    const store = await AnyStore.open({ file: link })
    await store.set('via', 'link')
    await store.close()
    expect(lstatSync(link).isSymbolicLink()).toBe(true)
    const direct = await AnyStore.open({ file: target })
    expect(await direct.get('via')).toBe('link')
    expect(await direct.get('greeting')).toBe('hello')
    await direct.close()
  })

  test('a path with unicode and spaces', async () => {
    const file = join(root, `case-${counter++}`, 'dír with spaces', 'ünïcødé 🗄 store.db')
    const store = await AnyStore.open({ file })
    await store.set('ключ', 'значение')
    await store.close()
    expect(existsSync(file)).toBe(true)
    const again = await AnyStore.open({ file })
    expect(await again.get('ключ')).toBe('значение')
    await again.close()
  })

  test("'~/' expands to the home directory", async () => {
    const home = join(root, `case-${counter++}`, 'home')
    mkdirSync(home, { recursive: true })
    const saved = process.env.HOME
    process.env.HOME = home
    try {
      const store = await AnyStore.open({ file: '~/.config/app/store.db' })
      expect(store.file).toBe(join(home, '.config', 'app', 'store.db'))
      await store.set('k', 'v')
      await store.close()
      expect(existsSync(join(home, '.config', 'app', 'store.db'))).toBe(true)
      expect(existsSync(join(process.cwd(), '~'))).toBe(false)
    } finally {
      process.env.HOME = saved
    }
  })
})

describe('permissions (checked as an ordinary user: root ignores mode bits)', () => {
  const isRoot = process.getuid?.() === 0
  const NOBODY = 65534

  /**
   * Runs a scenario of test/fixtures/unprivileged.mjs, as `nobody` when the suite runs as root
   * (the fixture loads its modules as root, then drops to `nobody`).
   */
  function runUnprivileged(scenario: string, file: string) {
    const result = spawnSync(process.execPath, [fixturePath, scenario, file], {
      encoding: 'utf8',
      env: isRoot ? { ...process.env, ANYSTORE_DROP_TO: String(NOBODY) } : process.env,
    })
    if (result.status !== 0) throw new Error(`fixture failed: ${result.stderr}`)
    return JSON.parse(result.stdout) as {
      uid: number
      steps: { name: string; ok: boolean; value?: unknown; code?: string }[]
    }
  }

  /** A directory the unprivileged child owns, holding a copy of the good store it owns too. */
  function ownedStore(): string {
    const dir = join(root, `case-${counter++}`)
    mkdirSync(dir, { mode: 0o700 })
    const file = join(dir, 'store.db')
    writeFileSync(file, good, { mode: 0o600 })
    if (isRoot) {
      chmodSync(root, 0o711) // let the child reach its directory
      chownSync(dir, NOBODY, NOBODY)
      chownSync(file, NOBODY, NOBODY)
    }
    return file
  }

  test('a file with mode 000 cannot be opened: EACCES reaches the caller, the file is kept', () => {
    const file = ownedStore()
    chmodSync(file, 0o000)
    const { uid, steps } = runUnprivileged('mode-000', file)
    expect(uid).not.toBe(0)
    expect(steps).toStrictEqual([{ name: 'open', ok: false, code: 'EACCES' }])
    expect(readFileSync(file).equals(good)).toBe(true)
  })

  test('a read-only store file: reads work, a write fails with EACCES before replacing it, and works once it is writable', async () => {
    // A commit first sets the status byte of the version it replaces (docs/DESIGN.md); a file
    // that may not be written is therefore never replaced behind its readers' backs.
    const file = ownedStore()
    chmodSync(file, 0o400)
    const { uid, steps } = runUnprivileged('read-only-file', file)
    expect(uid).not.toBe(0)
    expect(steps).toStrictEqual([
      { name: 'get', ok: true, value: 'hello' },
      { name: 'set', ok: false, code: 'EACCES' },
      { name: 'get after the failed write', ok: true, value: 'hello' },
      { name: 'set once writable', ok: true },
      { name: 'get after recovery', ok: true, value: 'changed' },
    ])
    expect(readdirSync(join(file, '..')).filter((n) => n.endsWith('.tmp'))).toStrictEqual([])
  })

  test.skipIf(!isRoot)(
    "another user's lockfile it may not open: a write fails with InvalidPathError, not a raw EACCES",
    () => {
      const file = ownedStore()
      // Left there by root, readable by all: the child can read the store but not the lockfile.
      writeFileSync(`${file}.lock`, '', { mode: 0o644 })
      const { uid, steps } = runUnprivileged('foreign-lockfile', file)
      expect(uid).not.toBe(0)
      expect(steps).toStrictEqual([
        { name: 'get', ok: true, value: 'hello' },
        { name: 'set', ok: false, code: 'ERR_ANYSTORE_INVALID_PATH' },
      ])
      expect(readFileSync(file).equals(good)).toBe(true)
    },
  )

  test('a read-only directory: reads work, writes fail with EACCES, and work once it is writable', async () => {
    const file = ownedStore()
    chmodSync(join(file, '..'), 0o500)
    const { uid, steps } = runUnprivileged('read-only-dir', file)
    expect(uid).not.toBe(0)
    expect(steps).toStrictEqual([
      { name: 'get', ok: true, value: 'hello' },
      { name: 'set', ok: false, code: 'EACCES' },
      { name: 'run', ok: false, code: 'EACCES' },
      { name: 'get after failed writes', ok: true, value: 'hello' },
      { name: 'set once writable', ok: true },
      { name: 'get after recovery', ok: true, value: 'changed' },
    ])
    expect(readdirSync(join(file, '..')).filter((n) => n.endsWith('.tmp'))).toStrictEqual([])
    const store = await AnyStore.open({ file })
    expect(await store.get('n')).toBe(42)
    await store.close()
  })

  test('a read-only directory whose lockfile exists: the temp file cannot be created, nothing changes', async () => {
    const file = ownedStore()
    const first = await AnyStore.open({ file })
    await first.set('greeting', 'hello') // creates <file>.lock
    await first.close()
    if (isRoot) chownSync(`${file}.lock`, NOBODY, NOBODY)
    if (isRoot) chownSync(file, NOBODY, NOBODY)
    chmodSync(join(file, '..'), 0o500)
    const { steps } = runUnprivileged('read-only-dir', file)
    expect(steps.slice(0, 4)).toStrictEqual([
      { name: 'get', ok: true, value: 'hello' },
      { name: 'set', ok: false, code: 'EACCES' },
      { name: 'run', ok: false, code: 'EACCES' },
      { name: 'get after failed writes', ok: true, value: 'hello' },
    ])
    expect(steps[4]).toStrictEqual({ name: 'set once writable', ok: true })
    expect(readdirSync(join(file, '..')).filter((n) => n.endsWith('.tmp'))).toStrictEqual([])
    const store = await AnyStore.open({ file })
    expect(await store.entries()).toStrictEqual([['greeting', 'changed'], ...CONTENT.slice(1)])
    await store.close()
  })
})
