import { describe, expect, it } from 'vitest'
import type { BackendTransaction, Change, CommitOutcome } from '../../src/backends/backend.js'
import type { Entry } from '../../src/format/payload.js'
import type { StoreKey } from '../../src/store/types.js'
import { BackendContractError, OptimisticBackend, OptimisticServer } from './optimistic-backend.js'

/**
 * The optimistic test backend is what the conformance suite measures the store's retries
 * against: if it missed a conflict, or applied a commit unlike a Map, the suite would pass
 * for the wrong reasons. These tests hold it to the Backend contract directly, without a store.
 */

const entry = (byte: number): Entry => ({ value: Uint8Array.of(byte) })
const set = (key: StoreKey, byte: number): Change => ({ kind: 'set', key, entry: entry(byte) })
const del = (key: StoreKey): Change => ({ kind: 'delete', key })
const clear: Change = { kind: 'clear' }

async function collect<T>(items: Iterable<T> | AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const item of items) out.push(item)
  return out
}

async function bytes(backend: OptimisticBackend): Promise<[StoreKey, number][]> {
  return (await collect(backend.entries())).map(([k, e]) => [k, e.value[0]!])
}

/** Commits `changes` in a transaction of its own, which reads nothing. */
async function write(backend: OptimisticBackend, ...changes: Change[]): Promise<CommitOutcome> {
  return backend.transaction(async (tx) => tx.commit(changes))
}

/** Runs `read` in a transaction, lets `between` commit elsewhere, then commits `changes`. */
async function readThenCommit(
  backend: OptimisticBackend,
  read: (tx: BackendTransaction) => unknown,
  between: () => Promise<unknown>,
  changes: Change[] = [set('result', 1)],
): Promise<CommitOutcome> {
  return backend.transaction(async (tx) => {
    await read(tx)
    await between()
    return tx.commit(changes)
  })
}

function clients(n: number): OptimisticBackend[] {
  const server = new OptimisticServer()
  return Array.from({ length: n }, () => new OptimisticBackend(server))
}

describe('the optimistic test backend', () => {
  it('declares optimistic concurrency and holds nothing exclusively', () => {
    const [backend] = clients(1)
    expect(backend!.concurrency).toBe('optimistic')
    expect(backend!.exclusiveScope).toBeUndefined()
    expect(backend!.readOnly).toBe(false)
    expect(backend!.location).toBe('optimistic://test')
  })

  it('answers every read with a promise', async () => {
    const [backend] = clients(1)
    await write(backend!, set('a', 1))
    expect(backend!.get('a')).toBeInstanceOf(Promise)
    expect(backend!.has('a')).toBeInstanceOf(Promise)
    expect(backend!.size()).toBeInstanceOf(Promise)
    expect(Symbol.asyncIterator in Object(backend!.keys())).toBe(true)
    await backend!.transaction(async (tx) => {
      const reads = [tx.get('a'), tx.has('a'), tx.size()]
      for (const read of reads) expect(read).toBeInstanceOf(Promise)
      expect(Symbol.asyncIterator in Object(tx.entries())).toBe(true)
      await Promise.all(reads)
    })
  })

  it('applies a commit like a Map, with whether each delete found its key', async () => {
    const [backend] = clients(1)
    expect(await write(backend!, set('a', 1), set('b', 2), set('c', 3))).toEqual({
      committed: true,
      results: [undefined, undefined, undefined],
    })
    const outcome = await write(backend!, set('b', 20), del('a'), del('a'), set('a', 10), del('x'))
    expect(outcome).toEqual({ committed: true, results: [undefined, true, false, undefined, false] })
    expect(await bytes(backend!)).toEqual([
      ['b', 20],
      ['c', 3],
      ['a', 10],
    ])
    await write(backend!, set(1, 1), clear, set('z', 26), set('1', 2))
    expect(await bytes(backend!)).toEqual([
      ['z', 26],
      ['1', 2],
    ])
    expect(await backend!.size()).toBe(2)
    expect(await backend!.has(1)).toBe(false)
  })

  it('lists by prefix: string keys that start with it, never numbers', async () => {
    const [backend] = clients(1)
    await write(backend!, set('user:1', 1), set(1, 2), set('user:2', 3), set('other', 4))
    expect(await collect(backend!.keys({ prefix: 'user:' }))).toEqual(['user:1', 'user:2'])
    expect(await collect(backend!.keys({ prefix: '1' }))).toEqual([])
    expect((await collect(backend!.entries({ prefix: 'o' }))).map(([k]) => k)).toEqual(['other'])
  })

  it('hands out copies: changing what was read or committed changes nothing stored', async () => {
    const [backend] = clients(1)
    const mine = entry(1)
    await write(backend!, { kind: 'set', key: 'k', entry: mine })
    ;(mine.value as Uint8Array)[0] = 9
    const read = await backend!.get('k')
    ;(read!.value as Uint8Array)[0] = 8
    expect((await backend!.get('k'))!.value[0]).toBe(1)
  })

  it('several clients share one store', async () => {
    const [a, b] = clients(2)
    await write(a!, set('k', 1))
    expect((await b!.get('k'))!.value[0]).toBe(1)
  })

  it('refuses a commit when a key it read changed, was deleted or appeared since', async () => {
    const [a, b] = clients(2)
    await write(a!, set('k', 1), set('gone', 1))
    const changed = await readThenCommit(a!, (tx) => tx.get('k'), () => write(b!, set('k', 2)))
    expect(changed.committed).toBe(false)
    const deleted = await readThenCommit(a!, (tx) => tx.has('gone'), () => write(b!, del('gone')))
    expect(deleted.committed).toBe(false)
    const appeared = await readThenCommit(a!, (tx) => tx.get('new'), () => write(b!, set('new', 1)))
    expect(appeared.committed).toBe(false)
    const cleared = await readThenCommit(a!, (tx) => tx.get('k'), () => write(b!, clear))
    expect(cleared.committed).toBe(false)
    // None of the refused commits was applied.
    expect(await a!.has('result')).toBe(false)
    expect(a!.server.stats.conflicts).toBe(4)
  })

  it('refuses a commit after a listing or a size when anything changed since', async () => {
    const [a, b] = clients(2)
    await write(a!, set('k', 1))
    const listed = await readThenCommit(a!, (tx) => collect(tx.keys()), () => write(b!, set('x', 1)))
    expect(listed.committed).toBe(false)
    const sized = await readThenCommit(a!, (tx) => tx.size(), () => write(b!, del('x')))
    expect(sized.committed).toBe(false)
    const entries = await readThenCommit(
      a!,
      (tx) => collect(tx.entries({ prefix: 'k' })),
      () => write(b!, set('y', 1)),
    )
    expect(entries.committed).toBe(false)
  })

  it('commits when what changed meanwhile is nothing it read', async () => {
    const [a, b] = clients(2)
    await write(a!, set('k', 1), set('other', 1))
    const unrelated = await readThenCommit(a!, (tx) => tx.get('k'), () => write(b!, set('other', 2)))
    expect(unrelated).toEqual({ committed: true, results: [undefined] })
    // Deleting an absent key, or clearing an empty store, changes nothing.
    const noop = await readThenCommit(
      a!,
      async (tx) => {
        await tx.get('absent')
        await tx.size()
      },
      () => write(b!, del('absent')),
    )
    expect(noop.committed).toBe(true)
    // A blind write (nothing read) always commits.
    const blind = await readThenCommit(a!, async () => undefined, () => write(b!, set('k', 5)))
    expect(blind.committed).toBe(true)
  })

  it('injectConflicts(n) refuses exactly the next n commits', async () => {
    const [backend] = clients(1)
    backend!.server.injectConflicts(2)
    expect((await write(backend!, set('a', 1))).committed).toBe(false)
    expect((await write(backend!, set('a', 1))).committed).toBe(false)
    expect((await write(backend!, set('a', 1))).committed).toBe(true)
    expect(backend!.server.pendingInjectedConflicts).toBe(0)
    expect(backend!.server.stats).toMatchObject({ commits: 1, conflicts: 2 })
  })

  it('a read-only client may check its reads with an empty commit, and commit no change', async () => {
    const server = new OptimisticServer()
    const reader = new OptimisticBackend(server, { readOnly: true })
    expect(reader.readOnly).toBe(true)
    expect(await reader.transaction(async (tx) => tx.commit([]))).toEqual({ committed: true, results: [] })
    await expect(reader.transaction(async (tx) => tx.commit([set('a', 1)]))).rejects.toBeInstanceOf(
      BackendContractError,
    )
    expect(server.size).toBe(0)
  })

  it('reports misuse: a transaction used after it ended, a second commit, use after close', async () => {
    const [backend] = clients(1)
    let leaked: BackendTransaction | undefined
    await backend!.transaction(async (tx) => {
      leaked = tx
      await tx.commit([set('a', 1)])
      await expect(tx.commit([set('b', 1)])).rejects.toBeInstanceOf(BackendContractError)
    })
    await expect(leaked!.get('a')).rejects.toBeInstanceOf(BackendContractError)
    await expect(leaked!.commit([])).rejects.toBeInstanceOf(BackendContractError)
    backend!.close()
    await expect(backend!.get('a')).rejects.toBeInstanceOf(BackendContractError)
    await expect(backend!.transaction(async () => 1)).rejects.toBeInstanceOf(BackendContractError)
  })
})
