import { join } from 'node:path'
import { createClient } from 'redis'
import { describe, expect, it, onTestFinished } from 'vitest'
import { COMMIT, UNPACKED_CHANGES } from '../../../src/backends/redis/scripts.js'
import { AnyStore, type AnyStoreOptions, newKey } from '../../../src/index.js'
import { exited, nextMessage, rejection, runFixture, spawnFixture, tempDir } from '../../helpers.js'
import { admin, commitScript, entryFields, freshName, keysOf, open, recordedCommits, sleep } from './helpers.js'
import { startProxy } from './proxy.js'
import { freePort, sharedRedis, startRedis } from './server.js'

// Tests that kill or restart the server get one of their own; the others share this one.
const shared = await sharedRedis('redis backend')

if (shared !== undefined) {
  const server = shared

  describe('redis backend: processes', () => {
    it('4 processes × 250 run() increments end at exactly 1000', async () => {
      const redis = { url: server.url, name: freshName() }
      const encryptionKey = newKey()
      // Four processes on one key, each starting its next transaction the moment its last one
      // committed: about one run() in a thousand loses the race more than the default ten
      // times in a row (measured), and one TransactionConflictError would end its child.
      const options = JSON.stringify({ redis, encryptionKey, maxRunAttempts: 1000 })
      await Promise.all(
        [1, 2, 3, 4].map(() => runFixture('conformance-child.mjs', [options, 'increment', '250'])),
      )
      const store = await AnyStore.open({ redis, encryptionKey })
      expect(await store.get('n')).toBe(1000)
      await store.close()
    })

    it('node-redis is loaded only by a store that uses Redis', async () => {
      const loaded = async (options: AnyStoreOptions) => {
        const child = spawnFixture('redis-loaded.mjs', [JSON.stringify(options)])
        const answer = await nextMessage<boolean>(child)
        await exited(child)
        return answer
      }
      expect(await loaded({ file: join(tempDir(), 'store.db'), encryptionKey: newKey() })).toBe(false)
      expect(await loaded({ persist: false })).toBe(false)
      expect(await loaded({ redis: { url: server.url, name: freshName() }, encryptionKey: newKey() })).toBe(
        true,
      )
    })
  })

  describe('redis backend: nothing readable on the server', () => {
    it('the append-only file holds no key name and no value, expiring entries and watchers included', async () => {
      const store = await open(server)
      // A watcher keeps the commits announced on the store's channel all along.
      const heard: unknown[] = []
      const watcher = store.watch((change) => heard.push(change))
      onTestFinished(() => watcher.close())
      const secrets = {
        'customer:alice@example.com': 'card 4111-1111-1111-1111',
        'session:token-WJ8Y3Q': { user: 'bob-the-builder', roles: ['administrator'] },
      }
      for (const [key, value] of Object.entries(secrets)) await store.set(key, value)
      await store.set(123456789, 'number-key-value-ZQX')
      await store.run(async (tx) => tx.set('in-a-transaction-key', 'in-a-transaction-value'))
      await store.delete('customer:alice@example.com')
      await store.set('customer:alice@example.com', 'card 4111-1111-1111-1111')
      await store.set('expiring-key-KQV', 'expiring-value-KQV', { ttlMs: 60_000 })
      await store.set('brief-key-JXW', 'brief-value-JXW', { ttlMs: 0 })
      await store.setIfAbsent('claimed-key-PLM', 'claimed-value-PLM', { ttlMs: 60_000 })
      expect(await store.expire('expiring-key-KQV', 120_000)).toBe(true)
      expect(await store.size()).toBe(6)
      while (heard.length < 9) await sleep(10)
      const aof = server.aof()
      // The store's writes are there (its key names are), just not in a readable form.
      expect(aof.includes('entries')).toBe(true)
      const plain = [
        'alice@example.com',
        '4111-1111',
        'token-WJ8Y3Q',
        'bob-the-builder',
        'administrator',
        'number-key-value-ZQX',
        'in-a-transaction',
        '-KQV',
        '-JXW',
        '-PLM',
      ]
      for (const text of plain) expect(aof.includes(text), text).toBe(false)
      // A number key as the payload encodes it (float64, big-endian), in case it were stored so.
      const numberKey = Buffer.alloc(8)
      numberKey.writeDoubleBE(123456789)
      expect(aof.includes(numberKey)).toBe(false)
    })

    it('an entry copied to another field or another store does not open', async () => {
      const client = await admin(server)
      const encryptionKey = newKey()
      const name = freshName()
      const store = await open(server, { name }, { encryptionKey })
      await store.set('a', 'value of a')
      await store.set('b', 'value of b')
      const { entries } = keysOf(name)
      const raw = client.withTypeMapping({ [36]: Buffer } as const)
      const fields = await entryFields(client, entries)
      expect(fields).toHaveLength(2)
      const [first, second] = fields as [Buffer, Buffer]
      const sealedFirst = (await raw.hGet(entries, first)) as unknown as Buffer
      const sealedSecond = (await raw.hGet(entries, second)) as unknown as Buffer
      // Swapped: each key's read fails instead of answering the other's value.
      await client.hSet(entries, [
        [first, sealedSecond],
        [second, sealedFirst],
      ])
      expect((await rejection(store.get('a'))).code).toBe('ERR_ANYSTORE_CORRUPT_FILE')
      expect((await rejection(store.get('b'))).code).toBe('ERR_ANYSTORE_CORRUPT_FILE')
      expect((await rejection(store.entries())).code).toBe('ERR_ANYSTORE_CORRUPT_FILE')
      // Copied into another store under the same key: it does not open there either.
      const otherName = freshName()
      const other = await open(server, { name: otherName }, { encryptionKey })
      await other.set('a', 'other a')
      const [otherField] = await entryFields(client, keysOf(otherName).entries)
      // The same key name has another field in another store: nothing links the two.
      expect(fields.some((field) => field.equals(otherField!))).toBe(false)
      await client.hSet(keysOf(otherName).entries, otherField!, sealedFirst)
      expect((await rejection(other.get('a'))).code).toBe('ERR_ANYSTORE_CORRUPT_FILE')
    })
  })

  describe('redis backend: opening', () => {
    it('a wrong key is WrongKeyError, and a passphrase store opens only with its passphrase', async () => {
      const name = freshName()
      const encryptionKey = newKey()
      const store = await open(server, { name }, { encryptionKey })
      await store.set('a', 1)
      const wrong = await rejection(AnyStore.open({ redis: { url: server.url, name }, encryptionKey: newKey() }))
      expect(wrong.code).toBe('ERR_ANYSTORE_WRONG_KEY')
      // A store in Redis is no file.
      expect(wrong.message).toContain('(the store is left untouched)')
      const needsKey = await rejection(
        AnyStore.open({ redis: { url: server.url, name }, passphrase: 'a long passphrase' }),
      )
      expect(needsKey).toMatchObject({ code: 'ERR_ANYSTORE_WRONG_KEY', needs: 'key' })
      expect(needsKey.message).toContain('(the store is left untouched)')
      expect(await store.get('a')).toBe(1)

      const phrased = freshName()
      const first = await open(server, { name: phrased }, { passphrase: 'correct horse battery' })
      await first.set('p', 'q')
      const again = await open(server, { name: phrased }, { passphrase: 'correct horse battery' })
      expect(await again.get('p')).toBe('q')
      const badPhrase = await rejection(
        AnyStore.open({ redis: { url: server.url, name: phrased }, passphrase: 'wrong horse battery' }),
      )
      expect(badPhrase.code).toBe('ERR_ANYSTORE_WRONG_KEY')
      expect(badPhrase.message).toContain('(the store is left untouched)')
    }, 30_000)

    it('foreign data under the name is ForeignDataError and stays untouched', async () => {
      const client = await admin(server)
      const cases: [string, (name: string) => Promise<unknown>][] = [
        ['a hash of another program as meta', (n) => client.hSet(keysOf(n).meta, { owner: 'someone else' })],
        ['a string as meta', (n) => client.set(keysOf(n).meta, 'not a hash')],
        ['our entries without meta', (n) => client.hSet(keysOf(n).entries, 'f', 'v')],
        ['a list where the order set goes', (n) => client.rPush(keysOf(n).order, 'x')],
        ['a hash where the expiry index goes', (n) => client.hSet(keysOf(n).expiry, 'f', 'v')],
      ]
      for (const [what, plant] of cases) {
        const name = freshName()
        await plant(name)
        const before = await Promise.all(keysOf(name).all.map(async (k) => [k, await client.dump(k)]))
        const error = await rejection(AnyStore.open({ redis: { url: server.url, name }, encryptionKey: newKey() }))
        expect(error.code, what).toBe('ERR_ANYSTORE_FOREIGN_DATA')
        const after = await Promise.all(keysOf(name).all.map(async (k) => [k, await client.dump(k)]))
        expect(after, what).toEqual(before)
      }
    })

    it('a key of the store replaced by a value of another type fails reads with ForeignDataError', async () => {
      const client = await admin(server)
      const name = freshName()
      const store = await open(server, { name })
      await store.set('a', 1)
      await client.del(keysOf(name).entries)
      await client.set(keysOf(name).entries, 'a string now')
      expect((await rejection(store.get('a'))).code).toBe('ERR_ANYSTORE_FOREIGN_DATA')
      expect((await rejection(store.set('b', 2))).code).toBe('ERR_ANYSTORE_FOREIGN_DATA')
      expect(await client.get(keysOf(name).entries)).toBe('a string now')
    })

    it('a store deleted and created anew under the name is StoreReplacedError for an open instance', async () => {
      const client = await admin(server)
      const name = freshName()
      const encryptionKey = newKey()
      const store = await open(server, { name }, { encryptionKey })
      await store.set('a', 1)
      await client.del(keysOf(name).all)
      expect((await rejection(store.set('b', 2))).code).toBe('ERR_ANYSTORE_STORE_REPLACED')
      const other = await open(server, { name }, { encryptionKey })
      await other.set('a', 2)
      expect((await rejection(store.get('a'))).code).toBe('ERR_ANYSTORE_STORE_REPLACED')
      expect((await rejection(store.keys())).code).toBe('ERR_ANYSTORE_STORE_REPLACED')
    })

    it('connection refused at open is BackendUnavailableError within the timeout', async () => {
      const port = await freePort()
      const started = Date.now()
      const error = await rejection(
        AnyStore.open({ redis: { url: `redis://127.0.0.1:${port}`, name: 'x', timeoutMs: 300 } }),
      )
      expect(error.code).toBe('ERR_ANYSTORE_UNAVAILABLE')
      expect(error.message).toContain('ECONNREFUSED')
      expect(Date.now() - started).toBeLessThan(300 + 1000)
    })

    it('a read-only instance on a name with no store creates nothing and sees the store once written', async () => {
      const client = await admin(server)
      const name = freshName()
      const encryptionKey = newKey()
      const reader = await open(server, { name }, { encryptionKey, readOnly: true })
      expect(await reader.entries()).toEqual([])
      expect(await reader.run(async (tx) => tx.get('a'))).toBeUndefined()
      expect(await client.exists(keysOf(name).all)).toBe(0)
      const writer = await open(server, { name }, { encryptionKey })
      await writer.set('a', 1)
      expect(await reader.get('a')).toBe(1)
      expect(await reader.keys()).toEqual(['a'])
    })

    it('options: redis with file, backend or acceptedKeys, two sources, a bad name or timeout are InvalidOptionError', async () => {
      const url = server.url
      const bad: unknown[] = [
        { redis: { url, name: 'x' }, file: join(tempDir(), 'x.db') },
        { redis: { url, name: 'x' }, persist: true },
        { redis: { url, name: 'x' }, acceptedKeys: [newKey()] },
        { redis: { name: 'x' } },
        { redis: { url, client: {}, name: 'x' } },
        { redis: { client: {}, name: 'x' } },
        { redis: { url, name: '' } },
        { redis: { url, name: 'a}b' } },
        { redis: { url, name: 'x', timeoutMs: 0 } },
        // Past what a Node timer holds: it would fire at once, again and again.
        { redis: { url, name: 'x', timeoutMs: 2 ** 31 } },
        { redis: { url, name: 'x', timeout: 5 } },
        { redis: 'redis://localhost' },
      ]
      for (const options of bad) {
        const error = await rejection(AnyStore.open(options as AnyStoreOptions))
        expect(error.code, JSON.stringify(options)).toBe('ERR_ANYSTORE_INVALID_OPTION')
      }
    })
  })

  describe('redis backend: clients', () => {
    it('a client given is used and never closed; a client the store made is closed by close()', async () => {
      const client = createClient({ url: server.url })
      await client.connect()
      onTestFinished(() => client.destroy())
      const name = freshName()
      const store = await AnyStore.open({ redis: { client, name }, encryptionKey: newKey() })
      expect(store.backendKind).toBe('redis')
      await store.set('a', 1)
      expect(await store.get('a')).toBe(1)
      await store.close()
      expect(client.isOpen).toBe(true)
      expect(await client.ping()).toBe('PONG')

      const clientsBefore = (await client.clientList()).length
      const own = await AnyStore.open({ redis: { url: server.url, name }, encryptionKey: newKey() }).catch(
        (e: { code?: string }) => e,
      )
      // Another key: WrongKeyError, and the client it made for that is closed already.
      expect((own as { code?: string }).code).toBe('ERR_ANYSTORE_WRONG_KEY')
      const made = await AnyStore.open({ redis: { url: server.url, name: freshName() } })
      expect((await client.clientList()).length).toBe(clientsBefore + 1)
      await made.close()
      await sleep(50)
      expect((await client.clientList()).length).toBe(clientsBefore)
    })
  })

  describe('redis backend: a commit whose reply is lost', () => {
    it('is sent again after the reconnection and applied once: delete results and run() increments stay exact', async () => {
      const proxy = await startProxy(server.port)
      onTestFinished(() => proxy.close())
      const client = await admin(server)
      const name = freshName()
      const store = await AnyStore.open({
        redis: { url: `redis://127.0.0.1:${proxy.port}`, name, timeoutMs: 5000 },
        encryptionKey: newKey(),
      })
      onTestFinished(() => store.close())
      await store.set('a', 1)
      await store.set('n', 5)
      const seq = async () => Number(await client.hGet(keysOf(name).entries, 'seq'))
      const before = await seq()

      proxy.dropReplyTo(COMMIT.sha)
      // Applied twice, the second application would find 'a' gone and answer false.
      expect(await store.delete('a')).toBe(true)
      expect(proxy.dropped).toBe(1)

      proxy.dropReplyTo(COMMIT.sha)
      let calls = 0
      const result = await store.run(async (tx) => {
        calls++
        const n = (await tx.get('n')) as number
        await tx.set('n', n + 1)
        return n + 1
      })
      expect(proxy.dropped).toBe(2)
      // Sent again blindly, the commit would conflict with its own first application and run()
      // would increment a second time.
      expect(result).toBe(6)
      expect(calls).toBe(1)
      expect(await store.get('n')).toBe(6)
      expect(await store.entries()).toEqual([['n', 6]])
      expect(await seq()).toBe(before + 2)

      // A commit that changed nothing is not recorded: sent again, it changes nothing again.
      const recorded = () => recordedCommits(client, name)
      const record = await recorded()
      proxy.dropReplyTo(COMMIT.sha)
      expect(await store.delete('missing')).toBe(false)
      expect(proxy.dropped).toBe(3)
      expect(await recorded()).toBe(record)
      expect(await seq()).toBe(before + 2)
      expect(await store.entries()).toEqual([['n', 6]])
    })

    it('the commit script run twice with one id applies once and answers the same results', async () => {
      const client = await admin(server)
      const name = freshName()
      const store = await open(server, { name })
      await store.set('a', 1)
      const k = keysOf(name)
      const [field] = await entryFields(client, k.entries)
      const script = await commitScript(client, name)
      const commit = () => script('one-commit-id', ['d', field!], true)
      const first = await commit()
      const seq = await client.hGet(k.entries, 'seq')
      const second = await commit()
      expect(first).toEqual(['ok', '1'])
      expect(second).toEqual(['done', '1'])
      expect(await client.hGet(k.entries, 'seq')).toBe(seq)
      expect(await store.has('a')).toBe(false)
    })
  })

  describe('redis backend: group commit', () => {
    it('concurrent set() and delete() calls go out as one commit script', async () => {
      const client = await admin(server)
      const name = freshName()
      const store = await open(server, { name })
      await store.set('old', 0)
      const seq = async () => Number(await client.hGet(keysOf(name).entries, 'seq'))
      const before = await seq()
      const results = await Promise.all([
        ...Array.from({ length: 100 }, (_, i) => store.set(`k${i}`, i)),
        store.delete('old'),
        store.delete('never'),
      ])
      expect(results.slice(100)).toEqual([true, false])
      expect(await seq()).toBe(before + 1)
      expect(await store.size()).toBe(100)
    })

    it('a commit sends its changes as arguments up to UNPACKED_CHANGES, packed past it, with the same outcome', async () => {
      const store = await open(server)
      const client = await admin(server)
      // A set is 3 arguments, one with an expiry 4, a delete 2: 84 sets and one with an expiry
      // fill the limit, and one delete more passes it.
      const plain = (UNPACKED_CHANGES - 4) / 3
      const hour = 3_600_000
      // The server's log of every command shows how many arguments each commit had.
      const threshold = await client.configGet('slowlog-log-slower-than')
      await client.configSet('slowlog-log-slower-than', '0')
      onTestFinished(async () => {
        await client.configSet(threshold)
      })
      for (const extra of [[], ['k0']]) {
        await client.sendCommand(['SLOWLOG', 'RESET'])
        const sets = Array.from({ length: plain }, (_, i) => store.set(`k${i}`, `${extra.length}:${i}`))
        sets.push(store.set('expiring', extra.length, { ttlMs: hour }))
        const deletes = extra.map((key) => store.delete(key))
        const results = await Promise.all([...sets, ...deletes])
        expect(results.slice(sets.length)).toEqual(extra.map(() => true))
        const expected: [string, unknown][] = Array.from({ length: plain }, (_, i) => [`k${i}`, `${extra.length}:${i}`])
        expected.push(['expiring', extra.length])
        expect(await store.entries()).toEqual(extra.length === 0 ? expected : expected.slice(1))
        const log = (await client.sendCommand(['SLOWLOG', 'GET', '1000'])) as [unknown, unknown, unknown, string[]][]
        const commits = log.map((entry) => entry[3]).filter((args) => /^eval(sha)?$/i.test(args[0]!))
        // EVALSHA (or EVAL), the script, the count of keys, 6 keys, 5 arguments before the changes.
        const fixed = 2 + 7 + 5
        const counts = commits.map((args) => {
          const more = /^\.\.\. \((\d+) more arguments\)$/.exec(args.at(-1)!)
          return more ? args.length - 1 + Number(more[1]) : args.length
        })
        // The commit of the sets is the one with the most arguments (the others are SIZE and PAGE).
        expect(Math.max(...counts)).toBe(extra.length === 0 ? fixed + UNPACKED_CHANGES : fixed)
      }
    })
  })

  describe('redis backend: a server that stops answering', () => {
    it('a write in flight fails within the timeout saying its outcome is unknown, and lands once the server answers again', async () => {
      const own = await startRedis()
      onTestFinished(() => own.stop())
      const timeoutMs = 300
      const store = await AnyStore.open({
        redis: { url: own.url, name: freshName(), timeoutMs },
        encryptionKey: newKey(),
      })
      onTestFinished(() => store.close())
      await store.set('warm', 1)
      own.signal('SIGSTOP')
      try {
        const started = Date.now()
        const hung = await rejection(store.set('in-flight', 1))
        expect(hung.code).toBe('ERR_ANYSTORE_UNAVAILABLE')
        expect(hung).toMatchObject({ outcomeUnknown: true })
        expect(Date.now() - started).toBeLessThan(timeoutMs + 500)
        const read = await rejection(store.get('warm'))
        expect(read).toMatchObject({ code: 'ERR_ANYSTORE_UNAVAILABLE', outcomeUnknown: false })
      } finally {
        own.signal('SIGCONT')
      }
      // The server got the write before it stopped and runs it now: the caller was told it may.
      const deadline = Date.now() + 5000
      while (!(await store.has('in-flight')) && Date.now() < deadline) await sleep(20)
      expect(await store.get('in-flight')).toBe(1)
    })
  })

  describe('redis backend: the server killed and restarted mid-workload', () => {
    it('loses nothing acknowledged, fails calls in the outage within the timeout, and works again without reopening', async () => {
      const own = await startRedis()
      onTestFinished(() => own.stop())
      const timeoutMs = 400
      const encryptionKey = newKey()
      const redis = { url: own.url, name: freshName(), timeoutMs }
      const store = await AnyStore.open({ redis, encryptionKey })
      onTestFinished(() => store.close())

      const acknowledged = new Map<string, number>()
      // Sets that failed saying they were never sent: they must not be there afterwards.
      const notApplied: string[] = []
      const failures: { code: string | undefined; ms: number; limit: number }[] = []
      let increments = 0
      let unknownIncrements = 0
      let phase: 'before' | 'outage' | 'after' = 'before'
      let acknowledgedAfter = 0
      let stop = false
      const worker = async (id: number) => {
        for (let i = 0; !stop; i++) {
          const key = `w${id}-${i}`
          let started = Date.now()
          try {
            await store.set(key, i)
            acknowledged.set(key, i)
            if (phase === 'after') acknowledgedAfter++
          } catch (error) {
            // One commit: one call to the server.
            failures.push({ code: (error as { code?: string }).code, ms: Date.now() - started, limit: timeoutMs })
            if ((error as { outcomeUnknown?: boolean }).outcomeUnknown === false) notApplied.push(key)
          }
          started = Date.now()
          try {
            await store.run(async (tx) => tx.set('n', (((await tx.get('n')) as number | undefined) ?? 0) + 1))
            increments++
          } catch (error) {
            // A read and a commit: two calls, each with its own timeout.
            failures.push({ code: (error as { code?: string }).code, ms: Date.now() - started, limit: 2 * timeoutMs })
            if ((error as { outcomeUnknown?: boolean }).outcomeUnknown) unknownIncrements++
          }
          await sleep(phase === 'outage' ? 20 : 2)
        }
      }
      const workers = [1, 2, 3].map(worker)
      while (acknowledged.size < 60) await sleep(10)
      await own.kill()
      phase = 'outage'
      await sleep(3 * timeoutMs)
      await own.restart()
      phase = 'after'
      const deadline = Date.now() + 10_000
      while (acknowledgedAfter < 30 && Date.now() < deadline) await sleep(10)
      stop = true
      await Promise.all(workers)

      expect(acknowledgedAfter).toBeGreaterThanOrEqual(30)
      expect(failures.length).toBeGreaterThan(0)
      for (const failure of failures) {
        expect(failure.code).toBe('ERR_ANYSTORE_UNAVAILABLE')
        // The timeout, and some room for a loaded machine.
        expect(failure.ms).toBeLessThan(failure.limit + 500)
      }
      // Read back through a fresh instance: what the server holds, not what this one remembers.
      const check = await AnyStore.open({ redis, encryptionKey })
      onTestFinished(() => check.close())
      for (const [key, value] of acknowledged) expect(await check.get(key), key).toBe(value)
      expect(notApplied.length).toBeGreaterThan(0)
      for (const key of notApplied) expect(await check.has(key), key).toBe(false)
      const n = (await check.get('n')) as number
      expect(n).toBeGreaterThanOrEqual(increments)
      expect(n).toBeLessThanOrEqual(increments + unknownIncrements)
    })
  })
}
