import { type ChildProcess, fork } from 'node:child_process'
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, describe, expect, test } from 'vitest'
import { AnyStore, LockTimeoutError } from '../src/index.js'

const holderScript = fileURLToPath(new URL('./fixtures/lock-holder.mjs', import.meta.url))
const root = mkdtempSync(join(tmpdir(), 'anystore-locks-'))
const children: ChildProcess[] = []
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL')
})
afterAll(() => rmSync(root, { recursive: true, force: true }))

let counter = 0
function freshFile(): string {
  return join(root, `case-${counter++}`, 'store.db')
}

function temps(file: string): string[] {
  return readdirSync(join(file, '..')).filter((n) => n.endsWith('.tmp'))
}

interface Holder {
  pid: number
  exited: Promise<unknown>
}

/** Starts a process that takes the lock `rounds` times; resolves once it first holds it. */
function holdLock(file: string, lock: string, holdMs: number, rounds: number): Promise<Holder> {
  const child = fork(holderScript, [file, lock, String(holdMs), String(rounds)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  children.push(child)
  const exited = new Promise((resolve) => child.once('exit', resolve))
  return new Promise((resolve, reject) => {
    child.once('message', () => resolve({ pid: child.pid!, exited }))
    exited.then((code) => reject(new Error(`lock holder exited before holding the lock (${code})`)))
  })
}

describe('flock: the lockfile is the lock', () => {
  test('the lockfile deleted while held: LockCompromisedError and nothing written', async () => {
    const file = freshFile()
    const store = await AnyStore.open({ file, lock: 'flock' })
    await store.set('a', 1)
    const before = readFileSync(file)
    await expect(
      store.run(async (tx) => {
        await tx.set('a', 2)
        unlinkSync(`${file}.lock`)
      }),
    ).rejects.toMatchObject({ code: 'ERR_ANYSTORE_LOCK_COMPROMISED' })
    expect(readFileSync(file).equals(before)).toBe(true)
    expect(temps(file)).toStrictEqual([])
    // The store carries on, on a fresh lockfile.
    await store.set('a', 3)
    expect(await store.get('a')).toBe(3)
    expect(existsSync(`${file}.lock`)).toBe(true)
    await store.close()
  })

  test('the lockfile replaced while held: LockCompromisedError and nothing written', async () => {
    const file = freshFile()
    const store = await AnyStore.open({ file, lock: 'flock' })
    await store.set('a', 1)
    const before = readFileSync(file)
    await expect(
      store.run(async (tx) => {
        await tx.set('a', 9)
        writeFileSync(`${file}.lock.new`, '')
        renameSync(`${file}.lock.new`, `${file}.lock`)
      }),
    ).rejects.toMatchObject({ code: 'ERR_ANYSTORE_LOCK_COMPROMISED' })
    expect(readFileSync(file).equals(before)).toBe(true)
    expect(temps(file)).toStrictEqual([])
    await store.set('a', 2)
    const reader = await AnyStore.open({ file, lock: 'flock' })
    expect(await reader.get('a')).toBe(2)
    await reader.close()
    await store.close()
  })
})

describe.each(['flock', 'proper-lockfile'] as const)('lock mode %s', (lock) => {
  test('a lock held elsewhere: LockTimeoutError names the holder pid', async () => {
    const file = freshFile()
    const holder = await holdLock(file, lock, 60_000, 1)
    const store = await AnyStore.open({ file, lock, lockTimeoutMs: 150 })
    const error = await store.set('a', 1).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(LockTimeoutError)
    expect((error as LockTimeoutError).code).toBe('ERR_ANYSTORE_LOCK_TIMEOUT')
    expect((error as LockTimeoutError).holderPid).toBe(holder.pid)
    await expect(store.run(async () => 1)).rejects.toMatchObject({ holderPid: holder.pid })
    // Reads never wait for the lock.
    expect(await store.get(`holder-${holder.pid}`)).toBeUndefined()
    await store.close()
  })

  test('contention: timeouts name one of the contending pids; committed writes all land', async () => {
    const file = freshFile()
    const holders = await Promise.all([0, 1, 2].map(() => holdLock(file, lock, 30, 12)))
    const pids = holders.map((h) => h.pid)
    const store = await AnyStore.open({ file, lock, lockTimeoutMs: 5 })
    let timeouts = 0
    let committed = 0
    for (let i = 0; i < 30; i++) {
      try {
        await store.set(`mine-${i}`, i)
        committed++
      } catch (error) {
        expect(error).toMatchObject({ code: 'ERR_ANYSTORE_LOCK_TIMEOUT' })
        expect(pids).toContain((error as LockTimeoutError).holderPid)
        timeouts++
      }
    }
    expect(timeouts).toBeGreaterThan(0)
    await Promise.all(holders.map((h) => h.exited))
    const keys = await store.keys()
    expect(keys.filter((k) => String(k).startsWith('mine-'))).toHaveLength(committed)
    await store.close()
  })
})

test('proper-lockfile: the lock directory removed while held is detected, nothing written', async () => {
  const file = freshFile()
  const store = await AnyStore.open({ file, lock: 'proper-lockfile', staleMs: 2000 })
  await store.set('a', 1)
  const before = readFileSync(file)
  await expect(
    store.run(async (tx) => {
      await tx.set('a', 2)
      rmSync(`${file}.plock`, { recursive: true })
      // proper-lockfile notices on its next refresh (every staleMs / 2).
      await new Promise((resolve) => setTimeout(resolve, 1500))
    }),
  ).rejects.toMatchObject({ code: 'ERR_ANYSTORE_LOCK_COMPROMISED' })
  expect(readFileSync(file).equals(before)).toBe(true)
  expect(temps(file)).toStrictEqual([])
  await store.set('a', 3)
  expect(await store.get('a')).toBe(3)
  await store.close()
})
