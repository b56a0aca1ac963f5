import { createWriteStream, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { encodeValue } from '../../src/format/codec.js'
import { deriveKeys, parseKey } from '../../src/crypto.js'
import { open, seal } from '../../src/format/store-file.js'
import { AnyStore, newKey, readFileHeader, rekey, stash, unstash } from '../../src/index.js'
import { encodePayload } from '../../src/format/payload.js'
import { sealVersion1 } from '../format-v1.js'
import { openVersion3, withVersion3Checksum } from '../format-v3.js'
import { rejection, tempDir } from '../helpers.js'

const payloadOf = (entries: [string, unknown][]) =>
  encodePayload(entries.map(([k, v]) => [k, { value: encodeValue(v) }]))

async function commitTimes(file: string, key: string, count: number): Promise<Buffer[]> {
  const store = await AnyStore.open({ file, encryptionKey: key, sync: 'never' })
  const files: Buffer[] = []
  for (let i = 0; i < count; i++) {
    await store.set('n', i)
    files.push(readFileSync(file))
  }
  await store.close()
  return files
}

describe('format version 3, byte by byte as docs/FORMAT.md says', () => {
  it('encrypts every commit under its own key, derived from a random salt in the header, so no nonce budget applies', async () => {
    const key = newKey()
    const file = join(tempDir(), 'store.anystore')
    const files = await commitTimes(file, key, 20)
    const salts = new Set<string>()
    for (const [i, bytes] of files.entries()) {
      const opened = openVersion3(parseKey(key), bytes)
      expect(opened.counter).toBe(BigInt(i + 1))
      expect(opened.payload.equals(payloadOf([['n', i]]))).toBe(true)
      salts.add(opened.salt.toString('hex'))
    }
    expect(salts.size).toBe(files.length)
    // The per-key encryption key of versions 1 and 2 does not decrypt a version 3 commit.
    const last = files.at(-1)!
    const asVersion2 = Buffer.from(last)
    asVersion2.writeUInt16BE(2, 8)
    expect(() => open('f', deriveKeys(parseKey(key)), asVersion2)).toThrow()
  })

  it('lays out the header: id kept, counter +1, zero KDF block, status byte last', async () => {
    const key = newKey()
    const file = join(tempDir(), 'store.anystore')
    const [first, second] = await commitTimes(file, key, 2)
    const a = openVersion3(parseKey(key), first!)
    const b = openVersion3(parseKey(key), second!)
    expect(a.storeId.equals(b.storeId)).toBe(true)
    expect(a.commitId.equals(b.commitId)).toBe(false)
    expect([a.counter, b.counter]).toEqual([1n, 2n])
    expect(a.kdfBlock.equals(Buffer.alloc(32))).toBe(true)
    expect(a.flags).toBe(0)
    expect(a.keyLength).toBe(32)
    expect(Math.abs(a.commitTime - Date.now())).toBeLessThan(60_000)
    expect(first!.length).toBe(160 + a.payload.length + 16 + 1)
    // The version replaced by the second commit had its status byte set; the new one has not.
    expect(b.status).toBe(0)
    expect(readFileHeader(file).header).toMatchObject({ version: 3, counter: 2n })
    expect(readFileHeader(file).header.storeId?.equals(a.storeId)).toBe(true)
  })

  it('reads versions 1 and 2; the first commit over one gives the store an id', async () => {
    const raw = parseKey(newKey())
    const keys = deriveKeys(raw)
    const dir = tempDir()
    for (const [name, bytes] of [
      ['v1', sealVersion1(keys, payloadOf([['n', 1]]))],
      ['v2', Buffer.concat(seal(keys, payloadOf([['n', 1]]), { compress: false, formatVersion: 2 }).parts)],
    ] as const) {
      const file = join(dir, name)
      writeFileSync(file, bytes)
      expect(readFileHeader(file).header).toMatchObject({ storeId: undefined, counter: 0n })
      const store = await AnyStore.open({ file, encryptionKey: raw })
      expect(await store.get('n')).toBe(1)
      await store.set('n', 2)
      await store.close()
      const { header } = readFileHeader(file)
      expect(header).toMatchObject({ version: 3, counter: 1n })
      expect(header.storeId).toHaveLength(16)
    }
  })

  it('formatVersion: 2 writes version 2 (no id, no counter); a store already in version 3 stays in version 3', async () => {
    const dir = tempDir()
    const file = join(dir, 'store.anystore')
    const old = await AnyStore.open({ file, formatVersion: 2 })
    await old.set('a', 1)
    await old.set('b', 2)
    expect(readFileHeader(file).header).toMatchObject({ version: 2, storeId: undefined, counter: 0n })
    const upgraded = await AnyStore.open({ file })
    await upgraded.set('c', 3)
    await upgraded.close()
    expect(readFileHeader(file).header).toMatchObject({ version: 3, counter: 1n })
    await old.set('d', 4)
    expect(readFileHeader(file).header).toMatchObject({ version: 3, counter: 2n })
    await old.close()
    expect(await rejection(AnyStore.open({ file, formatVersion: 4 as 3 }))).toMatchObject({
      code: 'ERR_ANYSTORE_INVALID_OPTION',
    })
  })

  it('refuses a newer version, the passphrase flag with an empty KDF block and a KDF block without the flag, and never writes over them', async () => {
    const dir = tempDir()
    const good = join(dir, 'good')
    const store = await AnyStore.open({ file: good })
    await store.set('n', 1)
    await store.close()
    const bytes = readFileSync(good)
    const variants: [string, (b: Buffer) => void][] = [
      ['version 4', (b) => b.writeUInt16BE(4, 8)],
      ['passphrase flag', (b) => b.writeUInt16BE(0x0002, 10)],
      ['KDF block', (b) => b.writeUInt8(1, 108)],
      ['KDF block end', (b) => b.writeUInt8(0x80, 139)],
    ]
    for (const [name, change] of variants) {
      const changed = Buffer.from(bytes)
      change(changed)
      const file = join(dir, name)
      writeFileSync(file, withVersion3Checksum(changed))
      const before = readFileSync(file)
      const error = await rejection(
        (async () => {
          const s = await AnyStore.open({ file })
          await s.set('n', 2)
          await s.close()
        })(),
      )
      expect({ name, code: error.code }).toEqual({ name, code: 'ERR_ANYSTORE_UNSUPPORTED_FORMAT' })
      expect(readFileSync(file).equals(before)).toBe(true)
    }
    // Counter 0 is never written (the first commit is 1): a file with it is corrupt.
    const zero = Buffer.from(bytes)
    zero.writeBigUInt64BE(0n, 56)
    writeFileSync(join(dir, 'zero'), withVersion3Checksum(zero))
    expect(await rejection(AnyStore.open({ file: join(dir, 'zero') }))).toMatchObject({
      code: 'ERR_ANYSTORE_CORRUPT_FILE',
    })
  })

  it('rekey keeps the store id and counts one commit; open stores see it (and fail on the key)', async () => {
    const file = join(tempDir(), 'store.anystore')
    const oldKey = newKey()
    const nextKey = newKey()
    const store = await AnyStore.open({ file, encryptionKey: oldKey })
    await store.set('n', 1)
    await store.set('n', 2)
    const before = readFileHeader(file).header
    await rekey({ file, encryptionKey: oldKey, newEncryptionKey: nextKey })
    const after = openVersion3(parseKey(nextKey), readFileSync(file))
    expect(after.storeId.equals(before.storeId!)).toBe(true)
    expect(after.counter).toBe(before.counter + 1n)
    expect((await rejection(store.get('n'))).code).toBe('ERR_ANYSTORE_WRONG_KEY')
    await store.close()
  })

  it('a stand-alone stash is a complete version 3 store file with one entry', async () => {
    const path = join(tempDir(), 'thing.stash')
    const encryptionKey = newKey()
    const writer = createWriteStream(path)
    await stash({ writer, key: 'k', thing: { a: 1 }, encryptionKey })
    const opened = openVersion3(parseKey(encryptionKey), readFileSync(path))
    expect(opened.counter).toBe(1n)
    expect(opened.payload.equals(payloadOf([['k', { a: 1 }]]))).toBe(true)
    // And it opens as a store.
    const asStore = join(tempDir(), 'store.anystore')
    renameSync(path, asStore)
    expect(await unstash({ file: asStore, key: 'k', encryptionKey })).toEqual({ a: 1 })
  })
})

