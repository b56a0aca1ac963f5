import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { DEFAULT_ENCRYPTION_KEY, deriveKeys, parseKey, seal } from '../src/crypto.js'
import { AnyStore } from '../src/index.js'
import { encodePayload } from '../src/payload.js'
import { fixture, requireBuild, tempDir } from './cli-support.js'
import { rejection } from './helpers.js'

requireBuild()

/**
 * Files made by someone who holds the key (the default key is public, so anyone can make a
 * file that opens with it): authentic, so decryption accepts them, but built to cost the
 * reader memory or time. Each must be refused with a typed error, cheaply.
 */
const publicKeys = deriveKeys(parseKey(DEFAULT_ENCRYPTION_KEY))
const MiB = 1024 * 1024

/** A payload of one entry, `k`, whose value is a MessagePack bin of `size` zero bytes. */
function zerosPayload(size: number, filler = Buffer.alloc(0)): Buffer {
  const value = Buffer.alloc(5 + filler.length + size)
  value[0] = 0xc6 // bin 32
  value.writeUInt32BE(filler.length + size, 1)
  filler.copy(value, 5)
  return encodePayload([['k', { value }]])
}

/** Seals `payload` deflated under the public default key and writes it as a store file. */
function compressedStore(payload: Buffer): string {
  const file = join(tempDir(), 'bomb.db')
  writeFileSync(file, Buffer.concat(seal(publicKeys, payload, { compress: true }).parts))
  return file
}

/** Runs test/fixtures/open-bomb.mjs in a fresh process: its error code and peak RSS growth. */
function openInChild(mode: 'open' | 'unstash', file: string, maxFileSize: number) {
  const child = spawnSync(process.execPath, [fixture('open-bomb.mjs'), mode, file, `${maxFileSize}`], {
    encoding: 'utf8',
  })
  expect(child.status, child.stderr).toBe(0)
  return JSON.parse(child.stdout) as { code: string | null; peakGrowth: number }
}

describe('a compressed payload that inflates past maxFileSize', () => {
  // 64 MiB of zeros deflate to about 64 KiB: the file is far below the limit, its payload far above.
  const bomb = () => compressedStore(zerosPayload(64 * MiB))

  it('is refused by open() with FileTooLargeError, without inflating it in memory', () => {
    const file = bomb()
    const { code, peakGrowth } = openInChild('open', file, MiB)
    expect(code).toBe('ERR_ANYSTORE_FILE_TOO_LARGE')
    // Inflating stops at the limit: the peak grows by a few times the limit at most, not 64 MiB.
    expect(peakGrowth).toBeLessThan(3 * MiB + 16 * MiB)
  })

  it('is refused by unstash() from a stream the same way', () => {
    const file = bomb()
    const { code, peakGrowth } = openInChild('unstash', file, MiB)
    expect(code).toBe('ERR_ANYSTORE_FILE_TOO_LARGE')
    expect(peakGrowth).toBeLessThan(3 * MiB + 16 * MiB)
  })

  it('is refused when the file is read in slices too (a compressed file over 1 MiB)', async () => {
    // Random bytes do not compress: the file is about 1.5 MiB, under a 2 MiB limit.
    const file = compressedStore(zerosPayload(64 * MiB, randomBytes(1.5 * MiB)))
    const error = await rejection(AnyStore.open({ file, maxFileSize: 2 * MiB }))
    expect(error.code).toBe('ERR_ANYSTORE_FILE_TOO_LARGE')
  })

  it('opens when the limit is above what it inflates to', async () => {
    const file = compressedStore(zerosPayload(3 * MiB))
    const store = await AnyStore.open({ file, maxFileSize: 4 * MiB })
    expect(((await store.get('k')) as Uint8Array).length).toBe(3 * MiB)
    await store.close()
  })
})
