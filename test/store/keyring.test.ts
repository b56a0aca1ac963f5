import {
  createReadStream,
  createWriteStream,
  existsSync,
  readFileSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { AnyStore, editThing, newKey, rekey, restore, stash, unstash } from '../../src/index.js'
import { requireBuild, runCli } from '../cli-support.js'
import { codeOf, nextMessage, rejection, spawnFixture, tempDir } from '../helpers.js'

requireBuild()

type Untyped = (options: Record<string, unknown>) => Promise<unknown>
const asUntyped = (fn: unknown) => fn as Untyped

async function write(file: string, key: string, entries: [string, unknown][]) {
  const store = await AnyStore.open({ file, encryptionKey: key })
  for (const [k, v] of entries) await store.set(k, v)
  await store.close()
}

async function read(file: string, key: string, acceptedKeys: string[] = []) {
  const store = await AnyStore.open({ file, encryptionKey: key, acceptedKeys })
  try {
    return await store.entries()
  } finally {
    await store.close()
  }
}

describe('a keyring: encryptionKey writes, acceptedKeys are also read', () => {
  it('reads a file written under an accepted key, and commits under encryptionKey', async () => {
    const file = join(tempDir(), 'a.store')
    const [oldKey, nextKey] = [newKey(), newKey()]
    await write(file, oldKey, [['a', 1]])
    const store = await AnyStore.open({ file, encryptionKey: nextKey, acceptedKeys: [oldKey] })
    expect(await store.get('a')).toBe(1)
    await store.set('b', 2)
    await store.close()
    // The commit is under the current key only.
    expect(await read(file, nextKey)).toEqual([['a', 1], ['b', 2]])
    expect(await codeOf(read(file, oldKey))).toBe('ERR_ANYSTORE_WRONG_KEY')
  })

  it('an open store keeps reading after another process commits under an accepted key', async () => {
    const file = join(tempDir(), 'a.store')
    const [oldKey, nextKey] = [newKey(), newKey()]
    await write(file, oldKey, [['a', 1]])
    // Step 1 of a rotation: still writing under the old key, already accepting the new one.
    const store = await AnyStore.open({ file, encryptionKey: oldKey, acceptedKeys: [nextKey] })
    expect(await store.get('a')).toBe(1)
    const other = await AnyStore.open({ file, encryptionKey: nextKey, acceptedKeys: [oldKey] })
    await other.set('a', 2)
    await other.close()
    expect(await store.get('a')).toBe(2)
    await store.set('a', 3)
    await store.close()
    expect(await read(file, oldKey)).toEqual([['a', 3]])
  })

  it('is WrongKeyError when no key of the ring matches, and leaves the file as it is', async () => {
    const file = join(tempDir(), 'a.store')
    await write(file, newKey(), [['a', 1]])
    const before = readFileSync(file)
    const error = await rejection(read(file, newKey(), [newKey(), newKey()]))
    expect(error.code).toBe('ERR_ANYSTORE_WRONG_KEY')
    expect(error.message).toContain('none of the 3 keys given')
    expect(readFileSync(file)).toEqual(before)
  })

  it('accepts keys of another size than encryptionKey', async () => {
    const file = join(tempDir(), 'a.store')
    const key16 = Buffer.alloc(16, 3)
    const store = await AnyStore.open({ file, encryptionKey: key16 })
    await store.set('a', 1)
    await store.close()
    expect(await read(file, newKey(), [key16.toString('base64')])).toEqual([['a', 1]])
  })

  it('refuses an explicit undefined or empty key in the ring, and a ring that is not an array, at every entry point', async () => {
    const file = join(tempDir(), 'a.store')
    const key = newKey()
    await write(file, key, [['k', 1]])
    const before = readFileSync(file)
    const fresh = join(tempDir(), 'fresh.store')
    const bad: [unknown, string][] = [
      [[undefined], 'ERR_ANYSTORE_INVALID_KEY'],
      [[newKey(), ''], 'ERR_ANYSTORE_INVALID_KEY'],
      [[' '], 'ERR_ANYSTORE_INVALID_KEY'],
      [[new Uint8Array(0)], 'ERR_ANYSTORE_INVALID_KEY'],
      [['short'], 'ERR_ANYSTORE_INVALID_KEY'],
      [newKey(), 'ERR_ANYSTORE_INVALID_OPTION'],
      [null, 'ERR_ANYSTORE_INVALID_OPTION'],
    ]
    for (const [acceptedKeys, code] of bad) {
      const common = { encryptionKey: key, acceptedKeys }
      const writer = new PassThrough()
      const calls: [string, Promise<unknown>][] = [
        ['open', asUntyped(AnyStore.open)({ file: fresh, ...common })],
        ['stash', asUntyped(stash)({ file: fresh, key: 'k', thing: 1, ...common })],
        ['stash writer', asUntyped(stash)({ writer, key: 'k', thing: 1, ...common })],
        ['unstash', asUntyped(unstash)({ file, key: 'k', ...common })],
        ['editThing', asUntyped(editThing)({ file, key: 'k', ...common })],
        ['rekey', asUntyped(rekey)({ file, newEncryptionKey: newKey(), ...common })],
        ['restore', asUntyped(restore)({ file, from: file, ...common })],
      ]
      // Each call is observed at once: one that rejects while an earlier one is awaited is not
      // an unhandled rejection.
      const observed = calls.map(([name, call]) => [name, rejection(call)] as const)
      for (const [name, pending] of observed) {
        const error = await pending
        expect(error.code, `${name}, ${String(acceptedKeys)}`).toBe(code)
        expect(error.message, name).toContain('acceptedKeys')
      }
      expect(writer.destroyed).toBe(true)
    }
    expect(existsSync(fresh)).toBe(false)
    expect(readFileSync(file)).toEqual(before)
  })

  it('config mode reads through the ring, from a file and from a stream, and writes under encryptionKey', async () => {
    const file = join(tempDir(), 'config.store')
    const [oldKey, nextKey] = [newKey(), newKey()]
    await stash({ file, key: 'settings', thing: { port: 1 }, encryptionKey: oldKey })
    const ring = { encryptionKey: nextKey, acceptedKeys: [oldKey] }
    expect(await unstash({ file, key: 'settings', ...ring })).toEqual({ port: 1 })
    const stashFile = join(tempDir(), 'settings.stash')
    const writer = createWriteStream(stashFile)
    await stash({ writer, key: 'settings', thing: { port: 2 }, encryptionKey: oldKey })
    const reader = createReadStream(stashFile)
    expect(await unstash({ reader, key: 'settings', ...ring })).toEqual({ port: 2 })
    await stash({ file, key: 'settings', thing: { port: 3 }, ...ring })
    expect(await unstash({ file, key: 'settings', encryptionKey: nextKey })).toEqual({ port: 3 })
  })

  it('rekey reads the store under any key of the ring, the new key included', async () => {
    const file = join(tempDir(), 'a.store')
    const [oldKey, nextKey, otherKey] = [newKey(), newKey(), newKey()]
    await write(file, otherKey, [['a', 1]])
    await rekey({ file, encryptionKey: oldKey, acceptedKeys: [otherKey], newEncryptionKey: nextKey })
    expect(await read(file, nextKey)).toEqual([['a', 1]])
    // Already under the new key (another process committed with it): rekey commits it again.
    await rekey({ file, encryptionKey: oldKey, newEncryptionKey: nextKey })
    expect(await read(file, nextKey)).toEqual([['a', 1]])
    expect(await codeOf(rekey({ file, encryptionKey: oldKey, newEncryptionKey: newKey() }))).toBe(
      'ERR_ANYSTORE_WRONG_KEY',
    )
  })

  it('restore reads the store and the backup under any key of the ring', async () => {
    const dir = tempDir()
    const [file, backup] = [join(dir, 'a.store'), join(dir, 'backup.store')]
    const [oldKey, nextKey] = [newKey(), newKey()]
    await write(file, nextKey, [['a', 2]])
    await write(backup, oldKey, [['a', 1]])
    await restore({ file, from: backup, encryptionKey: nextKey, acceptedKeys: [oldKey] })
    expect(await read(file, nextKey)).toEqual([['a', 1]])
  })
})

describe('the CLI with --accepted-key-file', () => {
  it('reads a store under an accepted key and writes under --key-file', async () => {
    const dir = tempDir()
    const file = join(dir, 'a.store')
    const [oldKey, nextKey] = [newKey(), newKey()]
    await write(file, oldKey, [['a', 'x']])
    writeFileSync(join(dir, 'old.key'), oldKey, { mode: 0o600 })
    writeFileSync(join(dir, 'new.key'), nextKey, { mode: 0o600 })
    writeFileSync(join(dir, 'other.key'), newKey(), { mode: 0o600 })
    const ring = ['--key-file', join(dir, 'new.key')]
    const accepting = [
      ...ring,
      '--accepted-key-file',
      join(dir, 'other.key'),
      '--accepted-key-file',
      join(dir, 'old.key'),
    ]
    expect((await runCli(['get', file, 'a', '--raw', ...ring])).code).toBe(5)
    const got = await runCli(['get', file, 'a', '--raw', ...accepting])
    expect(got.stderr).toBe('')
    expect(got.stdout).toBe('x\n')
    expect((await runCli(['set', file, 'b', 'y', ...accepting])).code).toBe(0)
    expect(await read(file, nextKey)).toEqual([['a', 'x'], ['b', 'y']])
    writeFileSync(join(dir, 'bad.key'), 'short', { mode: 0o600 })
    const bad = await runCli(['get', file, 'a', ...ring, '--accepted-key-file', join(dir, 'bad.key')])
    expect(bad.code).toBe(9)
    expect(bad.stderr).toContain('--accepted-key-file')
  })
})

describe('rotating the key with processes running (README, "Rotating the key")', () => {
  it('no process fails at any step, and no increment is lost', { timeout: 60_000 }, async () => {
    const dir = tempDir()
    const file = join(dir, 'a.store')
    const [oldKey, nextKey] = [newKey(), newKey()]
    writeFileSync(join(dir, 'old.key'), oldKey, { mode: 0o600 })
    writeFileSync(join(dir, 'new.key'), nextKey, { mode: 0o600 })
    await write(file, oldKey, [['n', 0]])
    const loop = async (key: string, accepted: string[]) => {
      const child = spawnFixture('keyring-loop.mjs', [file, key, accepted.join(',')])
      expect(await nextMessage(child)).toBe('started')
      return child
    }
    const stop = async (child: Awaited<ReturnType<typeof loop>>) => {
      const report = nextMessage<{ done: number; code?: string }>(child)
      child.send('stop')
      const result = await report
      expect(result.code, child.stderrText()).toBeUndefined()
      return result.done
    }
    const pause = () => new Promise((resolve) => setTimeout(resolve, 300))
    // Before: a process with the old key only.
    const before = await loop(oldKey, [])
    // Step 1: a process that accepts the new key, still writing under the old one.
    const step1 = await loop(oldKey, [nextKey])
    let total = await stop(before)
    // Step 2: processes that write under the new key and accept the old one, while step 1 runs.
    const step2 = await loop(nextKey, [oldKey])
    await pause()
    total += await stop(step1)
    // Step 3: re-encrypt under the new key, while step 2 runs.
    const rekeyed = await runCli([
      'rekey',
      file,
      '--key-file',
      join(dir, 'old.key'),
      '--new-key-file',
      join(dir, 'new.key'),
    ])
    expect(rekeyed.stderr).toBe('')
    expect(rekeyed.code).toBe(0)
    // Step 4: the old key dropped, while step 2 still runs.
    const step4 = await loop(nextKey, [])
    await pause()
    total += await stop(step2)
    total += await stop(step4)
    expect(await read(file, nextKey)).toEqual([['n', total]])
    expect(await codeOf(read(file, oldKey))).toBe('ERR_ANYSTORE_WRONG_KEY')
  })
})
