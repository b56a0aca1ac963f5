import { type ChildProcess, fork } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach } from 'vitest'
import type { Entry } from '../src/format/payload.js'
import type { StoreKey } from '../src/store/types.js'

const created: string[] = []

/** A fresh directory under the OS temp dir, removed after the current test. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'anystore-test-'))
  created.push(dir)
  return dir
}

afterEach(() => {
  for (const dir of created.splice(0)) rmSync(dir, { recursive: true, force: true })
})

export const fixture = (name: string) => new URL(`./fixtures/${name}`, import.meta.url).pathname

/** Forks a fixture script with an IPC channel; stderr is collected for failure messages. */
export function spawnFixture(
  name: string,
  args: string[],
): ChildProcess & { stderrText: () => string } {
  const child = fork(fixture(name), args, { stdio: ['ignore', 'inherit', 'pipe', 'ipc'] })
  let stderr = ''
  child.stderr?.on('data', (chunk) => {
    stderr += chunk
  })
  return Object.assign(child, { stderrText: () => stderr })
}

/** Resolves with the exit code; rejects with the child's stderr when it is not 0. */
export function exited(child: ChildProcess & { stderrText: () => string }): Promise<number> {
  return new Promise((resolve, reject) => {
    child.on('exit', (code, signal) => {
      if (code === 0) resolve(code)
      else reject(new Error(`child exited with ${code ?? signal}: ${child.stderrText()}`))
    })
  })
}

export function runFixture(name: string, args: string[]): Promise<number> {
  return exited(spawnFixture(name, args))
}

export function nextMessage<T = unknown>(child: ChildProcess): Promise<T> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) =>
      reject(new Error(`child exited (${code}) before answering`))
    child.once('exit', onExit)
    child.once('message', (message) => {
      child.off('exit', onExit)
      resolve(message as T)
    })
  })
}

/** The `code` of the error a promise rejects with; throws if it resolves. */
export async function codeOf(promise: Promise<unknown>): Promise<unknown> {
  return (await rejection(promise)).code
}

/** Resolves with the typed error a promise rejects with, failing if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise
  } catch (error) {
    return error as Error & { code?: string }
  }
  throw new Error('expected a rejection')
}

/**
 * fast-check parameters: a failure prints its seed and path (fast-check does by default);
 * FUZZ_SEED=<seed> replays that run.
 */
export function propertyOptions(numRuns: number): { numRuns: number; seed?: number } {
  const seed = process.env.FUZZ_SEED
  return seed === undefined ? { numRuns } : { numRuns, seed: Number(seed) }
}

/** The same entries as plain objects with copied bytes: what encodePayload lays out field by field. */
export function plainEntries(entries: Iterable<[StoreKey, Entry]>): [StoreKey, Entry][] {
  return Array.from(entries, ([k, e]) => [
    k,
    e.expiresAt === undefined
      ? { value: Uint8Array.from(e.value) }
      : { value: Uint8Array.from(e.value), expiresAt: e.expiresAt },
  ])
}
