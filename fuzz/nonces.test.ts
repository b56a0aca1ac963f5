import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { deriveKeys, parseKey } from '../src/crypto.js'
import { seal } from '../src/format/store-file.js'
import { openWithFileSystem } from '../src/anystore.js'
import { type FileSystem, nodeFileSystem } from '../src/backends/file/fsio.js'
import { newKey } from '../src/index.js'
import { countBudget, report } from './budget.js'

const root = mkdtempSync(join(tmpdir(), 'anystore-nonces-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))
const freshDir = () => join(root, 'store')

describe('nonces', () => {
  test('no nonce (or commit id) repeats across store commits (10k in npm test, 100k in npm run fuzz)', async () => {
    // In format version 3, header bytes 96..108 are the AES-GCM nonce, 64..96 the salt of the
    // commit's key and 24..40 the commit id (docs/FORMAT.md); they are read from each header
    // as it is written to the temp file.
    const commits = countBudget(10_000, 100_000, 'NONCE_COMMITS')
    const nonces = new Set<string>()
    const commitIds = new Set<string>()
    const salts = new Set<string>()
    const watching: FileSystem = {
      ...nodeFileSystem,
      writeSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number) {
        if (
          position === 0 &&
          length >= 160 &&
          Buffer.from(buffer.subarray(offset, offset + 8)).toString() === 'ANYSTORE'
        ) {
          const header = Buffer.from(buffer.subarray(offset, offset + 160))
          nonces.add(header.toString('hex', 96, 108))
          salts.add(header.toString('hex', 64, 96))
          commitIds.add(header.toString('hex', 24, 40))
        }
        return nodeFileSystem.writeSync(fd, buffer, offset, length, position)
      },
    }
    const file = join(freshDir(), 'store.db')
    const store = await openWithFileSystem({ file, sync: 'never', encryptionKey: newKey() }, watching)
    for (let i = 0; i < commits; i++) await store.set('counter', i)
    expect(await store.get('counter')).toBe(commits - 1)
    await store.close()
    // The last header on disk is one of those seen.
    expect(nonces.has(readFileSync(file).toString('hex', 96, 108))).toBe(true)
    expect(nonces.size).toBe(commits)
    expect(salts.size).toBe(commits)
    expect(commitIds.size).toBe(commits)
    report('nonces', { commits, distinctNonces: nonces.size, distinctCommitIds: commitIds.size })
  })

  test('seal() gives 100k distinct nonces for 100k identical payloads under one key', () => {
    const keys = deriveKeys(parseKey(newKey()))
    const payload = new Uint8Array(16)
    const nonces = new Set<string>()
    for (let i = 0; i < 100_000; i++)
      nonces.add(seal(keys, payload, { compress: false }).header.toString('hex', 96, 108))
    expect(nonces.size).toBe(100_000)
  })
})
