import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { describe, expect, expectTypeOf, it } from 'vitest'
import { nodeFileSystem } from '../../src/backends/file/fsio.js'
import * as api from '../../src/index.js'
import {
  AnyStore,
  type AnyStoreOptions,
  editThing,
  newKey,
  type RekeyOptions,
  type RestoreOptions,
  rekey,
  restore,
  type StashOptions,
  stash,
  type UnstashOptions,
  unstash,
} from '../../src/index.js'
import type { knownOptions } from '../../src/store/options.js'
import { rejection, tempDir } from '../helpers.js'

/** Calls an entry point with options its type does not allow, as plain JavaScript callers can. */
type EntryPoint = (options: Record<string, unknown>) => Promise<unknown>
const asUntyped = (fn: unknown) => fn as EntryPoint

async function storeFile(): Promise<string> {
  const file = join(tempDir(), 'store.db')
  const store = await AnyStore.open({ file })
  await store.set('k', 1)
  await store.close()
  return file
}

describe('unknown option names', () => {
  it('AnyStore.open() names the unknown option and the closest valid one', async () => {
    const file = join(tempDir(), 'typo.db')
    const error = await rejection(asUntyped(AnyStore.open)({ file, encryptionkey: newKey() }))
    expect(error.code).toBe('ERR_ANYSTORE_INVALID_OPTION')
    expect(error.message).toBe('Unknown option `encryptionkey`; did you mean `encryptionKey`?')
    expect(existsSync(file)).toBe(false)
  })

  it('suggests by edit distance when no name matches case-insensitively', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ lockTimeout: 10 }, 'lockTimeoutMs'],
      [{ encrytionKey: newKey() }, 'encryptionKey'],
      [{ compres: true }, 'compress'],
    ]
    for (const [options, suggestion] of cases) {
      const error = await rejection(asUntyped(AnyStore.open)(options))
      expect(error.code).toBe('ERR_ANYSTORE_INVALID_OPTION')
      expect(error.message).toContain(`did you mean \`${suggestion}\`?`)
    }
  })

  it('lists the valid names when none is close', async () => {
    const error = await rejection(asUntyped(AnyStore.open)({ colour: 'blue' }))
    expect(error.code).toBe('ERR_ANYSTORE_INVALID_OPTION')
    expect(error.message).toContain('Unknown option `colour`')
    expect(error.message).toContain('`encryptionKey`')
    expect(error.message).not.toContain('did you mean')
  })

  it('every entry point checks its own set of names', async () => {
    const file = await storeFile()
    const before = readFileSync(file)
    const cases: [string, EntryPoint, Record<string, unknown>, string][] = [
      ['stash', asUntyped(stash), { file, key: 'k', thing: 2, encryptionkey: 'x' }, 'encryptionKey'],
      ['stash', asUntyped(stash), { file, key: 'k', thing: 2, sync: 'never' }, 'thing'],
      ['unstash', asUntyped(unstash), { file, key: 'k', default: 1 }, 'defaults'],
      ['editThing', asUntyped(editThing), { file, key: 'k', editr: 'vi' }, 'editor'],
      ['rekey', asUntyped(rekey), { file, newEncryptionKey: newKey(), newKey: 'x' }, 'newEncryptionKey'],
      ['restore', asUntyped(restore), { file, from: file, fromKey: 'x' }, 'fromEncryptionKey'],
      ['open', asUntyped(AnyStore.open), { file, thing: 1 }, ''],
    ]
    for (const [name, entryPoint, options, suggestion] of cases) {
      const error = await rejection(entryPoint(options))
      expect(error.code, name).toBe('ERR_ANYSTORE_INVALID_OPTION')
      if (suggestion !== '') expect(error.message, name).toContain(`\`${suggestion}\``)
    }
    expect(readFileSync(file)).toEqual(before)
  })

  it('the known names are exactly the keys of each options type', () => {
    expectTypeOf<keyof AnyStoreOptions>().toEqualTypeOf<(typeof knownOptions.open)[number]>()
    expectTypeOf<keyof StashOptions<unknown>>().toEqualTypeOf<(typeof knownOptions.stash)[number]>()
    expectTypeOf<keyof UnstashOptions<unknown>>().toEqualTypeOf<
      (typeof knownOptions.unstash)[number]
    >()
    expectTypeOf<keyof api.EditThingOptions<unknown>>().toEqualTypeOf<
      (typeof knownOptions.editThing)[number]
    >()
    expectTypeOf<keyof RekeyOptions>().toEqualTypeOf<(typeof knownOptions.rekey)[number]>()
    expectTypeOf<keyof RestoreOptions>().toEqualTypeOf<(typeof knownOptions.restore)[number]>()
  })
})

describe('the file-system hook is internal', () => {
  it('open() refuses `fs` like any unknown option', async () => {
    const file = join(tempDir(), 'fs.db')
    // @ts-expect-error `fs` is not part of the public options
    const error = await rejection(AnyStore.open({ file, fs: nodeFileSystem }))
    expect(error.code).toBe('ERR_ANYSTORE_INVALID_OPTION')
    expect(error.message).toContain('Unknown option `fs`')
  })

  it('the package does not export the way tests reach it', () => {
    expect(Object.keys(api)).not.toContain('openWithFileSystem')
  })
})

describe('an encryption key that is present but empty', () => {
  const empties: [string, unknown][] = [
    ['undefined', undefined],
    ['an empty string', ''],
    ['a blank string', '  '],
    ['empty bytes', new Uint8Array(0)],
  ]

  function expectEmptyKeyError(error: Error & { code?: string }, option: string, what: string) {
    expect(error.code, what).toBe('ERR_ANYSTORE_INVALID_KEY')
    expect(error.message, what).toContain(`\`${option}\``)
    expect(error.message, what).toMatch(/present and (undefined|empty)/)
    // Only an omitted `encryptionKey` means the default key; a new key is always required.
    if (option === 'encryptionKey') expect(error.message, what).toMatch(/omit .*public default key/)
  }

  it('is refused by every entry point, which then writes nothing', async () => {
    const file = await storeFile()
    const before = readFileSync(file)
    for (const [what, encryptionKey] of empties) {
      const fresh = join(tempDir(), 'fresh.db')
      const writer = new PassThrough()
      const calls: [string, Promise<unknown>][] = [
        ['open', asUntyped(AnyStore.open)({ file: fresh, encryptionKey })],
        ['stash', asUntyped(stash)({ file: fresh, key: 'k', thing: 1, encryptionKey })],
        ['stash writer', asUntyped(stash)({ writer, key: 'k', thing: 1, encryptionKey })],
        ['unstash', asUntyped(unstash)({ file, key: 'k', encryptionKey })],
        ['unstash reader', asUntyped(unstash)({ reader: new PassThrough(), key: 'k', encryptionKey })],
        ['editThing', asUntyped(editThing)({ file, key: 'k', encryptionKey })],
        ['rekey', asUntyped(rekey)({ file, newEncryptionKey: newKey(), encryptionKey })],
        ['restore', asUntyped(restore)({ file, from: file, encryptionKey })],
      ]
      // Each call is observed at once: one that rejects while an earlier one is awaited is not
      // an unhandled rejection.
      const observed = calls.map(([name, call]) => [name, rejection(call)] as const)
      for (const [name, pending] of observed) {
        expectEmptyKeyError(await pending, 'encryptionKey', `${name}, ${what}`)
      }
      const error = await rejection(asUntyped(rekey)({ file, newEncryptionKey: encryptionKey }))
      expectEmptyKeyError(error, 'newEncryptionKey', `rekey, ${what}`)
      const fromError = await rejection(asUntyped(restore)({ file, from: file, fromEncryptionKey: encryptionKey }))
      expectEmptyKeyError(fromError, 'fromEncryptionKey', `restore, ${what}`)
      const missing = await rejection(asUntyped(rekey)({ file }))
      expect(missing.code).toBe('ERR_ANYSTORE_INVALID_KEY')
      expect(missing.message).toContain('`newEncryptionKey`')
      expect(existsSync(fresh), what).toBe(false)
      expect(writer.destroyed, what).toBe(true)
    }
    expect(readFileSync(file)).toEqual(before)
  })

  it('absent, the public default key is used; other options set to undefined keep their default', async () => {
    const file = join(tempDir(), 'default.db')
    await stash({ file, key: 'k', thing: 'v', compress: undefined })
    expect(await unstash({ file, key: 'k' })).toBe('v')
    const store = await AnyStore.open({ file, sync: undefined, lock: undefined })
    expect(await store.get('k')).toBe('v')
    await store.close()
  })
})

describe('option messages', () => {
  it('show the value received unambiguously', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ file: '' }, "got ''"],
      [{ sync: '' }, "got ''"],
      [{ lock: 'posix' }, "got 'posix'"],
      [{ lockTimeoutMs: '5' }, "got '5'"],
      [{ maxFileSize: -1 }, 'got -1'],
      [{ persist: 'yes' }, "got 'yes'"],
      [{ compress: 1 }, 'got 1'],
    ]
    for (const [options, expected] of cases) {
      const error = await rejection(asUntyped(AnyStore.open)(options))
      expect(error.code).toBe('ERR_ANYSTORE_INVALID_OPTION')
      expect(error.message).toContain(expected)
    }
  })
})
