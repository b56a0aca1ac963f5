import { readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { AnyStore, newKey } from '../src/index.js'
import { codeOf, tempDir } from './helpers.js'

/** Values of 1,000 bytes with varied content, so records of every length straddle the 1 MiB slices. */
function valueFor(i: number): string {
  return `${i}:`.padEnd(900 + (i % 200), String.fromCharCode(97 + (i % 26)))
}

/** A store file of about 2.9 MiB: opened slice by slice, with records across slice boundaries. */
async function largeStore(file: string, encryptionKey?: string): Promise<Map<string, string>> {
  const model = new Map<string, string>()
  // An absent key means the public default key; an explicitly undefined one is an error.
  const key = encryptionKey === undefined ? {} : { encryptionKey }
  const store = await AnyStore.open<string>({ file, sync: 'never', ...key })
  await store.run(async (tx) => {
    for (let i = 0; i < 3000; i++) {
      await tx.set(`key-${i}`, valueFor(i))
      model.set(`key-${i}`, valueFor(i))
    }
  })
  await store.close()
  expect(statSync(file).size).toBeGreaterThan(2.5 * 1024 * 1024)
  return model
}

async function contents(file: string, encryptionKey?: string): Promise<[string | number, string][]> {
  const key = encryptionKey === undefined ? {} : { encryptionKey }
  const store = await AnyStore.open<string>({ file, ...key })
  const entries = await store.entries()
  await store.close()
  return entries as [string | number, string][]
}

describe('a store larger than one decryption slice', () => {
  it('reopens with every entry in order, and commits over the loaded slices', async () => {
    const file = join(tempDir(), 'large')
    const key = newKey()
    const model = await largeStore(file, key)
    expect(await contents(file, key)).toEqual([...model])

    const store = await AnyStore.open<string>({ file, encryptionKey: key })
    for (const i of [0, 1163, 1164, 2999]) expect(await store.get(`key-${i}`)).toBe(valueFor(i))
    await store.set('key-1500', 'changed')
    await store.delete('key-10')
    await store.set('new', 'last')
    await store.close()
    model.set('key-1500', 'changed')
    model.delete('key-10')
    model.set('new', 'last')
    expect(await contents(file, key)).toEqual([...model])
  })

  it('refuses a changed byte in any slice, a truncated file and a wrong key, and leaves the file as it was', async () => {
    const file = join(tempDir(), 'large')
    await largeStore(file)
    const original = readFileSync(file)
    for (const at of [100, 1024 * 1024 + 50, original.length - 2000]) {
      const changed = Buffer.from(original)
      changed[at] = (changed[at] as number) ^ 0x20
      writeFileSync(file, changed)
      expect(await codeOf(AnyStore.open({ file }))).toBe('ERR_ANYSTORE_CORRUPT_FILE')
      expect(readFileSync(file).equals(changed)).toBe(true)
    }
    writeFileSync(file, original)
    truncateSync(file, original.length - 1024 * 1024)
    expect(await codeOf(AnyStore.open({ file }))).toBe('ERR_ANYSTORE_CORRUPT_FILE')
    writeFileSync(file, original)
    expect(await codeOf(AnyStore.open({ file, encryptionKey: newKey() }))).toBe(
      'ERR_ANYSTORE_WRONG_KEY',
    )
    expect(readFileSync(file).equals(original)).toBe(true)
  })
})
