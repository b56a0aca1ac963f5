import { statSync } from 'node:fs'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { describe, expect, it } from 'vitest'
import { AnyStore, type LockMode } from '../src/index.js'
import {
  exited,
  fixture,
  nextMessage,
  rejection,
  runFixture,
  spawnFixture,
  tempDir,
} from './helpers.js'

const lockModes: LockMode[] = ['flock', 'proper-lockfile']

describe.each(lockModes)('between real processes, lock %s', (lock) => {
  it('4 processes × 250 run() increments end at exactly 1000', async () => {
    const file = join(tempDir(), 'counter.db')
    await Promise.all([1, 2, 3, 4].map(() => runFixture('counter.mjs', [file, '250', lock])))
    const store = await AnyStore.open<number>({ file, lock })
    expect(await store.get('n')).toBe(1000)
    await store.close()
  })

  it('4 processes × 250 increments that open and close the store each time end at 1000', async () => {
    const file = join(tempDir(), 'counter.db')
    await Promise.all(
      [1, 2, 3, 4].map(() => runFixture('counter.mjs', [file, '250', lock, 'close-each'])),
    )
    const store = await AnyStore.open<number>({ file, lock })
    expect(await store.get('n')).toBe(1000)
    await store.close()
  })

  it('4 processes × 250 open/set/close keep all 1000 keys and the lockfile', async () => {
    const file = join(tempDir(), 'keys.db')
    await Promise.all(
      ['a', 'b', 'c', 'd'].map((id) => runFixture('open-set-close.mjs', [file, id, '250', lock])),
    )
    const store = await AnyStore.open({ file, lock })
    expect(await store.size()).toBe(1000)
    for (const id of ['a', 'b', 'c', 'd']) expect(await store.get(`${id}-249`)).toBe(249)
    await store.close()
    expect(statSync(`${file}.lock`).isFile()).toBe(true)
  })

  it('a lock held by a SIGKILLed process does not block the next writer', async () => {
    const file = join(tempDir(), 'held.db')
    const holder = spawnFixture('hold-lock.mjs', [file, lock])
    expect(await nextMessage(holder)).toBe('locked')
    const store = await AnyStore.open({ file, lock, lockTimeoutMs: 200 })
    const timeout = await rejection(store.set('k', 'v'))
    expect(timeout.code).toBe('ERR_ANYSTORE_LOCK_TIMEOUT')
    if (lock === 'flock') expect((timeout as { holderPid?: number }).holderPid).toBe(holder.pid)

    holder.kill('SIGKILL')
    await new Promise((resolve) => holder.once('exit', resolve))
    // proper-lockfile only notices a dead holder once its lock directory goes stale.
    const patient = await AnyStore.open({ file, lock, lockTimeoutMs: 15_000, staleMs: 2000 })
    await patient.set('k', 'v')
    expect(await patient.get('k')).toBe('v')
    // The killed holder's transaction never committed.
    expect(await patient.get('held-by')).toBeUndefined()
    await Promise.all([store.close(), patient.close()])
  })
})

describe('readers in other processes', () => {
  it("see a writer process's value as soon as its set() resolved", async () => {
    const file = join(tempDir(), 'rw.db')
    const writer = spawnFixture('writer.mjs', [file])
    expect(await nextMessage(writer)).toBe('ready')
    const reader = await AnyStore.open<number>({ file })
    for (let i = 0; i < 50; i++) {
      writer.send({ key: 'x', value: i })
      expect(await nextMessage(writer)).toEqual({ done: 'x' })
      expect(await reader.get('x')).toBe(i)
    }
    writer.send('exit')
    await exited(writer)
    await reader.close()
  })
})

describe('worker threads', () => {
  it.each(lockModes)(
    '4 workers × 100 run() increments on one file end at 400 (%s)',
    async (lock) => {
      const file = join(tempDir(), 'workers.db')
      const workers = [1, 2, 3, 4].map(
        () => new Worker(fixture('worker-counter.mjs'), { workerData: { file, count: 100, lock } }),
      )
      await Promise.all(
        workers.map(
          (worker) =>
            new Promise<void>((resolve, reject) => {
              worker.once('error', reject)
              worker.once('exit', (code) =>
                code === 0 ? resolve() : reject(new Error(`worker exit ${code}`)),
              )
            }),
        ),
      )
      const store = await AnyStore.open<number>({ file, lock })
      expect(await store.get('n')).toBe(400)
      await store.close()
    },
  )
})
