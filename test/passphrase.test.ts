import { createHash, scryptSync } from 'node:crypto'
import { createReadStream, createWriteStream, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import {
  AnyStore,
  editThing,
  newKey,
  readFileHeader,
  rekey,
  restore,
  stash,
  unstash,
} from '../src/index.js'
import { runCli, requireBuild, Terminal, CLI } from './cli-support.js'
import { openVersion3, withVersion3Checksum } from './format-v3.js'
import { codeOf, rejection, tempDir } from './helpers.js'

requireBuild()

type Untyped = (options: Record<string, unknown>) => Promise<unknown>
const asUntyped = (fn: unknown) => fn as Untyped

const PASSPHRASE = 'correct horse battery staple'

async function write(options: Record<string, unknown>, entries: [string, unknown][]) {
  const store = await asUntyped(AnyStore.open)(options) as AnyStore
  for (const [k, v] of entries) await store.set(k, v)
  await store.close()
}

async function read(options: Record<string, unknown>) {
  const store = await asUntyped(AnyStore.open)(options) as AnyStore
  try {
    return await store.entries()
  } finally {
    await store.close()
  }
}

/** The key a passphrase yields for a file, from docs/FORMAT.md alone (node:crypto's scrypt). */
function keyFromFormat(passphrase: string, bytes: Buffer): Buffer {
  const block = bytes.subarray(108, 140)
  const N = 2 ** block[1]!
  const r = block[2]!
  const p = block[3]!
  return scryptSync(Buffer.from(passphrase.normalize('NFC'), 'utf8'), block.subarray(16, 32), bytes[12]!, {
    N,
    r,
    p,
    maxmem: 128 * r * (N + p + 2) + 1024 * 1024,
  })
}

describe('a store under a passphrase', () => {
  it('writes flag bit 1 and the scrypt block, keeps the salt across commits, and opens as FORMAT.md says', async () => {
    const file = join(tempDir(), 'a.store')
    await write({ file, passphrase: PASSPHRASE }, [['a', 1]])
    const first = readFileSync(file)
    expect(first.readUInt16BE(10)).toBe(0x0002)
    expect(first[12]).toBe(32)
    const block = first.subarray(108, 140)
    expect([...block.subarray(0, 4)]).toEqual([1, 17, 8, 1])
    expect(block.subarray(4, 16).equals(Buffer.alloc(12))).toBe(true)
    expect(block.subarray(16, 32).equals(Buffer.alloc(16))).toBe(false)
    await write({ file, passphrase: PASSPHRASE }, [['b', 2]])
    const second = readFileSync(file)
    expect(second.subarray(108, 140).equals(block)).toBe(true)
    const opened = openVersion3(keyFromFormat(PASSPHRASE, second), second)
    expect(opened.counter).toBe(2n)
    expect(await read({ file, passphrase: PASSPHRASE })).toEqual([['a', 1], ['b', 2]])
    expect(readFileHeader(file).header.kdf).toMatchObject({ algorithm: 'scrypt', log2N: 17, r: 8, p: 1 })
  })

  it('normalizes a string passphrase (NFC) and takes bytes as they are', async () => {
    const file = join(tempDir(), 'a.store')
    await write({ file, passphrase: 'cafe\u0301 au lait, no sugar' }, [['a', 1]])
    expect(await read({ file, passphrase: 'caf\u00e9 au lait, no sugar' })).toEqual([['a', 1]])
    const bytes = Buffer.from('caf\u00e9 au lait, no sugar', 'utf8')
    expect(await read({ file, passphrase: bytes })).toEqual([['a', 1]])
  })

  it('a wrong passphrase, a key for a passphrase file and a passphrase for a key file are WrongKeyError that say which is needed', async () => {
    const dir = tempDir()
    const withPassphrase = join(dir, 'p.store')
    const withKey = join(dir, 'k.store')
    const key = newKey()
    await write({ file: withPassphrase, passphrase: PASSPHRASE }, [['a', 1]])
    await write({ file: withKey, encryptionKey: key }, [['a', 1]])
    const before = readFileSync(withPassphrase)
    const wrong = await rejection(read({ file: withPassphrase, passphrase: `${PASSPHRASE}!` }))
    expect(wrong).toMatchObject({ code: 'ERR_ANYSTORE_WRONG_KEY', needs: undefined })
    expect(wrong.message).toContain('different passphrase')
    const keyForPassphrase = await rejection(read({ file: withPassphrase, encryptionKey: key }))
    expect(keyForPassphrase).toMatchObject({ code: 'ERR_ANYSTORE_WRONG_KEY', needs: 'passphrase' })
    expect(keyForPassphrase.message).toContain('`passphrase`')
    const passphraseForKey = await rejection(read({ file: withKey, passphrase: PASSPHRASE }))
    expect(passphraseForKey).toMatchObject({ code: 'ERR_ANYSTORE_WRONG_KEY', needs: 'key' })
    expect(passphraseForKey.message).toContain('`encryptionKey`')
    expect(readFileSync(withPassphrase)).toEqual(before)
    // A raw key in acceptedKeys still opens a key file for a passphrase store.
    expect(await read({ file: withKey, passphrase: PASSPHRASE, acceptedKeys: [key] })).toEqual([['a', 1]])
  })

  it('derives the key once per open, not per commit or per reload of a version with the same salt', async () => {
    const file = join(tempDir(), 'a.store')
    await write({ file, passphrase: PASSPHRASE }, [['n', 0]])
    const started = performance.now()
    const store = (await AnyStore.open({ file, passphrase: PASSPHRASE })) as AnyStore<number>
    const oneDerivation = performance.now() - started
    const other = (await AnyStore.open({ file, passphrase: PASSPHRASE })) as AnyStore<number>
    const loop = performance.now()
    for (let i = 1; i <= 20; i++) {
      // Each commit by one instance is a new version the other loads.
      await (i % 2 === 0 ? store : other).set('n', i)
      expect(await (i % 2 === 0 ? other : store).get('n')).toBe(i)
    }
    const twenty = performance.now() - loop
    await store.close()
    await other.close()
    expect(oneDerivation).toBeGreaterThan(50)
    // Forty loads and commits: one derivation each would take 40 × oneDerivation.
    expect(twenty).toBeLessThan(oneDerivation * 4)
  })

  it('an open store follows a rekey to a new salt under the same passphrase', async () => {
    const file = join(tempDir(), 'a.store')
    await write({ file, passphrase: PASSPHRASE }, [['a', 1]])
    const store = await AnyStore.open({ file, passphrase: PASSPHRASE })
    const salt = readFileSync(file).subarray(124, 140)
    await rekey({ file, passphrase: PASSPHRASE, newPassphrase: PASSPHRASE })
    expect(readFileSync(file).subarray(124, 140).equals(salt)).toBe(false)
    expect(await store.get('a')).toBe(1)
    await store.set('a', 2)
    await store.close()
    expect(await read({ file, passphrase: PASSPHRASE })).toEqual([['a', 2]])
  })

  it('rekey moves between passphrase and key, and between passphrases', async () => {
    const file = join(tempDir(), 'a.store')
    const key = newKey()
    await write({ file, encryptionKey: key }, [['a', 1]])
    await rekey({ file, encryptionKey: key, newPassphrase: PASSPHRASE })
    expect(readFileHeader(file).header.flags).toBe(0x0002)
    await rekey({ file, passphrase: PASSPHRASE, newPassphrase: 'another long passphrase' })
    expect(await codeOf(read({ file, passphrase: PASSPHRASE }))).toBe('ERR_ANYSTORE_WRONG_KEY')
    await rekey({ file, passphrase: 'another long passphrase', newEncryptionKey: key })
    expect(readFileHeader(file).header.flags).toBe(0)
    expect(await read({ file, encryptionKey: key })).toEqual([['a', 1]])
  })

  it('config mode and restore take the passphrase', async () => {
    const dir = tempDir()
    const file = join(dir, 'config.store')
    await stash({ file, key: 'settings', thing: { port: 1 }, passphrase: PASSPHRASE })
    expect(await unstash({ file, key: 'settings', passphrase: PASSPHRASE })).toEqual({ port: 1 })
    const stashFile = join(dir, 'settings.stash')
    await stash({ writer: createWriteStream(stashFile), key: 'k', thing: 'v', passphrase: PASSPHRASE })
    expect(readFileSync(stashFile).readUInt16BE(10)).toBe(0x0002)
    const reader = createReadStream(stashFile)
    expect(await unstash({ reader, key: 'k', passphrase: PASSPHRASE })).toBe('v')
    await restore({ file, from: stashFile, passphrase: PASSPHRASE })
    expect(await read({ file, passphrase: PASSPHRASE })).toEqual([['k', 'v']])
  })
})

describe('passphrase options', () => {
  it('passphrase with encryptionKey, or newPassphrase with newEncryptionKey, is an InvalidOptionError; nothing is written', async () => {
    const dir = tempDir()
    const file = join(dir, 'a.store')
    await write({ file }, [['k', 1]])
    const before = readFileSync(file)
    const fresh = join(dir, 'fresh.store')
    const both = { encryptionKey: newKey(), passphrase: PASSPHRASE }
    const writer = new PassThrough()
    const calls: [string, Promise<unknown>][] = [
      ['open', asUntyped(AnyStore.open)({ file: fresh, ...both })],
      ['stash', asUntyped(stash)({ file: fresh, key: 'k', thing: 1, ...both })],
      ['stash writer', asUntyped(stash)({ writer, key: 'k', thing: 1, ...both })],
      ['unstash', asUntyped(unstash)({ file, key: 'k', ...both })],
      ['editThing', asUntyped(editThing)({ file, key: 'k', ...both })],
      ['rekey', asUntyped(rekey)({ file, newEncryptionKey: newKey(), ...both })],
      ['restore', asUntyped(restore)({ file, from: file, ...both })],
      ['rekey new', asUntyped(rekey)({ file, newEncryptionKey: newKey(), newPassphrase: PASSPHRASE })],
    ]
    // Each call is observed at once: one that rejects while an earlier one is awaited is not
    // an unhandled rejection.
    const observed = calls.map(([name, call]) => [name, rejection(call)] as const)
    for (const [name, pending] of observed) {
      const error = await pending
      expect(error.code, name).toBe('ERR_ANYSTORE_INVALID_OPTION')
      expect(error.message, name).toMatch(/[pP]assphrase`, not both/)
    }
    expect(writer.destroyed).toBe(true)
    expect(existsSync(fresh)).toBe(false)
    expect(readFileSync(file)).toEqual(before)
  })

  it('an undefined, empty or short passphrase is an InvalidKeyError at every entry point', async () => {
    const file = join(tempDir(), 'a.store')
    await write({ file }, [['k', 1]])
    const before = readFileSync(file)
    for (const passphrase of [undefined, '', '   ', new Uint8Array(0), 'short', 42]) {
      const calls: [string, Promise<unknown>][] = [
        ['open', asUntyped(AnyStore.open)({ file, passphrase })],
        ['stash', asUntyped(stash)({ file, key: 'k', thing: 1, passphrase })],
        ['unstash', asUntyped(unstash)({ file, key: 'k', passphrase })],
        ['editThing', asUntyped(editThing)({ file, key: 'k', passphrase })],
        ['rekey', asUntyped(rekey)({ file, newEncryptionKey: newKey(), passphrase })],
        ['rekey new', asUntyped(rekey)({ file, newPassphrase: passphrase })],
        ['restore', asUntyped(restore)({ file, from: file, passphrase })],
      ]
      // Each call is observed at once: one that rejects while an earlier one is awaited is not
      // an unhandled rejection.
      const observed = calls.map(([name, call]) => [name, rejection(call)] as const)
      for (const [name, pending] of observed) {
        const error = await pending
        expect(error.code, `${name} ${String(passphrase)}`).toBe('ERR_ANYSTORE_INVALID_KEY')
        expect(error.message, name).toMatch(/[pP]assphrase/)
      }
    }
    expect(readFileSync(file)).toEqual(before)
  })
})

describe('a hostile KDF parameter block', () => {
  it('is refused before any derivation: costs past the bounds, unknown KDFs, reserved bytes, the flag on version 2', async () => {
    const dir = tempDir()
    const good = join(dir, 'good')
    await write({ file: good, passphrase: PASSPHRASE }, [['a', 1]])
    const bytes = readFileSync(good)
    const variants: [string, (b: Buffer) => void][] = [
      ['N = 2^21', (b) => b.writeUInt8(21, 109)],
      ['N = 2^13', (b) => b.writeUInt8(13, 109)],
      ['N = 2^255', (b) => b.writeUInt8(255, 109)],
      ['memory 128·N·r past 256 MiB', (b) => b.writeUInt8(17, 109) && b.writeUInt8(32, 110)],
      ['work N·r·p past 2^22', (b) => b.writeUInt8(16, 111)],
      ['r = 0', (b) => b.writeUInt8(0, 110)],
      ['p = 0', (b) => b.writeUInt8(0, 111)],
      ['p = 255', (b) => b.writeUInt8(255, 111)],
      ['KDF 2', (b) => b.writeUInt8(2, 108)],
      ['KDF 0', (b) => b.writeUInt8(0, 108)],
      ['reserved byte', (b) => b.writeUInt8(1, 112)],
      ['reserved byte end', (b) => b.writeUInt8(1, 123)],
      ['no flag', (b) => b.writeUInt16BE(0, 10)],
    ]
    for (const [name, change] of variants) {
      const changed = Buffer.from(bytes)
      change(changed)
      const file = join(dir, name)
      writeFileSync(file, withVersion3Checksum(changed))
      const started = performance.now()
      const error = await rejection(read({ file, passphrase: PASSPHRASE }))
      expect({ name, code: error.code }).toEqual({ name, code: 'ERR_ANYSTORE_UNSUPPORTED_FORMAT' })
      // Refused from the header alone: no scrypt ran.
      expect(performance.now() - started, name).toBeLessThan(150)
      expect(readFileSync(file)).toEqual(withVersion3Checksum(changed))
    }
    // Version 2 has no KDF block: the flag there is unknown.
    const v2 = join(dir, 'v2')
    await write({ file: v2, formatVersion: 2 }, [['a', 1]])
    const v2Bytes = readFileSync(v2)
    v2Bytes.writeUInt16BE(0x0002, 10)
    createHash('sha256').update(v2Bytes.subarray(0, 68)).digest().copy(v2Bytes, 68, 0, 4)
    writeFileSync(v2, v2Bytes)
    expect(await codeOf(read({ file: v2, passphrase: PASSPHRASE }))).toBe(
      'ERR_ANYSTORE_UNSUPPORTED_FORMAT',
    )
    // Within the bounds but another salt: a derivation, then the key check fails.
    const salted = Buffer.from(bytes)
    salted.writeUInt8(salted[130]! ^ 1, 130)
    writeFileSync(join(dir, 'salt'), withVersion3Checksum(salted))
    expect(await codeOf(read({ file: join(dir, 'salt'), passphrase: PASSPHRASE }))).toBe(
      'ERR_ANYSTORE_WRONG_KEY',
    )
  })
})

describe('the CLI with a passphrase', () => {
  it('reads it from --passphrase-file, refuses it with --key-file, and rekeys to and from it', async () => {
    const dir = tempDir()
    const file = join(dir, 'a.store')
    writeFileSync(join(dir, 'pass'), `${PASSPHRASE}\n`, { mode: 0o600 })
    writeFileSync(join(dir, 'app.key'), newKey(), { mode: 0o600 })
    const pass = ['--passphrase-file', join(dir, 'pass')]
    const key = ['--key-file', join(dir, 'app.key')]
    expect((await runCli(['set', file, 'a', 'x', ...pass])).code).toBe(0)
    expect(await read({ file, passphrase: PASSPHRASE })).toEqual([['a', 'x']])
    const got = await runCli(['get', file, 'a', '--raw', ...pass])
    expect(got.stdout).toBe('x\n')
    expect(got.stderr).toBe('')
    const both = await runCli(['get', file, 'a', ...pass, ...key])
    expect(both.code).toBe(2)
    const wrong = await runCli(['get', file, 'a', ...key])
    expect(wrong.code).toBe(5)
    expect(wrong.stderr).toContain('--passphrase-file')
    const info = await runCli(['info', file, '--json'])
    expect(JSON.parse(info.stdout)).toMatchObject({
      passphrase: { kdf: 'scrypt', log2N: 17, r: 8, p: 1 },
      entries: null,
    })
    const rekeyed = await runCli(['rekey', file, ...pass, '--new-key-file', join(dir, 'app.key')])
    expect(rekeyed.code, rekeyed.stderr).toBe(0)
    expect((await runCli(['get', file, 'a', '--raw', ...key])).stdout).toBe('x\n')
    const back = await runCli(['rekey', file, ...key, '--new-passphrase-file', join(dir, 'pass')])
    expect(back.code, back.stderr).toBe(0)
    expect((await runCli(['get', file, 'a', '--raw', ...pass])).stdout).toBe('x\n')
  })

  it('--passphrase prompts on the terminal without echo', { timeout: 30_000 }, async () => {
    const dir = tempDir()
    const file = join(dir, 'a.store')
    await write({ file, passphrase: PASSPHRASE }, [['a', 'from the prompt']])
    const terminal = new Terminal(`node ${CLI} get ${file} a --raw --passphrase`)
    try {
      await terminal.waitFor(/Passphrase for .*a\.store: $/m)
      terminal.type(PASSPHRASE)
      terminal.send('Enter')
      expect(await terminal.exitCode()).toBe(0)
      const screen = terminal.screen()
      expect(screen).toContain('from the prompt')
      expect(screen).not.toContain(PASSPHRASE)
    } finally {
      terminal.close()
    }
    // Without a terminal there is nothing to prompt on.
    const piped = await runCli(['get', file, 'a', '--passphrase'], { input: `${PASSPHRASE}\n` })
    expect(piped.code).toBe(2)
    expect(piped.stderr).toContain('--passphrase-file')
  })
})
