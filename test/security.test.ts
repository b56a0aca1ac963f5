import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { inspect } from 'node:util'
import { afterAll, describe, expect, test, vi } from 'vitest'
import { deriveKeys, parseKey } from '../src/crypto.js'
import { openWithFileSystem } from '../src/anystore.js'
import type { FileSystem } from '../src/backends/file/fsio.js'
import { AnyStore, newKey } from '../src/index.js'
import { FaultyFileSystem } from './faulty-fs.js'

const root = mkdtempSync(join(tmpdir(), 'anystore-security-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

let counter = 0
const freshDir = () => join(root, `case-${counter++}`)
const mode = (path: string) => statSync(path).mode & 0o777

/** Every form a key could leak in: raw bytes, base64 (padded, unpadded, URL-safe), hex, derived keys. */
function keyForms(key: string): Buffer[] {
  const raw = Buffer.from(parseKey(key))
  const derived = deriveKeys(raw)
  return [
    raw,
    Buffer.from(key),
    Buffer.from(raw.toString('base64')),
    Buffer.from(raw.toString('base64url')),
    Buffer.from(raw.toString('hex')),
    derived.encryption,
    derived.keyCheck,
  ]
}

function expectNoKey(haystack: Buffer | string, key: string): void {
  const bytes = typeof haystack === 'string' ? Buffer.from(haystack) : haystack
  for (const form of keyForms(key)) expect(bytes.includes(form)).toBe(false)
}

describe('file and directory modes (with umask 0, so the store sets them itself)', () => {
  test.each(['flock', 'proper-lockfile'] as const)(
    '%s: data, temp and lock files are 0600; new directories 0700',
    async (lock) => {
      const previous = process.umask(0)
      try {
        const base = freshDir()
        const file = join(base, 'a', 'b', 'store.db')
        const tempModes: number[] = []
        const io = new FaultyFileSystem()
        const rename = io.renameSync.bind(io)
        // Observe each temp file right before it replaces the store.
        const observing: FileSystem = Object.assign(io, {
          renameSync(from: string, to: string) {
            tempModes.push(mode(from))
            rename(from, to)
          },
        })
        const store = await openWithFileSystem({ file, lock }, observing)
        await store.set('k', 'v')
        await store.run((tx) => tx.set('k2', 'v2'))
        await store.close()
        expect(tempModes).toStrictEqual([0o600, 0o600])
        expect(mode(file)).toBe(0o600)
        expect(mode(`${file}.lock`)).toBe(0o600)
        expect(mode(base)).toBe(0o700)
        expect(mode(join(base, 'a'))).toBe(0o700)
        expect(mode(join(base, 'a', 'b'))).toBe(0o700)
      } finally {
        process.umask(previous)
      }
    },
  )
})

describe('the key never leaks', () => {
  test('not into the data file, the lockfile or any temp', async () => {
    const key = newKey()
    const file = join(freshDir(), 'store.db')
    const store = await AnyStore.open({ file, encryptionKey: key, compress: false })
    for (let i = 0; i < 20; i++) await store.set(`k${i}`, 'x'.repeat(i * 50))
    await store.close()
    for (const name of readdirSync(join(file, '..'))) {
      expectNoKey(readFileSync(join(file, '..', name)), key)
    }
  })

  test('not into errors: wrong key, corrupt file, invalid key, lock timeout', async () => {
    const key = newKey()
    const other = newKey()
    const file = join(freshDir(), 'store.db')
    const store = await AnyStore.open({ file, encryptionKey: key })
    await store.set('a', 1)
    const errors: unknown[] = []
    errors.push(await AnyStore.open({ file, encryptionKey: other }).catch((e) => e))
    errors.push(
      await AnyStore.open({ file: `${file}.x`, encryptionKey: `${key.slice(0, 10)}` }).catch(
        (e) => e,
      ),
    )
    errors.push(await AnyStore.open({ file, encryptionKey: `${key}!` }).catch((e) => e))
    errors.push(
      await AnyStore.open({ file, encryptionKey: key, lockTimeoutMs: -1 }).catch((e) => e),
    )
    errors.push(await store.set('f', () => 1).catch((e) => e))
    const bytes = readFileSync(file)
    bytes[bytes.length - 2]! ^= 1 // in the tag (the last byte is the unauthenticated status)
    const { writeFileSync } = await import('node:fs')
    writeFileSync(`${file}.corrupt`, bytes)
    errors.push(
      await AnyStore.open({ file: `${file}.corrupt`, encryptionKey: key }).catch((e) => e),
    )
    await store.close()
    expect(errors.map((e) => (e as { code?: string }).code)).toStrictEqual([
      'ERR_ANYSTORE_WRONG_KEY',
      'ERR_ANYSTORE_INVALID_KEY',
      'ERR_ANYSTORE_INVALID_KEY',
      'ERR_ANYSTORE_INVALID_OPTION',
      'ERR_ANYSTORE_UNSUPPORTED_VALUE',
      'ERR_ANYSTORE_CORRUPT_FILE',
    ])
    for (const error of errors) {
      const text = [
        String(error),
        (error as Error).stack,
        inspect(error, { depth: 10 }),
        JSON.stringify(error),
      ].join('\n')
      expectNoKey(text, key)
      expectNoKey(text, other)
      expect(text).not.toContain(key.slice(0, 10))
    }
  })

  test('nothing is logged: not on success, not on failure', async () => {
    const spies = (['log', 'info', 'warn', 'error', 'debug', 'trace'] as const).map((m) =>
      vi.spyOn(console, m).mockImplementation(() => {}),
    )
    const warning = vi.spyOn(process, 'emitWarning')
    try {
      const key = newKey()
      const file = join(freshDir(), 'store.db')
      const store = await AnyStore.open({ file, encryptionKey: key })
      await store.set('a', 1)
      await store.run((tx) => tx.delete('a'))
      await AnyStore.open({ file, encryptionKey: newKey() }).catch(() => undefined)
      await store.close()
      for (const spy of [...spies, warning]) expect(spy).not.toHaveBeenCalled()
    } finally {
      for (const spy of [...spies, warning]) spy.mockRestore()
    }
  })
})
