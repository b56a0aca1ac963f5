import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { AnyStore, newKey, readFileHeader, rekey } from '../../src/index.js'
import { fixture, requireBuild, tempDir } from '../cli-support.js'
import { codeOf } from '../helpers.js'

requireBuild()

async function makeStore(
  file: string,
  key: string,
  entries: [string, unknown][],
  compress = false,
) {
  const store = await AnyStore.open({ file, encryptionKey: key, compress })
  await store.run(async (tx) => {
    for (const [k, v] of entries) await tx.set(k, v)
  })
  await store.close()
}

async function read(file: string, key: string) {
  const store = await AnyStore.open({ file, encryptionKey: key })
  try {
    return await store.entries()
  } finally {
    await store.close()
  }
}

describe('rekey()', () => {
  it('re-encrypts every entry under the new key, reporting progress', async () => {
    const file = join(tempDir(), 'a.store')
    const oldKey = newKey()
    const next = newKey()
    const entries: [string, unknown][] = Array.from({ length: 50 }, (_, i) => [
      `k${i}`,
      { i, big: BigInt(i) },
    ])
    await makeStore(file, oldKey, entries)
    const progress: number[] = []
    expect(
      await rekey({
        file,
        encryptionKey: oldKey,
        newEncryptionKey: next,
        onProgress: (done) => progress.push(done),
      }),
    ).toEqual({ entries: 50 })
    expect(progress).toEqual(Array.from({ length: 50 }, (_, i) => i + 1))
    expect(await read(file, next)).toEqual(entries)
    expect(await codeOf(read(file, oldKey))).toBe('ERR_ANYSTORE_WRONG_KEY')
  })

  it('keeps the compression flag unless told otherwise, and can change the key size', async () => {
    const file = join(tempDir(), 'a.store')
    const oldKey = newKey()
    await makeStore(file, oldKey, [['a', 'x'.repeat(500)]], true)
    const key16 = Buffer.alloc(16, 7).toString('base64')
    await rekey({ file, encryptionKey: oldKey, newEncryptionKey: key16 })
    expect(readFileHeader(file).header).toMatchObject({ flags: 1, keyLength: 16 })
    await rekey({ file, encryptionKey: key16, newEncryptionKey: oldKey, compress: false })
    expect(readFileHeader(file).header).toMatchObject({ flags: 0, keyLength: 32 })
    expect(await read(file, oldKey)).toEqual([['a', 'x'.repeat(500)]])
  })

  it('leaves the file untouched on the wrong old key, and refuses a missing file', async () => {
    const dir = tempDir()
    const file = join(dir, 'a.store')
    const oldKey = newKey()
    await makeStore(file, oldKey, [['a', 1]])
    const before = readFileSync(file)
    expect(await codeOf(rekey({ file, encryptionKey: newKey(), newEncryptionKey: newKey() }))).toBe(
      'ERR_ANYSTORE_WRONG_KEY',
    )
    expect(readFileSync(file).equals(before)).toBe(true)
    expect(
      await codeOf(
        rekey({ file: join(dir, 'none'), encryptionKey: oldKey, newEncryptionKey: newKey() }),
      ),
    ).toBe('ERR_ANYSTORE_FILE_NOT_FOUND')
    expect(await codeOf(rekey({ file, encryptionKey: oldKey, newEncryptionKey: 'short' }))).toBe(
      'ERR_ANYSTORE_INVALID_KEY',
    )
    expect(readFileSync(file).equals(before)).toBe(true)
  })

  it('a writer busy under the old key loses no acknowledged write and commits nothing after', async () => {
    const file = join(tempDir(), 'a.store')
    const oldKey = newKey()
    const next = newKey()
    await makeStore(file, oldKey, [['n', 0]])
    const writer = spawn(process.execPath, [fixture('cli-writer-loop.mjs'), file, oldKey], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let output = ''
    writer.stdout.on('data', (chunk) => {
      output += chunk
    })
    const exited = new Promise((resolve) => writer.on('exit', resolve))
    while (!output.includes('started')) await new Promise((resolve) => setTimeout(resolve, 5))
    await new Promise((resolve) => setTimeout(resolve, 100))
    await rekey({ file, encryptionKey: oldKey, newEncryptionKey: next })
    expect(await exited).toBe(0)
    const report = JSON.parse(output.trim().split('\n').at(-1)!)
    expect(report.code).toBe('ERR_ANYSTORE_WRONG_KEY')
    expect(report.lastAcknowledged).toBeGreaterThan(1)
    // Every write acknowledged before the rekey is in the re-encrypted file, and none came after.
    expect(await read(file, next)).toEqual([['n', report.lastAcknowledged]])
  })

  it('accepts keys as text with surrounding whitespace or as bytes', async () => {
    const dir = tempDir()
    const file = join(dir, 'a.store')
    const oldKey = newKey()
    await makeStore(file, oldKey, [['a', 1]])
    await rekey({ file, encryptionKey: `${oldKey}\n`, newEncryptionKey: Buffer.alloc(24, 1) })
    expect(await read(file, Buffer.alloc(24, 1).toString('base64'))).toEqual([['a', 1]])
  })
})
