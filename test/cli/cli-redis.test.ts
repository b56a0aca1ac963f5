import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createClient } from 'redis'
import { afterAll, afterEach, describe, expect, it, onTestFinished } from 'vitest'
import { openFileBackend } from '../../src/backends/open-backend.js'
import { EXIT_CODES } from '../../src/cli/exit-codes.js'
import { encodeValue } from '../../src/format/codec.js'
import { resolveOptions } from '../../src/store/options.js'
import { AnyStore, type AnyStoreOptions, newKey, readFileHeader } from '../../src/index.js'
import { freePort, type RedisServer, redisTestsEnabled, SKIP_MESSAGE, startRedis } from '../backends/redis/server.js'
import { CLI, fixture, requireBuild, runCli, Terminal, tempDir } from '../cli-support.js'

requireBuild()

const server: RedisServer | undefined = redisTestsEnabled ? await startRedis() : undefined
afterAll(async () => {
  await server?.stop()
})

const terminals: Terminal[] = []
afterEach(() => {
  for (const terminal of terminals.splice(0)) terminal.close()
})

const quote = (text: string) => `'${text.replaceAll("'", `'\\''`)}'`
/** A store name with ':'s in it, as applications name them. */
const freshName = () => `cli:test:${randomBytes(6).toString('hex')}`

interface Setup {
  dir: string
  key: string
  keyFile: string
  otherKey: string
  otherKeyFile: string
}

function setup(): Setup {
  const dir = tempDir()
  const key = newKey()
  const otherKey = newKey()
  const keyFile = join(dir, 'a.key')
  const otherKeyFile = join(dir, 'b.key')
  writeFileSync(keyFile, `${key}\n`, { mode: 0o600 })
  writeFileSync(otherKeyFile, `${otherKey}\n`, { mode: 0o600 })
  return { dir, key, keyFile, otherKey, otherKeyFile }
}

if (server === undefined) {
  describe('CLI on Redis', () => {
    it.skip(SKIP_MESSAGE, () => {})
  })
} else {
  const url = server.url
  /** The CLI's form of a store: the URL, then the name after '#'. */
  const at = (name: string, db = '') => `${url}${db}#${name}`
  const redisOf = (name: string) => ({ url, name })

  async function admin() {
    const client = createClient({ url })
    await client.connect()
    onTestFinished(() => client.destroy())
    return client
  }

  /** The Redis keys of a store name: none before it is created. */
  async function keysUnder(name: string): Promise<string[]> {
    return (await admin()).keys(`anystore:{${name}}:*`)
  }

  async function open(options: AnyStoreOptions) {
    const store = await AnyStore.open(options)
    onTestFinished(() => store.close())
    return store
  }

  async function entriesOf(options: AnyStoreOptions) {
    const store = await AnyStore.open(options)
    try {
      return await store.entries()
    } finally {
      await store.close()
    }
  }

  describe('CLI on Redis: the commands', () => {
    it('set, get, delete, keys, size, dump, import and verify work on redis://HOST:PORT/DB#NAME', async () => {
      const s = setup()
      const name = freshName()
      const store = at(name, '/0')
      const k = ['--key-file', s.keyFile]
      expect((await runCli(['set', store, 'greeting', 'hello', ...k])).code).toBe(0)
      expect((await runCli(['set', store, 'limits', '--json', '{"max": 10}', ...k])).code).toBe(0)
      expect((await runCli(['set', store, '--number', '7', 'seven', ...k])).code).toBe(0)
      const got = await runCli(['get', store, 'greeting', '--raw', ...k])
      expect(got).toMatchObject({ code: 0, stdout: 'hello\n' })
      expect(await runCli(['get', store, 'limits', ...k])).toMatchObject({
        code: 0,
        stdout: '{"max":10}\n',
      })
      expect(await runCli(['keys', store, '--json', ...k])).toMatchObject({
        code: 0,
        stdout: '["greeting","limits",7]\n',
      })
      expect(await runCli(['size', store, ...k])).toMatchObject({ code: 0, stdout: '3\n' })
      expect(await runCli(['delete', store, 'limits', ...k])).toMatchObject({ code: 0 })
      const missing = await runCli(['delete', store, 'limits', ...k])
      expect(missing.code).toBe(EXIT_CODES.ERR_ANYSTORE_THING_NOT_FOUND)
      expect(missing.stderr).toContain(`${url}/0#${name}`)
      const dump = await runCli(['dump', store, ...k])
      expect(dump.code).toBe(0)
      const imported = await runCli(['import', at(freshName()), ...k], { input: dump.stdout })
      expect(imported.code).toBe(0)
      expect(await runCli(['verify', store, ...k])).toMatchObject({ code: 0, stdout: 'ok: 2 entries\n' })
      // What the CLI wrote is the store the library opens under the same name and key.
      expect(await entriesOf({ redis: redisOf(name), encryptionKey: s.key })).toEqual([
        ['greeting', 'hello'],
        [7, 'seven'],
      ])
      // Nothing readable on the server: the name is, the key names and values are not.
      const raw = JSON.stringify(await (await admin()).hGetAll(`anystore:{${name}}:entries`))
      expect(raw).not.toContain('greeting')
      expect(raw).not.toContain('hello')
    })

    it('takes the key from $ANYSTORE_KEY and a passphrase from --passphrase-file, as for files', async () => {
      const s = setup()
      const byEnv = at(freshName())
      expect((await runCli(['set', byEnv, 'a', '1'], { env: { ANYSTORE_KEY: s.key } })).code).toBe(0)
      expect(await runCli(['get', byEnv, 'a'], { env: { ANYSTORE_KEY: s.key } })).toMatchObject({
        code: 0,
        stdout: '"1"\n',
      })
      const wrong = await runCli(['get', byEnv, 'a'], { env: { ANYSTORE_KEY: s.otherKey } })
      expect(wrong.code).toBe(EXIT_CODES.ERR_ANYSTORE_WRONG_KEY)

      const name = freshName()
      const passphraseFile = join(s.dir, 'pass')
      writeFileSync(passphraseFile, 'a long sentence only I know\n', { mode: 0o600 })
      const p = ['--passphrase-file', passphraseFile]
      expect((await runCli(['set', at(name), 'b', '2', ...p])).code).toBe(0)
      expect(await runCli(['get', at(name), 'b', '--raw', ...p])).toMatchObject({ code: 0, stdout: '2\n' })
      expect(await entriesOf({ redis: redisOf(name), passphrase: 'a long sentence only I know' })).toEqual([
        ['b', '2'],
      ])
      const withKey = await runCli(['get', at(name), 'b', '--key-file', s.keyFile])
      expect(withKey.code).toBe(EXIT_CODES.ERR_ANYSTORE_WRONG_KEY)
    })

    it('a name with no store under it exits 4 for the commands that read, and creates nothing', async () => {
      const s = setup()
      const name = freshName()
      for (const args of [
        ['get', at(name), 'a'],
        ['keys', at(name)],
        ['size', at(name)],
        ['dump', at(name)],
        ['verify', at(name)],
        ['delete', at(name), 'a'],
      ]) {
        const result = await runCli([...args, '--key-file', s.keyFile])
        expect(result.code, args[0]).toBe(EXIT_CODES.ERR_ANYSTORE_FILE_NOT_FOUND)
        expect(result.stderr, args[0]).toContain('no store has this name')
      }
      expect(await keysUnder(name)).toEqual([])
    })

    it('a wrong key exits 5 and changes nothing', async () => {
      const s = setup()
      const name = freshName()
      expect((await runCli(['set', at(name), 'a', '1', '--key-file', s.keyFile])).code).toBe(0)
      for (const args of [
        ['get', at(name), 'a'],
        ['set', at(name), 'a', '2'],
        ['delete', at(name), 'a'],
      ]) {
        const result = await runCli([...args, '--key-file', s.otherKeyFile])
        expect(result.code, args[0]).toBe(EXIT_CODES.ERR_ANYSTORE_WRONG_KEY)
      }
      expect(await entriesOf({ redis: redisOf(name), encryptionKey: s.key })).toEqual([['a', '1']])
    })

    it('a refused connection exits 29 with a message naming the server, without the password', async () => {
      const s = setup()
      const port = await freePort()
      const result = await runCli([
        'get',
        `redis://user:s3cret-pw@127.0.0.1:${port}#app:x`,
        'a',
        '--key-file',
        s.keyFile,
        '--redis-timeout',
        '300',
      ])
      expect(result.code).toBe(EXIT_CODES.ERR_ANYSTORE_UNAVAILABLE)
      expect(result.stderr).toContain(`ERR_ANYSTORE_UNAVAILABLE`)
      expect(result.stderr).toContain(`127.0.0.1:${port}`)
      expect(result.stderr).not.toContain('s3cret-pw')
    })

    it('foreign data under the name exits 28 and is left as it was', async () => {
      const s = setup()
      const name = freshName()
      const client = await admin()
      await client.set(`anystore:{${name}}:meta`, 'not ours')
      const result = await runCli(['set', at(name), 'a', '1', '--key-file', s.keyFile])
      expect(result.code).toBe(EXIT_CODES.ERR_ANYSTORE_FOREIGN_DATA)
      expect(await client.get(`anystore:{${name}}:meta`)).toBe('not ours')
    })
  })

  describe('CLI on Redis: refusals', () => {
    it('info, rekey and restore take store files only: usage error, nothing created', async () => {
      const s = setup()
      const name = freshName()
      const file = join(s.dir, 'app.store')
      expect((await runCli(['set', file, 'a', '1', '--key-file', s.keyFile])).code).toBe(0)
      const cases: [string[], string][] = [
        [['info', at(name)], 'anystore size'],
        [['rekey', at(name), '--new-key-file', s.otherKeyFile], 'anystore copy'],
        [['restore', at(name), file], 'anystore copy'],
        [['restore', file, at(name)], 'anystore copy'],
      ]
      for (const [args, hint] of cases) {
        const result = await runCli([...args, '--key-file', s.keyFile])
        expect(result.code, args.join(' ')).toBe(EXIT_CODES.USAGE)
        expect(result.stderr, args.join(' ')).toContain('is a Redis store')
        expect(result.stderr, args.join(' ')).toContain(hint)
      }
      expect(await keysUnder(name)).toEqual([])
    })

    it('file-only flags on a Redis store, and --redis-timeout on a file, are usage errors', async () => {
      const s = setup()
      const name = freshName()
      const k = ['--key-file', s.keyFile]
      const cases: string[][] = [
        ['get', at(name), 'a', '--lock', 'flock'],
        ['get', at(name), 'a', '--lock-timeout', '100'],
        ['set', at(name), 'a', '1', '--compress'],
        ['get', at(name), 'a', '--accepted-key-file', s.otherKeyFile],
        ['copy', at(name), join(s.dir, 'x.store'), '--accepted-key-file', s.otherKeyFile],
        ['copy', join(s.dir, 'x.store'), at(name), '--compress'],
      ]
      for (const args of cases) {
        const result = await runCli([...args, ...k])
        expect(result.code, args.join(' ')).toBe(EXIT_CODES.USAGE)
        expect(result.stderr, args.join(' ')).toMatch(/applies to store files, not to redis:/)
      }
      const onFile = await runCli(['get', join(s.dir, 'x.store'), 'a', '--redis-timeout', '100', ...k])
      expect(onFile.code).toBe(EXIT_CODES.USAGE)
      expect(onFile.stderr).toContain('--redis-timeout applies to Redis stores')
      expect(await keysUnder(name)).toEqual([])
      expect(existsSync(join(s.dir, 'x.store'))).toBe(false)
    })

    it('a Redis URL without a name, or with braces in it, is a usage error', async () => {
      const s = setup()
      for (const location of [url, `${url}#`, `${url}#a{b}`]) {
        const result = await runCli(['set', location, 'a', '1', '--key-file', s.keyFile])
        expect(result.code, location).toBe(EXIT_CODES.USAGE)
      }
      const noName = await runCli(['get', url, 'a', '--key-file', s.keyFile])
      expect(noName.stderr).toContain("put its name after '#'")
      expect((await (await admin()).keys('anystore:{}*'))).toEqual([])
    })
  })

  describe('CLI on Redis: copy', () => {
    const sample: [string | number, unknown][] = [
      ['greeting', 'hello'],
      ['limits', { max: 10, tags: new Set(['a']) }],
      [7, 7n],
    ]

    it('file → Redis re-seals under --to-key-file, in one commit; the source key does not open the copy', async () => {
      const s = setup()
      const file = join(s.dir, 'app.store')
      const src = await open({ file, encryptionKey: s.key })
      for (const [key, value] of sample) await src.set(key, value)
      await src.close()
      const name = freshName()
      const result = await runCli([
        'copy', file, at(name), '--key-file', s.keyFile, '--to-key-file', s.otherKeyFile,
      ])
      expect(result).toMatchObject({ code: 0, stdout: `copied 3 entries from ${file} to ${at(name)}\n` })
      expect(await entriesOf({ redis: redisOf(name), encryptionKey: s.otherKey })).toEqual(sample)
      await expect(AnyStore.open({ redis: redisOf(name), encryptionKey: s.key })).rejects.toMatchObject({
        code: 'ERR_ANYSTORE_WRONG_KEY',
      })
      // One commit: the store's commit number went from 0 to 1.
      expect(await (await admin()).hGet(`anystore:{${name}}:entries`, 'seq')).toBe('1')
    })

    it('Redis → file re-seals under --to-key-file, in one commit; the source key does not open the copy', async () => {
      const s = setup()
      const name = freshName()
      const src = await open({ redis: redisOf(name), encryptionKey: s.key })
      for (const [key, value] of sample) await src.set(key, value)
      const file = join(s.dir, 'copy.store')
      const result = await runCli([
        'copy', at(name), file, '--key-file', s.keyFile, '--to-key-file', s.otherKeyFile,
      ])
      expect(result).toMatchObject({ code: 0, stdout: `copied 3 entries from ${at(name)} to ${file}\n` })
      expect(await entriesOf({ file, encryptionKey: s.otherKey })).toEqual(sample)
      await expect(AnyStore.open({ file, encryptionKey: s.key })).rejects.toMatchObject({
        code: 'ERR_ANYSTORE_WRONG_KEY',
      })
      expect(readFileHeader(file).header.counter).toBe(1n)
    })

    it('Redis → Redis and file → file, with the source key kept when no --to- option is given', async () => {
      const s = setup()
      const a = freshName()
      const b = freshName()
      const src = await open({ redis: redisOf(a), encryptionKey: s.key })
      for (const [key, value] of sample) await src.set(key, value)
      expect((await runCli(['copy', at(a), at(b), '--key-file', s.keyFile])).code).toBe(0)
      expect(await entriesOf({ redis: redisOf(b), encryptionKey: s.key })).toEqual(sample)
      const one = join(s.dir, 'one.store')
      const two = join(s.dir, 'two.store')
      expect((await runCli(['copy', at(b), one], { env: { ANYSTORE_KEY: s.key } })).code).toBe(0)
      expect((await runCli(['copy', one, two], { env: { ANYSTORE_KEY: s.key } })).code).toBe(0)
      expect(await entriesOf({ file: two, encryptionKey: s.key })).toEqual(sample)
    })

    it('passphrases on both sides: --passphrase-file for SRC, --to-passphrase-file for DST', async () => {
      const s = setup()
      const file = join(s.dir, 'app.store')
      const src = await open({ file, passphrase: 'source passphrase here' })
      await src.set('a', 1)
      await src.close()
      writeFileSync(join(s.dir, 'p1'), 'source passphrase here\n', { mode: 0o600 })
      writeFileSync(join(s.dir, 'p2'), 'target passphrase here\n', { mode: 0o600 })
      const name = freshName()
      const result = await runCli([
        'copy', file, at(name),
        '--passphrase-file', join(s.dir, 'p1'),
        '--to-passphrase-file', join(s.dir, 'p2'),
      ])
      expect(result.code).toBe(0)
      expect(await entriesOf({ redis: redisOf(name), passphrase: 'target passphrase here' })).toEqual([['a', 1]])
      await expect(
        AnyStore.open({ redis: redisOf(name), passphrase: 'source passphrase here' }),
      ).rejects.toMatchObject({ code: 'ERR_ANYSTORE_WRONG_KEY' })
    })

    it('refuses a destination with entries (exit 2, left as it was); --force replaces them in one commit', async () => {
      const s = setup()
      const name = freshName()
      const src = await open({ redis: redisOf(name), encryptionKey: s.key })
      await src.set('a', 1)
      await src.set('b', 2)
      const file = join(s.dir, 'dst.store')
      const dst = await open({ file, encryptionKey: s.otherKey })
      await dst.set('old', 'kept?')
      await dst.close()
      const { storeId } = readFileHeader(file).header
      const k = ['--key-file', s.keyFile, '--to-key-file', s.otherKeyFile]
      const refused = await runCli(['copy', at(name), file, ...k])
      expect(refused.code).toBe(EXIT_CODES.USAGE)
      expect(refused.stderr).toContain('already holds 1 entry: nothing was copied')
      expect(await entriesOf({ file, encryptionKey: s.otherKey })).toEqual([['old', 'kept?']])

      const forced = await runCli(['copy', at(name), file, '--force', ...k])
      expect(forced.code).toBe(0)
      expect(await entriesOf({ file, encryptionKey: s.otherKey })).toEqual([
        ['a', 1],
        ['b', 2],
      ])
      // The same store, continued by one more commit: processes that have it open see a commit.
      const after = readFileHeader(file).header
      expect(after.storeId).toEqual(storeId)
      expect(after.counter).toBe(2n)

      // The other direction: a Redis destination with entries.
      const other = freshName()
      const target = await open({ redis: redisOf(other), encryptionKey: s.otherKey })
      await target.set('old', 'x')
      const refusedRedis = await runCli(['copy', file, at(other), '--key-file', s.otherKeyFile])
      expect(refusedRedis.code).toBe(EXIT_CODES.USAGE)
      expect(await target.entries()).toEqual([['old', 'x']])
      expect((await runCli(['copy', file, at(other), '--force', '--key-file', s.otherKeyFile])).code).toBe(0)
      expect(await target.entries()).toEqual([
        ['a', 1],
        ['b', 2],
      ])
    })

    it('a destination under another key is refused even with --force (exit 5), and left as it was', async () => {
      const s = setup()
      const file = join(s.dir, 'src.store')
      const src = await open({ file, encryptionKey: s.key })
      await src.set('a', 1)
      await src.close()
      const name = freshName()
      const dst = await open({ redis: redisOf(name), encryptionKey: s.key })
      await dst.set('mine', 1)
      const result = await runCli([
        'copy', file, at(name), '--force', '--key-file', s.keyFile, '--to-key-file', s.otherKeyFile,
      ])
      expect(result.code).toBe(EXIT_CODES.ERR_ANYSTORE_WRONG_KEY)
      expect(await dst.entries()).toEqual([['mine', 1]])
    })

    it('a wrong source key or a missing source writes nothing, not even an empty destination', async () => {
      const s = setup()
      const name = freshName()
      const src = await open({ redis: redisOf(name), encryptionKey: s.key })
      await src.set('a', 1)
      const file = join(s.dir, 'dst.store')
      const wrong = await runCli(['copy', at(name), file, '--key-file', s.otherKeyFile])
      expect(wrong.code).toBe(EXIT_CODES.ERR_ANYSTORE_WRONG_KEY)
      expect(existsSync(file)).toBe(false)

      const target = freshName()
      const wrongFile = await runCli(['copy', join(s.dir, 'none.store'), at(target), '--key-file', s.keyFile])
      expect(wrongFile.code).toBe(EXIT_CODES.ERR_ANYSTORE_FILE_NOT_FOUND)
      const noStore = await runCli(['copy', at(freshName()), at(target), '--key-file', s.keyFile])
      expect(noStore.code).toBe(EXIT_CODES.ERR_ANYSTORE_FILE_NOT_FOUND)
      expect(await keysUnder(target)).toEqual([])
    })

    // 40,000 sets were once 160,000 script arguments, more than node-redis can send.
    it('into Redis, a copy of 40,000 entries is one commit', async () => {
      const s = setup()
      const file = join(s.dir, 'big.store')
      const src = await open({ file, encryptionKey: s.key })
      const count = 40_000
      await src.run(async (tx) => {
        for (let i = 0; i < count; i++) await tx.set(`key:${i}`, i)
      })
      await src.close()
      const name = freshName()
      const result = await runCli(['copy', file, at(name), '--key-file', s.keyFile])
      expect(result.code).toBe(0)
      const copy = await open({ redis: redisOf(name), encryptionKey: s.key })
      expect(await copy.size()).toBe(count)
      const entries = await copy.entries()
      expect(entries[0]).toEqual(['key:0', 0])
      expect(entries[count - 1]).toEqual([`key:${count - 1}`, count - 1])
      expect(await (await admin()).hGet(`anystore:{${name}}:entries`, 'seq')).toBe('1')
    })

    it('a source value that does not decode is refused (exit 6) before the destination is created', async () => {
      const s = setup()
      const file = join(s.dir, 'bad.store')
      // A value no anystore writes (0xc1 is never used in MessagePack), sealed under the key.
      const backend = openFileBackend(file, resolveOptions({ file, encryptionKey: s.key }))
      await backend.transaction(async (tx) =>
        tx.commit([
          { kind: 'set', key: 'good', entry: { value: encodeValue(1) } },
          { kind: 'set', key: 'bad', entry: { value: Uint8Array.of(0xc1) } },
        ]),
      )
      backend.close()
      const name = freshName()
      const intoRedis = await runCli(['copy', file, at(name), '--key-file', s.keyFile])
      expect(intoRedis.code).toBe(EXIT_CODES.ERR_ANYSTORE_CORRUPT_FILE)
      expect(intoRedis.stderr).toContain('"bad"')
      expect(await keysUnder(name)).toEqual([])
      const intoFile = await runCli(['copy', file, join(s.dir, 'dst', 'copy.store'), '--key-file', s.keyFile])
      expect(intoFile.code).toBe(EXIT_CODES.ERR_ANYSTORE_CORRUPT_FILE)
      expect(existsSync(join(s.dir, 'dst'))).toBe(false)
    })

    it('the same store as SRC and DST is a usage error', async () => {
      const s = setup()
      const name = freshName()
      const result = await runCli(['copy', at(name), at(name), '--key-file', s.keyFile])
      expect(result.code).toBe(EXIT_CODES.USAGE)
      expect(result.stderr).toContain('the same store')
      // The same database spelled with its number, a trailing slash, or credentials.
      const base = url.replace(/\/$/, '')
      for (const spelling of [`${base}/0#${name}`, `${base}/#${name}`, `${base.replace('//', '//user:pw@')}#${name}`]) {
        const again = await runCli(['copy', at(name), spelling, '--key-file', s.keyFile, '--force'])
        expect(again.code, spelling).toBe(EXIT_CODES.USAGE)
        expect(again.stderr, spelling).toContain('the same store')
      }
    })

    it('keeps expiry times: file → file exactly; into Redis as far as the Redis backend keeps them', async () => {
      const s = setup()
      const file = join(s.dir, 'src.store')
      const expiresAt = Date.now() + 3_600_000
      const src = await open({ file, encryptionKey: s.key })
      await src.set('lasting', 1)
      await src.set('expiring', 2, { expiresAt })
      await src.close()
      const copy = join(s.dir, 'copy.store')
      expect((await runCli(['copy', file, copy, '--key-file', s.keyFile])).code).toBe(0)
      const dst = await open({ file: copy, encryptionKey: s.key })
      const before = Date.now()
      const ttl = await dst.ttl('expiring')
      const after = Date.now()
      expect(ttl).toBeDefined()
      // ttl() is expiresAt minus the time of the call: the expiry time itself came across.
      expect(before + ttl!).toBeLessThanOrEqual(expiresAt)
      expect(after + ttl!).toBeGreaterThanOrEqual(expiresAt)
      expect(await dst.ttl('lasting')).toBeUndefined()

      const name = freshName()
      const probe = await open({ redis: redisOf(freshName()), encryptionKey: s.key })
      const keepsExpiry = await probe.set('p', 1, { ttlMs: 60_000 }).then(
        () => true,
        (error) => {
          expect(error).toMatchObject({ code: 'ERR_ANYSTORE_INVALID_OPTION' })
          return false
        },
      )
      const intoRedis = await runCli(['copy', file, at(name), '--key-file', s.keyFile])
      if (keepsExpiry) {
        expect(intoRedis.code).toBe(0)
        const redisStore = await open({ redis: redisOf(name), encryptionKey: s.key })
        const ttlBefore = Date.now()
        const redisTtl = await redisStore.ttl('expiring')
        const ttlAfter = Date.now()
        expect(ttlBefore + redisTtl!).toBeLessThanOrEqual(expiresAt)
        expect(ttlAfter + redisTtl!).toBeGreaterThanOrEqual(expiresAt)
      } else {
        // Refused before anything is written, rather than stored as entries that never expire.
        expect(intoRedis.code).toBe(EXIT_CODES.ERR_ANYSTORE_INVALID_OPTION)
        expect(intoRedis.stderr).toContain('does not keep expiries')
        expect(await entriesOf({ redis: redisOf(name), encryptionKey: s.key })).toEqual([])
      }
    })

    it('help names the destination key options and --force', async () => {
      const help = await runCli(['copy', '--help'])
      expect(help.code).toBe(0)
      for (const text of ['--to-key-file', '--to-passphrase-file', '--to-passphrase', '--force', '#NAME']) {
        expect(help.stdout).toContain(text)
      }
    })
  })

  describe('CLI on Redis: edit', () => {
    it('edit URL#NAME KEY edits one value with the editor', async () => {
      const s = setup()
      const name = freshName()
      const store = await open({ redis: redisOf(name), encryptionKey: s.key })
      await store.set('cfg', { port: 80 })
      const steps = join(s.dir, 'steps.json')
      const log = join(s.dir, 'editor.log')
      writeFileSync(log, '')
      writeFileSync(steps, JSON.stringify([{ write: '{"port": 443}' }]))
      const terminal = new Terminal(`${quote(process.execPath)} ${quote(CLI)} edit ${quote(at(name))} cfg`, {
        ANYSTORE_KEY: s.key,
        EDITOR: `${quote(process.execPath)} ${quote(fixture('fake-editor.mjs'))}`,
        FAKE_EDITOR_STEPS: steps,
        FAKE_EDITOR_LOG: log,
      })
      terminals.push(terminal)
      expect(await terminal.exitCode()).toBe(0)
      const shown = JSON.parse(readFileSync(log, 'utf8').trim()).content
      expect(JSON.parse(shown)).toEqual({ port: 80 })
      expect(await store.get('cfg')).toEqual({ port: 443 })
    })
  })
}
