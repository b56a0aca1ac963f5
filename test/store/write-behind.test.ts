import { spawn } from 'node:child_process'
import { closeSync, existsSync, openSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { openWithFileSystem } from '../../src/anystore.js'
import { AnyStore, type AnyStoreOptions, readFileHeader } from '../../src/index.js'
import { FaultyFileSystem } from '../faulty-fs.js'
import { fixture, rejection, tempDir } from '../helpers.js'
import { OptimisticBackend, OptimisticServer } from '../conformance/optimistic-backend.js'

/**
 * `sync: { everyMs }` on a file: when a write is acknowledged, what this instance and others
 * see, when and how often commits happen, what flush(), run() and close() commit, how a
 * failed background commit is reported, and what the end of the process commits.
 */

const flockSync = (
  createRequire(import.meta.url)('fs-ext') as { flockSync(fd: number, flags: string): void }
).flockSync

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Stores opened in a test, closed when it ends (a close that rejects is the test's business). */
function opener() {
  const opened: AnyStore[] = []
  onTestFinished(async () => {
    await Promise.allSettled(opened.map((s) => s.close()))
  })
  return async <V = unknown>(options: AnyStoreOptions): Promise<AnyStore<V>> => {
    const store = await AnyStore.open<V>(options)
    opened.push(store as AnyStore)
    return store
  }
}

function commitCount(file: string): bigint {
  return existsSync(file) ? readFileHeader(file).header.counter ?? 0n : 0n
}

async function waitFor(condition: () => Promise<boolean>, limitMs: number): Promise<number> {
  const started = performance.now()
  while (!(await condition())) {
    if (performance.now() - started > limitMs) throw new Error(`not within ${limitMs} ms`)
    await sleep(2)
  }
  return performance.now() - started
}

describe('write-behind: what is seen, and when', () => {
  it('a write resolves before its commit; this instance reads it at once, another only after the commit, within everyMs', async () => {
    const open = opener()
    const file = join(tempDir(), 'store.db')
    const writer = await open({ file, sync: { everyMs: 150 } })
    const other = await open({ file })
    await writer.set('seed', 0)
    await writer.flush()
    const before = commitCount(file)
    const started = performance.now()
    for (let i = 0; i < 200; i++) await writer.set(`k${i}`, i)
    await Promise.all(Array.from({ length: 100 }, (_, i) => writer.set(`p${i}`, i)))
    // Read-your-writes, with every listing.
    expect(await writer.get('k199')).toBe(199)
    expect(await writer.size()).toBe(301)
    expect((await writer.keys()).slice(0, 3)).toEqual(['seed', 'k0', 'k1'])
    // Nothing committed yet: the file is as it was, and other instances see none of it.
    expect(commitCount(file)).toBe(before)
    expect(await other.has('k0')).toBe(false)
    const waited = await waitFor(async () => (await other.get('p99')) === 99, 2000)
    const sinceFirst = performance.now() - started
    // Not before everyMs (timers never fire early), and soon after it.
    expect(sinceFirst).toBeGreaterThanOrEqual(145)
    expect(waited).toBeLessThan(150 + 1000)
    // The 300 writes went out together, in one commit.
    expect(commitCount(file) - before).toBe(1n)
    expect(await other.size()).toBe(301)
  })

  it('the commit applies the changes in the order they were made: Map order, deletes and clears included', async () => {
    const open = opener()
    const file = join(tempDir(), 'store.db')
    const writer = await open({ file, sync: { everyMs: 60_000 } })
    const other = await open({ file })
    await other.set('old', 1)
    for (const key of ['a', 'b', 'c']) await writer.set(key, key)
    await writer.delete('a')
    await writer.set('a', 'again')
    await writer.set('b', 'B')
    await writer.flush()
    expect(await other.entries()).toEqual([
      ['old', 1],
      ['b', 'B'],
      ['c', 'c'],
      ['a', 'again'],
    ])
    await writer.clear()
    await writer.set('z', 26)
    expect(await other.size()).toBe(4)
    await writer.flush()
    expect(await other.entries()).toEqual([['z', 26]])
  })

  it("delete() answers whether this instance sees the key when it is called; the commit deletes the key whatever happened meanwhile", async () => {
    const open = opener()
    const file = join(tempDir(), 'store.db')
    const writer = await open({ file, sync: { everyMs: 60_000 } })
    const other = await open({ file })
    await other.set('committed', 1)
    // Committed by another instance: seen, so true.
    expect(await writer.delete('committed')).toBe(true)
    expect(await writer.delete('committed')).toBe(false)
    // Set and deleted before any commit: true, then gone.
    await writer.set('mine', 1)
    expect(await writer.delete('mine')).toBe(true)
    // Unknown when delete() is called: false, even though another instance sets it before the
    // commit, which then deletes it, as the calls made in that order would.
    expect(await writer.delete('later')).toBe(false)
    await other.set('later', 'theirs')
    expect(await writer.has('later')).toBe(false)
    await writer.flush()
    expect(await other.has('committed')).toBe(false)
    expect(await other.has('later')).toBe(false)
    expect(await other.has('mine')).toBe(false)
  })

  it('flush() commits at once; it resolves at once where nothing waits (sync always) and rejects once closed', async () => {
    const open = opener()
    const file = join(tempDir(), 'store.db')
    const writer = await open({ file, sync: { everyMs: 60_000 } })
    const other = await open({ file })
    await writer.set('a', 1)
    await writer.flush()
    expect(await other.get('a')).toBe(1)
    // Nothing pending: no commit.
    const count = commitCount(file)
    await writer.flush()
    expect(commitCount(file)).toBe(count)
    await other.set('b', 2)
    await other.flush()
    expect(commitCount(file)).toBe(count + 1n)
    await other.close()
    expect((await rejection(other.flush())).code).toBe('ERR_ANYSTORE_CLOSED')
  })

  it('close() commits what is pending', async () => {
    const open = opener()
    const file = join(tempDir(), 'store.db')
    const writer = await open({ file, sync: { everyMs: 60_000 } })
    await writer.set('a', 1)
    await writer.delete('a')
    await writer.set('b', 2)
    await writer.close()
    const reader = await open({ file })
    expect(await reader.entries()).toEqual([['b', 2]])
  })

  it('run() reads the pending changes and commits them with its own writes, in one commit, before it resolves', async () => {
    const open = opener()
    const file = join(tempDir(), 'store.db')
    const writer = await open({ file, sync: { everyMs: 60_000 } })
    const other = await open({ file })
    await writer.set('n', 1)
    await writer.set('pending', true)
    const before = commitCount(file)
    const seen = await writer.run(async (tx) => {
      const n = (await tx.get('n')) as number
      await tx.set('n', n + 1)
      return [n, await tx.size()]
    })
    expect(seen).toEqual([1, 2])
    expect(commitCount(file) - before).toBe(1n)
    expect(await other.entries()).toEqual([
      ['n', 2],
      ['pending', true],
    ])
    // A run() that writes nothing still commits what was pending.
    await writer.set('quiet', 1)
    expect(await writer.run(async (tx) => tx.get('quiet'))).toBe(1)
    expect(await other.get('quiet')).toBe(1)
  })

  it('a run() that throws commits nothing; the pending changes stay pending, visible to this instance', async () => {
    const open = opener()
    const file = join(tempDir(), 'store.db')
    const writer = await open({ file, sync: { everyMs: 60_000 } })
    const other = await open({ file })
    await writer.set('acknowledged', 1)
    const before = commitCount(file)
    await expect(
      writer.run(async (tx) => {
        await tx.set('inside', 1)
        throw new Error('no')
      }),
    ).rejects.toThrow('no')
    expect(commitCount(file)).toBe(before)
    expect(await writer.get('acknowledged')).toBe(1)
    expect(await writer.has('inside')).toBe(false)
    expect(await other.has('acknowledged')).toBe(false)
    await writer.flush()
    expect(await other.entries()).toEqual([['acknowledged', 1]])
  })

  it('disablePersistence() keeps the acknowledged changes in memory and still commits them to the file', async () => {
    const open = opener()
    const file = join(tempDir(), 'store.db')
    const writer = await open({ file, sync: { everyMs: 60_000 } })
    await writer.set('a', 1)
    writer.disablePersistence()
    expect(await writer.get('a')).toBe(1)
    const reader = await open({ file })
    await waitFor(async () => (await reader.get('a')) === 1, 2000)
  })

  it('flush() and a nested run() inside run() fail with ReentrantCallError instead of waiting for themselves', async () => {
    const open = opener()
    const file = join(tempDir(), 'store.db')
    const writer = await open({ file, sync: { everyMs: 60_000 } })
    const error = await rejection(writer.run(async () => writer.flush()))
    expect(error.code).toBe('ERR_ANYSTORE_REENTRANT')
    expect(error.message).toContain('flush')
    // Optimistic backends allow a nested run() without write-behind; with it, the nested
    // commit would wait for the outer one.
    const server = new OptimisticServer({ seed: 1 })
    const optimistic = await open({ backend: new OptimisticBackend(server), sync: { everyMs: 60_000 } })
    expect((await rejection(optimistic.run(async () => optimistic.run(async () => 1)))).code).toBe(
      'ERR_ANYSTORE_REENTRANT',
    )
    expect((await rejection(optimistic.run(async () => optimistic.flush()))).code).toBe(
      'ERR_ANYSTORE_REENTRANT',
    )
  })
})

describe('write-behind: failed commits are reported, and nothing acknowledged is dropped silently', () => {
  async function faulty(everyMs: number) {
    const file = join(tempDir(), 'store.db')
    const io = new FaultyFileSystem()
    const writer = await openWithFileSystem({ file, sync: { everyMs } }, io)
    onTestFinished(async () => {
      io.fault = undefined
      await writer.close().catch(() => {})
    })
    const other = await AnyStore.open({ file })
    onTestFinished(() => other.close())
    return { file, io, writer, other }
  }

  it('the next write rejects with the error and does nothing; the failed changes stay, and a later commit writes them', async () => {
    const { io, writer, other } = await faulty(30)
    await writer.set('a', 1)
    io.fault = { step: 'write-temp', code: 'ENOSPC' }
    await writer.set('b', 2)
    await waitFor(async () => io.fired > 0, 2000)
    const error = await rejection(writer.set('c', 3))
    expect(error.code).toBe('ENOSPC')
    // Reported once: the next write is accepted.
    expect(await writer.has('c')).toBe(false)
    await writer.set('d', 4)
    expect(await writer.entries()).toEqual([
      ['a', 1],
      ['b', 2],
      ['d', 4],
    ])
    expect(await other.size()).toBe(0)
    io.fault = undefined
    // Retried at the same pace.
    await waitFor(async () => (await other.size()) === 3, 2000)
    expect(await other.entries()).toEqual([
      ['a', 1],
      ['b', 2],
      ['d', 4],
    ])
  })

  it('run() after a failed background commit rejects with its error without running the callback', async () => {
    const { io, writer } = await faulty(10)
    io.fault = { step: 'fsync-temp', code: 'EIO' }
    await writer.set('a', 1)
    await waitFor(async () => io.fired > 0, 2000)
    io.fault = undefined
    let called = false
    const error = await rejection(
      writer.run(async () => {
        called = true
      }),
    )
    expect(error.code).toBe('EIO')
    expect(called).toBe(false)
  })

  it('flush() rejects with its own commit\'s error, and with a background failure even when its own commit then succeeds', async () => {
    const { io, writer, other } = await faulty(60_000)
    await writer.set('a', 1)
    io.fault = { step: 'rename', code: 'EACCES' }
    expect((await rejection(writer.flush())).code).toBe('EACCES')
    expect(await writer.get('a')).toBe(1)
    // Its own failure was reported by flush() itself: not again.
    await writer.set('b', 2)
    io.fault = undefined
    await writer.flush()
    expect(await other.entries()).toEqual([
      ['a', 1],
      ['b', 2],
    ])

    const { io: io2, writer: writer2, other: other2 } = await faulty(20)
    io2.fault = { step: 'open-temp', code: 'ENOSPC' }
    await writer2.set('x', 1)
    await waitFor(async () => io2.fired > 0, 2000)
    io2.fault = undefined
    const error = await rejection(writer2.flush())
    expect(error.code).toBe('ENOSPC')
    // The flush did commit: the error says an earlier commit failed, not that data is gone.
    expect(await other2.get('x')).toBe(1)
    await writer2.flush()
  })

  it('close() whose final commit fails rejects with the error; the store is closed and the changes are not written', async () => {
    const { file, io, writer } = await faulty(60_000)
    await writer.set('a', 1)
    io.fault = { step: 'write-temp', code: 'ENOSPC' }
    expect((await rejection(writer.close())).code).toBe('ENOSPC')
    expect(writer.closed).toBe(true)
    expect((await rejection(writer.get('a'))).code).toBe('ERR_ANYSTORE_CLOSED')
    io.fault = undefined
    const reader = await AnyStore.open({ file })
    expect(await reader.has('a')).toBe(false)
    await reader.close()
  })
})

describe('write-behind: the end of the process commits what is pending', () => {
  interface Ended {
    code: number | null
    stdout: string
    stderr: string
  }

  function runFixture(spec: Record<string, unknown>): Promise<Ended> {
    const child = spawn(process.execPath, [fixture('write-behind-exit.mjs'), JSON.stringify(spec)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })))
  }

  async function stored(file: string): Promise<[unknown, unknown][]> {
    const reader = await AnyStore.open({ file })
    try {
      return await reader.entries()
    } finally {
      await reader.close()
    }
  }

  const written = Array.from({ length: 49 }, (_, i) => [`k${i + 1}`, i + 1])

  for (const lock of ['flock', 'proper-lockfile'] as const) {
    for (const end of ['drain', 'exit', 'throw'] as const) {
      it(`${lock}: ended by ${end === 'drain' ? 'the event loop running out' : end === 'exit' ? 'process.exit()' : 'an uncaught exception'}, every acknowledged change is committed`, async () => {
        const file = join(tempDir(), 'store.db')
        const ended = await runFixture({ file, lock, end })
        expect(ended.code).toBe(end === 'throw' ? 1 : 0)
        expect(ended.stderr).not.toContain('anystore:')
        expect(await stored(file)).toEqual(written)
        // proper-lockfile: the lock directory taken at exit was released.
        expect(existsSync(`${file}.plock`)).toBe(false)
      })
    }
  }

  it('process.exit() while another process holds the lock: the exit commit waits for it', async () => {
    const file = join(tempDir(), 'store.db')
    // A first commit creates the lockfile.
    const seed = await AnyStore.open({ file })
    await seed.set('k0', 0)
    await seed.close()
    const fd = openSync(`${file}.lock`, 'r+')
    try {
      flockSync(fd, 'exnb')
      setTimeout(() => flockSync(fd, 'un'), 400)
      const started = performance.now()
      const ended = await runFixture({ file, lock: 'flock', end: 'exit', lockTimeoutMs: 20_000 })
      expect(ended.code).toBe(0)
      expect(performance.now() - started).toBeGreaterThanOrEqual(350)
    } finally {
      closeSync(fd)
    }
    expect(await stored(file)).toEqual(written)
  })

  it('process.exit() while the lock stays held past lockTimeoutMs: stderr names the lost changes and the exit status is 1', async () => {
    const file = join(tempDir(), 'store.db')
    // A first commit creates the lockfile.
    const seed = await AnyStore.open({ file })
    await seed.set('k0', 0)
    await seed.close()
    const fd = openSync(`${file}.lock`, 'r+')
    let ended: Ended
    try {
      flockSync(fd, 'exnb')
      ended = await runFixture({ file, lock: 'flock', end: 'exit', lockTimeoutMs: 200 })
    } finally {
      closeSync(fd)
    }
    expect(ended.code).toBe(1)
    expect(ended.stderr).toMatch(/anystore: \d+ acknowledged change\(s\) to .* were not committed at exit: LockTimeoutError/)
    expect(await stored(file)).toEqual([['k0', 0]])
  })

  it('a backend that cannot commit synchronously: the drained loop commits (beforeExit); process.exit() cannot, and says so', async () => {
    const drained = await runFixture({ backend: 'no-sync-commit', end: 'drain' })
    expect(drained.code).toBe(0)
    expect(drained.stdout).toContain('entries=49')
    expect(drained.stderr).not.toContain('anystore:')
    const exited = await runFixture({ backend: 'no-sync-commit', end: 'exit' })
    expect(exited.stdout).toContain('entries=0')
    expect(exited.stderr).toContain('cannot commit while the process exits; call flush() or close()')
    expect(exited.code).toBe(1)
  })
})

describe('the sync option', () => {
  it('takes { everyMs } with a positive finite number of milliseconds, and nothing else', async () => {
    const file = join(tempDir(), 'store.db')
    const bad: [unknown, string][] = [
      [{ everyMs: 0 }, 'got 0'],
      [{ everyMs: -5 }, 'got -5'],
      [{ everyMs: Number.NaN }, 'got NaN'],
      [{ everyMs: Number.POSITIVE_INFINITY }, 'got Infinity'],
      [{ everyMs: 2 ** 31 }, 'got 2147483648'],
      [{ everyMs: '100' }, "got '100'"],
      [{}, 'got undefined'],
      [{ everyMs: 100, onError: () => {} }, '`sync.onError`'],
      [{ every: 100 }, '`sync.every`'],
      [null, 'got null'],
      [[100], 'got [ 100 ]'],
      ['sometimes', "got 'sometimes'"],
      [100, 'got 100'],
    ]
    for (const [sync, message] of bad) {
      const error = await rejection(AnyStore.open({ file, sync: sync as never }))
      expect(error.code, JSON.stringify(sync)).toBe('ERR_ANYSTORE_INVALID_OPTION')
      expect((error as { option?: string }).option).toBe('sync')
      expect(error.message).toContain(message)
    }
    for (const sync of ['always', 'never', { everyMs: 0.5 }, { everyMs: 2 ** 31 - 1 }] as const) {
      const store = await AnyStore.open({ file, sync })
      await store.set('k', 1)
      await store.close()
    }
  })
})

describe('write-behind and expiry', () => {
  it('a pending entry expires like a committed one, for every read of this instance', async () => {
    const store = await AnyStore.open({
      file: join(tempDir(), 's.db'),
      sync: { everyMs: 60_000 },
    })
    onTestFinished(() => store.close())
    await store.set('kept', 0)
    await store.flush()
    await store.set('a', 1, { ttlMs: 20 })
    expect(await store.get('a')).toBe(1)
    await new Promise((resolve) => setTimeout(resolve, 40))
    // Still pending (the commit is a minute away), and expired.
    expect(await store.get('a')).toBeUndefined()
    expect(await store.has('a')).toBe(false)
    expect(await store.size()).toBe(1)
    expect(await store.keys()).toEqual(['kept'])
    expect(await store.entries()).toEqual([['kept', 0]])
    expect(await store.setIfAbsent('a', 2)).toBe(true)
    expect(await store.get('a')).toBe(2)
  })
})
