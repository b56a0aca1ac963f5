import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { DEFAULT_ENCRYPTION_KEY, deriveKeys, parseKey } from '../src/crypto.js'
import { seal } from '../src/format/store-file.js'
import { EXT, encodeValue, MAX_DEPTH } from '../src/format/codec.js'
import { EXIT_CODES } from '../src/cli/exit-codes.js'
import { AnyStore, unstash } from '../src/index.js'
import { encodePayload, KEY_STRING } from '../src/format/payload.js'
import type { StoreKey } from '../src/store/types.js'
import { fixture, requireBuild, runCli, tempDir } from './cli-support.js'
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

/** A store file sealed under the public default key, holding `entries` as given (even repeated keys). */
function craftedStore(entries: [StoreKey, Uint8Array][]): string {
  const file = join(tempDir(), 'crafted.db')
  const payload = encodePayload(entries.map(([key, value]) => [key, { value }]))
  writeFileSync(file, Buffer.concat(seal(publicKeys, payload, { compress: false }).parts))
  return file
}

/** MessagePack for `levels` arrays of one item each around a nil: `[[[...[null]...]]]`. */
function nestedArrays(levels: number): Buffer {
  const bytes = Buffer.alloc(levels + 1, 0x91) // fixarray of 1
  bytes[levels] = 0xc0 // nil
  return bytes
}

/**
 * MessagePack for `levels` Maps (ext type 5), each holding one entry whose value is the next:
 * the Map's array of [key, value] is not a level of its own, as when encodeValue writes it.
 */
function nestedMaps(levels: number): Buffer {
  let inner = Buffer.from([0xc0])
  for (let i = 0; i < levels; i++) {
    const data = Buffer.concat([Buffer.from([0x92, 0x00]), inner]) // [0, inner]
    const header = Buffer.alloc(6)
    header[0] = 0xc9 // ext 32
    header.writeUInt32BE(data.length, 1)
    header[5] = 5
    inner = Buffer.concat([header, data])
  }
  return inner
}

function nest(levels: number, inner: unknown = null): unknown {
  let value = inner
  for (let i = 0; i < levels; i++) value = [value]
  return value
}

describe('a value nested deeper than the store ever writes', () => {
  it('is exactly what encodeValue refuses: 100 levels are written and read back, 101 are not written', async () => {
    expect(() => encodeValue(nest(MAX_DEPTH + 1))).toThrow(
      expect.objectContaining({ code: 'ERR_ANYSTORE_UNSUPPORTED_VALUE' }),
    )
    expect(() => encodeValue(nest(MAX_DEPTH, new Date(0)))).toThrow(
      expect.objectContaining({ code: 'ERR_ANYSTORE_UNSUPPORTED_VALUE' }),
    )
    const deepest = nest(MAX_DEPTH - 1, new Map([[1, 'x']]))
    const file = craftedStore([
      ['arrays', encodeValue(nest(MAX_DEPTH))],
      ['date', encodeValue(nest(MAX_DEPTH - 1, new Date(0)))],
      ['map', encodeValue(deepest)],
    ])
    const store = await AnyStore.open({ file })
    expect(await store.get('arrays')).toStrictEqual(nest(MAX_DEPTH))
    expect(await store.get('date')).toStrictEqual(nest(MAX_DEPTH - 1, new Date(0)))
    expect(await store.get('map')).toStrictEqual(deepest)
    await store.close()
  })

  it('is refused by get() with CorruptFileError, one level past the limit or a million', async () => {
    const file = craftedStore([
      ['ok', encodeValue('fine')],
      ['arrays', nestedArrays(MAX_DEPTH + 1)],
      ['maps', nestedMaps(MAX_DEPTH + 1)],
      ['date', Buffer.concat([nestedArrays(MAX_DEPTH).subarray(0, MAX_DEPTH), encodeValue(new Date(0))])],
      ['million', nestedArrays(1_000_000)],
    ])
    const store = await AnyStore.open({ file })
    expect(await store.get('ok')).toBe('fine')
    for (const key of ['arrays', 'maps', 'date', 'million']) {
      const error = await rejection(store.get(key))
      expect(error.code, key).toBe('ERR_ANYSTORE_CORRUPT_FILE')
      expect(error.message).toContain(`deeper than ${MAX_DEPTH} levels`)
    }
    expect((await rejection(store.entries())).code).toBe('ERR_ANYSTORE_CORRUPT_FILE')
    await store.close()
  })

  it('is refused when a Map or Set holds something other than an array, however deep it is', async () => {
    // A Map ext whose data is the object { length: 1, 0: <a million arrays deep> }: decoded as
    // if it were an array, the deep value would come back as a key of the Map.
    const inner = Buffer.concat([
      Buffer.from([0x82, 0xa6, ...Buffer.from('length'), 0x01, 0xa1, ...Buffer.from('0')]),
      nestedArrays(1_000_000),
    ])
    const asExt = (type: number) => {
      const header = Buffer.alloc(6)
      header[0] = 0xc9 // ext 32
      header.writeUInt32BE(inner.length, 1)
      header[5] = type
      return Buffer.concat([header, inner])
    }
    const file = craftedStore([
      ['ok', encodeValue('fine')],
      ['map', asExt(EXT.map)],
      ['set', asExt(EXT.set)],
      // Short enough to skip the depth walk: the decoder itself refuses it.
      ['small', Buffer.from([0xd6, EXT.map, 0x81, 0xa1, 0x61, 0x01])],
    ])
    const store = await AnyStore.open({ file })
    expect(await store.get('ok')).toBe('fine')
    for (const key of ['map', 'set', 'small']) {
      const error = await rejection(store.get(key))
      expect(error.code, key).toBe('ERR_ANYSTORE_CORRUPT_FILE')
      expect(error.message, key).toMatch(/holds something other than (one array|an array)/)
    }
    await store.close()
    const verify = await runCli(['verify', file])
    expect(verify.code, verify.stderr).toBe(EXIT_CODES.ERR_ANYSTORE_CORRUPT_FILE)
  })

  it('is refused by unstash() from a stream', async () => {
    const file = craftedStore([['k', nestedArrays(MAX_DEPTH + 1)]])
    const { createReadStream } = await import('node:fs')
    const error = await rejection(unstash({ reader: createReadStream(file), key: 'k' }))
    expect(error.code).toBe('ERR_ANYSTORE_CORRUPT_FILE')
  })

  it('fails `anystore verify` and `anystore get`, which would otherwise print it', async () => {
    const file = craftedStore([
      ['ok', encodeValue('fine')],
      ['deep', nestedArrays(1_000_000)],
    ])
    const verify = await runCli(['verify', file])
    expect(verify.code, verify.stderr).toBe(EXIT_CODES.ERR_ANYSTORE_CORRUPT_FILE)
    expect(verify.stdout).toBe('')
    const get = await runCli(['get', file, 'deep'])
    expect(get.code, get.stderr).toBe(EXIT_CODES.ERR_ANYSTORE_CORRUPT_FILE)
  })
})

describe('a key that is not valid UTF-8', () => {
  it('is refused at open: invalid bytes would all read as U+FFFD, one key listed twice', async () => {
    const value = encodeValue(1)
    const payload = encodePayload(
      ['A', 'B', 'ключ 🔑'].map((key) => [key, { value }] as [StoreKey, { value: Uint8Array }]),
    )
    // Valid UTF-8 beyond ASCII reads back as written.
    const valid = join(tempDir(), 'valid.db')
    writeFileSync(valid, Buffer.concat(seal(publicKeys, payload, { compress: false }).parts))
    const store = await AnyStore.open({ file: valid })
    expect(await store.keys()).toEqual(['A', 'B', 'ключ 🔑'])
    expect(await store.get('ключ 🔑')).toBe(1)
    await store.close()
    // The one-byte keys A and B become the invalid bytes FF and FE.
    for (const [from, to] of [
      [0x41, 0xff],
      [0x42, 0xfe],
    ] as const) {
      const at = payload.indexOf(Buffer.from([KEY_STRING, 0, 0, 0, 1, from]))
      expect(at).toBeGreaterThan(0)
      payload[at + 5] = to
    }
    const file = join(tempDir(), 'invalid.db')
    writeFileSync(file, Buffer.concat(seal(publicKeys, payload, { compress: false }).parts))
    const error = await rejection(AnyStore.open({ file }))
    expect(error.code).toBe('ERR_ANYSTORE_CORRUPT_FILE')
    expect(error.message).toContain('not valid UTF-8')
  })
})

describe('a payload that repeats a key', () => {
  it('is refused at open with CorruptFileError, before any lookup', async () => {
    const value = encodeValue(1)
    for (const repeated of ['a', 7] as StoreKey[]) {
      const file = craftedStore([
        [repeated, value],
        ['b', value],
        [repeated, encodeValue(2)],
      ])
      const error = await rejection(AnyStore.open({ file }))
      expect(error.code).toBe('ERR_ANYSTORE_CORRUPT_FILE')
      expect(error.message).toContain('repeats')
    }
  })

  it('is refused among 100,000 distinct keys, and -0 repeats 0', async () => {
    const value = encodeValue(null)
    const entries: [StoreKey, Uint8Array][] = []
    for (let i = 0; i < 100_000; i++) entries.push([`key:${i}`, value])
    const distinct = craftedStore(entries)
    const store = await AnyStore.open({ file: distinct })
    expect(await store.size()).toBe(100_000)
    await store.close()
    entries.push(['key:54321', value])
    expect((await rejection(AnyStore.open({ file: craftedStore(entries) }))).code).toBe(
      'ERR_ANYSTORE_CORRUPT_FILE',
    )
    const zeros = craftedStore([
      [0, value],
      [-0, value],
    ])
    expect((await rejection(AnyStore.open({ file: zeros }))).code).toBe('ERR_ANYSTORE_CORRUPT_FILE')
  })

  it('fails `anystore verify`', async () => {
    const value = encodeValue(1)
    const file = craftedStore([
      ['a', value],
      ['a', value],
    ])
    const verify = await runCli(['verify', file])
    expect(verify.code, verify.stderr).toBe(EXIT_CODES.ERR_ANYSTORE_CORRUPT_FILE)
  })
})
