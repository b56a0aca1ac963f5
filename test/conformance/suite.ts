import { beforeAll, describe, expect, it as vitestIt, onTestFinished } from 'vitest'
import type { AnyStore, StoreChange, Transaction, WatchOptions } from '../../src/index.js'
import { nextMessage, runFixture, spawnFixture, exited } from '../helpers.js'

/**
 * The public behaviour of a store, whatever keeps its entries: every backend runs this suite
 * (test/conformance/*.test.ts), so a behaviour is specified once, here, and a new backend is
 * held to all of it. Errors are told apart by `code` only: messages may be reworded.
 */

/** What a backend can do beyond what every store does; each flag turns on a group of tests. */
export interface Capabilities {
  /** Entries outlive every instance: closing all of them and opening again finds them. */
  persistent: boolean
  /** The store is encrypted: opening it with another key fails with WrongKeyError (`openWithWrongKey`). */
  wrongKey: boolean
  /** Processes share a store: a child opens it with `processOptions`. */
  multiProcess: boolean
  /** Several instances in this process can be open on one store at the same time. */
  sharedInstances: boolean
  /**
   * run() holds the store exclusively from its first read to its commit, so a write or a nested
   * run() on the same store inside it would wait for itself: ReentrantCallError.
   */
  exclusive: boolean
  /** An instance can be opened read-only (`openReadOnly`) beside a writing one. */
  readOnly: boolean
  /** The factory can count what the storage holds, expired entries included (`storedCount`). */
  storedCount?: boolean
  /**
   * Entries can expire (`ttlMs`, `expiresAt`, `ttl`, `setIfAbsent`, `expire`). Default true; a
   * backend without it must refuse expiries with InvalidOptionError, which is checked instead.
   */
  expiry?: boolean
  /** The backend reports commits: `watch()` and `changes()` work. */
  events: boolean
}

/** One store (a file, a server...), fresh and empty, made for one test. */
export interface StoreUnderTest {
  /**
   * Opens an instance on this store. With `sharedInstances`, each call opens another one while
   * the others stay open; with `persistent`, a call after every instance was closed opens the
   * store again.
   */
  open(): Promise<AnyStore>
  /** With `wrongKey`: opens this store with a key it was not written with. */
  openWithWrongKey?(): Promise<AnyStore>
  /** With `readOnly`: opens another instance on this store that may not write. */
  openReadOnly?(): Promise<AnyStore>
  /**
   * With `multiProcess`: what a child process passes to `AnyStore.open()` to open this store;
   * it crosses to the child as JSON.
   */
  processOptions?: Record<string, unknown>
  /**
   * With `storedCount`: how many entries the storage holds now, counting expired ones that are
   * still kept (a file's records), read without going through a store.
   */
  storedCount?(): Promise<number>
}

export interface ConformanceFactory {
  /** A fresh, empty store; called once per test that needs one. */
  create(): StoreUnderTest | Promise<StoreUnderTest>
}

export interface ConformanceOptions {
  /**
   * Tests that do not apply to this configuration, by title, each with the reason (for example:
   * with write-behind, another instance sees a write only once it is committed). They are
   * skipped, and reported as skipped: never counted as passed.
   */
  notApplicable?: Record<string, string>
}

const CLOSED = 'ERR_ANYSTORE_CLOSED'
const INVALID_OPTION = 'ERR_ANYSTORE_INVALID_OPTION'
const READ_ONLY = 'ERR_ANYSTORE_READ_ONLY'
const REENTRANT = 'ERR_ANYSTORE_REENTRANT'
const UNSUPPORTED_KEY = 'ERR_ANYSTORE_UNSUPPORTED_KEY'
const UNSUPPORTED_VALUE = 'ERR_ANYSTORE_UNSUPPORTED_VALUE'

/**
 * The `code` of what `call` fails with. A synchronous throw counts too: callers `await` these
 * methods, and to them the two look the same.
 */
async function codeOf(call: () => unknown): Promise<string | undefined> {
  try {
    await call()
  } catch (error) {
    return (error as { code?: string }).code
  }
  throw new Error('expected a failure')
}

async function failure(call: () => unknown): Promise<Error & { code?: string }> {
  try {
    await call()
  } catch (error) {
    return error as Error & { code?: string }
  }
  throw new Error('expected a failure')
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const item of items) out.push(item)
  return out
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Waits until the clock is past `at` (milliseconds since the epoch). */
async function until(at: number): Promise<void> {
  while (Date.now() <= at) await sleep(Math.min(20, at - Date.now() + 1))
}

/** A promise and the function that resolves it: for making two callers meet at a chosen point. */
function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>((r) => {
    resolve = r
  })
  return { promise, resolve }
}

/** A change as watchers get it, with the lists a test leaves out empty. */
function change(parts: Partial<StoreChange>): StoreChange {
  return { added: [], changed: [], deleted: [], ...parts }
}

/** Kinds of resource that come and go on their own: the runner's timers, a close in progress. */
const TRANSIENT = new Set(['Timeout', 'FSReqCallback', 'CloseReq'])

/**
 * The handles and requests keeping the event loop running, sorted, once the transient ones are
 * gone (for up to 2 s): a watcher's directory watch or poll timer left open shows up here.
 */
async function settledResources(): Promise<string[]> {
  // A handle closed just now is listed until its close completes, a turn of the loop later.
  await sleep(10)
  const deadline = Date.now() + 2000
  let now = process.getActiveResourcesInfo()
  while (now.some((kind) => TRANSIENT.has(kind)) && Date.now() < deadline) {
    await sleep(10)
    now = process.getActiveResourcesInfo()
  }
  return now.sort()
}

/**
 * What `after` holds beyond `before`, by kind. Not equality: a handle of an earlier test (a
 * timer still running down) may be gone by now, which says nothing about this one.
 */
function newResources(before: string[], after: string[]): string[] {
  const left = [...before]
  return after.filter((kind) => {
    const at = left.indexOf(kind)
    if (at < 0) return true
    left.splice(at, 1)
    return false
  })
}

/**
 * Watches `store` and keeps what it hears. `next()` waits for the next change not yet taken;
 * listener errors and read failures are kept in `errors` (a test that expects none checks it).
 */
function recorder(store: AnyStore, options: Omit<WatchOptions, 'onError'> = {}) {
  const heard: StoreChange[] = []
  const errors: unknown[] = []
  let taken = 0
  let wake: (() => void) | undefined
  const watcher = store.watch(
    (heardChange) => {
      heard.push(heardChange)
      wake?.()
    },
    {
      ...options,
      onError: (error) => {
        errors.push(error)
      },
    },
  )
  onTestFinished(() => watcher.close())
  return {
    watcher,
    heard,
    errors,
    async next(timeoutMs = 5000): Promise<StoreChange> {
      const deadline = Date.now() + timeoutMs
      while (heard.length <= taken) {
        if (Date.now() > deadline) throw new Error(`no change was reported within ${timeoutMs} ms`)
        await new Promise<void>((resolve) => {
          wake = resolve
          setTimeout(resolve, 10)
        })
      }
      return heard[taken++]!
    },
    /** The changes heard and not yet taken. */
    get pending(): StoreChange[] {
      return heard.slice(taken)
    },
  }
}

/** Applies a reported change to `model`, checking that its old values are what the model held. */
function replay(model: Map<string | number, unknown>, reported: StoreChange): void {
  for (const { key, value } of reported.added) {
    expect(model.has(key), `added ${String(key)} was absent`).toBe(false)
    model.set(key, value)
  }
  for (const { key, oldValue, value } of reported.changed) {
    expect(model.get(key), `old value of ${String(key)}`).toEqual(oldValue)
    model.set(key, value)
  }
  for (const { key, oldValue } of reported.deleted) {
    expect(model.get(key), `old value of deleted ${String(key)}`).toEqual(oldValue)
    model.delete(key)
  }
}

/** Everything the README says round-trips exactly. */
function storableValues(): [string, unknown][] {
  return [
    ['an empty string', ''],
    ['a string with unicode and NUL', 'größe ✓ 🔑 \u0000 end'],
    ['a long string', 'abc'.repeat(50_000)],
    ['0', 0],
    ['-0', -0],
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['-Infinity', -Infinity],
    ['a float', 0.1 + 0.2],
    ['a negative integer', -42],
    ['MAX_SAFE_INTEGER', Number.MAX_SAFE_INTEGER],
    ['true', true],
    ['false', false],
    ['null', null],
    ['undefined', undefined],
    ['a bigint', 2n ** 100n],
    ['a negative bigint', -(2n ** 70n)],
    ['0n', 0n],
    ['a Date', new Date(Date.UTC(2024, 1, 29, 12, 30, 15, 123))],
    ['an invalid Date', new Date(NaN)],
    [
      'a Map with keys of several types',
      new Map<unknown, unknown>([
        [1, 'one'],
        ['1', 'string one'],
        [{ k: 1 }, [2]],
        [null, undefined],
      ]),
    ],
    ['a Set', new Set<unknown>([1, '1', null, 2n])],
    ['a Uint8Array', Uint8Array.of(0, 1, 127, 128, 255)],
    ['an empty Uint8Array', new Uint8Array(0)],
    ['a Buffer', Buffer.from('buffer bytes')],
    ['an array of mixed values', [1, 'two', [3], { four: 4 }, null, undefined, -0]],
    ['an empty array and object', { array: [], object: {} }],
    ['an object with an undefined property', { present: undefined }],
    [
      'nested containers',
      { a: { b: [new Date(0), new Map([['m', new Set([1n, -0])]]), Buffer.from([1])] } },
    ],
  ]
}

function unstorableValues(): [string, unknown][] {
  const cyclic: Record<string, unknown> = { name: 'loop' }
  cyclic.self = cyclic
  let deep: unknown = 'bottom'
  for (let i = 0; i < 150; i++) deep = [deep]
  return [
    ['a function', () => 1],
    ['a symbol', Symbol('s')],
    ['a class instance', new (class Point {})()],
    ['an Error', new Error('not a value')],
    ['a WeakMap', new WeakMap()],
    ['a Promise', Promise.resolve(1)],
    ['an Int16Array', Int16Array.of(1, 2)],
    ['a Float64Array', Float64Array.of(1.5)],
    ['a cyclic object', cyclic],
    ['an object with a symbol key', { [Symbol('k')]: 1 }],
    ['an own property named __proto__', JSON.parse('{"__proto__": 1}')],
    ['a function deep in an array', [1, [2, [() => 3]]]],
    ['a function as a Map value', new Map([['f', () => 1]])],
    ['values nested 150 levels deep', deep],
  ]
}

const validKeys: (string | number)[] = [
  '',
  'a',
  '🔑 key with spaces',
  'k'.repeat(1000),
  0,
  -1,
  1.5,
  Number.MAX_SAFE_INTEGER,
  -Number.MAX_VALUE,
]

const invalidKeys: [string, unknown][] = [
  ['null', null],
  ['undefined', undefined],
  ['an object', {}],
  ['an array', ['a']],
  ['a boolean', true],
  ['a symbol', Symbol('k')],
  ['a bigint', 1n],
  ['a Date', new Date(0)],
  // UTF-8 has no form for a lone surrogate: a persisted key would come back as another key.
  ['a lone high surrogate', '\uD800'],
  ['a lone low surrogate inside a string', 'a\uDC00b'],
]

/** A deterministic sequence of writes over a few keys of both types, for comparing with a Map. */
function mapOperations(count: number, seed: number): ['set' | 'delete' | 'clear', string | number, number][] {
  let state = seed
  const next = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0
    return state / 2 ** 32
  }
  const keys = [0, 1, 2, 3, '0', '1', '2', 'x']
  return Array.from({ length: count }, (_, i) => {
    const r = next()
    const key = keys[Math.floor(next() * keys.length)]!
    return [r < 0.03 ? 'clear' : r < 0.35 ? 'delete' : 'set', key, i]
  })
}

/**
 * Registers the conformance tests of one backend. `factory.create()` gives each test its own
 * empty store; `capabilities` says which optional groups apply (the others show as skipped).
 */
export function describeConformance(
  name: string,
  factory: ConformanceFactory,
  capabilities: Capabilities,
  options: ConformanceOptions = {},
): void {
  const caps = capabilities
  const known = new Map(Object.entries(options.notApplicable ?? {}))
  const titles = new Set<string>()
  const register = (title: string, fn: () => Promise<void>) => {
    titles.add(title)
    const reason = known.get(title)
    if (reason === undefined) vitestIt(title, fn)
    else vitestIt.skip(`${title} [not applicable: ${reason}]`, fn)
  }
  const it = Object.assign(register, {
    skipIf: (skip: boolean) => (title: string, fn: () => Promise<void>) => {
      if (skip) {
        titles.add(title)
        vitestIt.skip(title, fn)
      } else {
        register(title, fn)
      }
    },
  })
  // A capability without the hook it needs would fail every test of its group for that reason.
  const needs: [keyof Capabilities, keyof StoreUnderTest][] = [
    ['wrongKey', 'openWithWrongKey'],
    ['readOnly', 'openReadOnly'],
    ['multiProcess', 'processOptions'],
    ['storedCount', 'storedCount'],
  ]
  const checkHooks = (target: StoreUnderTest) => {
    for (const [capability, hook] of needs) {
      if (caps[capability] && target[hook] === undefined) {
        throw new Error(`${name}: the capability ${capability} needs the factory to give ${hook}`)
      }
    }
    return target
  }

  /** A fresh store and its first instance; every instance opened is closed when the test ends. */
  async function fresh() {
    const target = checkHooks(await factory.create())
    const opened: AnyStore[] = []
    onTestFinished(async () => {
      await Promise.allSettled(opened.map((s) => s.close()))
    })
    const open = async () => {
      const store = await target.open()
      opened.push(store)
      return store
    }
    const store = await open()
    return {
      target,
      store,
      /** A read-only instance beside the others (readOnly). */
      openReadOnly: async () => {
        const readOnly = await target.openReadOnly!()
        opened.push(readOnly)
        return readOnly
      },
      /** Another instance on the same store (sharedInstances). */
      open,
      /** Closes every instance, then opens the store again (persistent). */
      reopen: async () => {
        await Promise.all(opened.map((s) => s.close()))
        return open()
      },
    }
  }

  describe(`${name}: conformance`, () => {
    // Once every test is registered: a misspelt title would run a test meant to be skipped.
    beforeAll(() => {
      for (const title of known.keys()) {
        if (!titles.has(title)) throw new Error(`${name}: notApplicable names no test: ${title}`)
      }
    })

    describe('reads', () => {
      it('an empty store has nothing', async () => {
        const { store } = await fresh()
        expect(await store.get('a')).toBeUndefined()
        expect(await store.has('a')).toBe(false)
        expect(await store.keys()).toEqual([])
        expect(await store.size()).toBe(0)
        expect(await store.entries()).toEqual([])
      })

      it('get, has, keys, size and entries agree on what was written', async () => {
        const { store } = await fresh()
        await store.set('a', 1)
        await store.set(2, 'two')
        await store.set('c', { nested: [3] })
        expect(await store.get('a')).toBe(1)
        expect(await store.get(2)).toBe('two')
        expect(await store.get('c')).toEqual({ nested: [3] })
        expect(await store.get('missing')).toBeUndefined()
        expect(await store.has('a')).toBe(true)
        expect(await store.has(2)).toBe(true)
        expect(await store.has('missing')).toBe(false)
        expect(await store.keys()).toEqual(['a', 2, 'c'])
        expect(await store.size()).toBe(3)
        expect(await store.entries()).toEqual([
          ['a', 1],
          [2, 'two'],
          ['c', { nested: [3] }],
        ])
      })

      it('keep insertion order like a Map: an overwrite keeps its place, delete then set moves to the end', async () => {
        const { store } = await fresh()
        for (const key of ['a', 'b', 'c', 'd']) await store.set(key, key)
        await store.set('b', 'B')
        expect(await store.keys()).toEqual(['a', 'b', 'c', 'd'])
        await store.delete('a')
        await store.set('a', 'A')
        expect(await store.keys()).toEqual(['b', 'c', 'd', 'a'])
        expect(await store.entries()).toEqual([
          ['b', 'B'],
          ['c', 'c'],
          ['d', 'd'],
          ['a', 'A'],
        ])
        await store.clear()
        await store.set('d', 1)
        await store.set('a', 2)
        expect(await store.keys()).toEqual(['d', 'a'])
      })

      it('follow a Map through a sequence of sets, deletes and clears', async () => {
        const { store } = await fresh()
        const model = new Map<string | number, number>()
        for (const [op, key, value] of mapOperations(80, 7)) {
          if (op === 'set') {
            model.set(key, value)
            await store.set(key, value)
          } else if (op === 'delete') {
            expect(await store.delete(key), `delete(${JSON.stringify(key)})`).toBe(model.delete(key))
          } else {
            model.clear()
            await store.clear()
          }
        }
        expect(await store.entries()).toEqual([...model])
        expect(await store.keys()).toEqual([...model.keys()])
        expect(await store.size()).toBe(model.size)
      })

      it('hand out a fresh copy each time', async () => {
        const { store } = await fresh()
        const value = { list: [1], when: new Date(0), bytes: Uint8Array.of(1) }
        await store.set('v', value)
        value.list.push(2)
        value.when.setTime(1)
        value.bytes[0] = 9
        const out = (await store.get('v')) as typeof value
        out.list.push(3)
        out.bytes[0] = 8
        expect(await store.get('v')).toEqual({ list: [1], when: new Date(0), bytes: Uint8Array.of(1) })
        const [entry] = (await store.entries()) as [string, typeof value][]
        entry![1].list.push(4)
        expect(await store.get('v')).toEqual({ list: [1], when: new Date(0), bytes: Uint8Array.of(1) })
      })

      it('keys() and entries() with a prefix list the string keys that start with it, never numbers', async () => {
        const { store } = await fresh()
        for (const [i, key] of ['user:2', 1, 'user:1', 'users', 12, 'other', '1x'].entries()) {
          await store.set(key, i)
        }
        await store.delete('user:2')
        await store.set('user:2', 'again')
        expect(await store.keys({ prefix: 'user:' })).toEqual(['user:1', 'user:2'])
        expect(await store.entries({ prefix: 'user' })).toEqual([
          ['user:1', 2],
          ['users', 3],
          ['user:2', 'again'],
        ])
        expect(await store.keys({ prefix: '1' })).toEqual(['1x'])
        expect(await store.keys({ prefix: 'none' })).toEqual([])
        // '' is a prefix like any other: every string key, no number.
        expect(await store.keys({ prefix: '' })).toEqual(['user:1', 'users', 'other', '1x', 'user:2'])
        expect(await store.keys({})).toEqual([1, 'user:1', 'users', 12, 'other', '1x', 'user:2'])
      })

      it('iterateKeys() and iterateEntries() give what keys() and entries() give, one at a time', async () => {
        const { store } = await fresh()
        const empty = await collect(store.iterateKeys())
        expect(empty).toEqual([])
        await store.set('a:1', { n: 1 })
        await store.set(2, new Set([2]))
        await store.set('a:3', [3])
        expect(await collect(store.iterateKeys())).toEqual(await store.keys())
        expect(await collect(store.iterateEntries())).toEqual(await store.entries())
        expect(await collect(store.iterateKeys({ prefix: 'a:' }))).toEqual(['a:1', 'a:3'])
        expect(await collect(store.iterateEntries({ prefix: 'a:' }))).toEqual([
          ['a:1', { n: 1 }],
          ['a:3', [3]],
        ])
      })

      it('a query that is not { prefix: string } is InvalidOptionError', async () => {
        const { store } = await fresh()
        const bad = [null, 'a:', { prefix: 1 }] as never[]
        for (const query of bad) {
          expect(await codeOf(() => store.keys(query)), String(query)).toBe(INVALID_OPTION)
          expect(await codeOf(() => store.entries(query)), String(query)).toBe(INVALID_OPTION)
          expect(await codeOf(() => collect(store.iterateKeys(query)))).toBe(INVALID_OPTION)
          expect(await codeOf(() => store.run((tx) => tx.keys(query)))).toBe(INVALID_OPTION)
        }
      })
    })

    describe('writes', () => {
      it('set() overwrites and resolves to undefined', async () => {
        const { store } = await fresh()
        expect(await store.set('k', 1)).toBeUndefined()
        expect(await store.set('k', 2)).toBeUndefined()
        expect(await store.get('k')).toBe(2)
        expect(await store.size()).toBe(1)
      })

      it('delete() resolves to whether the key existed', async () => {
        const { store } = await fresh()
        await store.set('k', 1)
        expect(await store.delete('k')).toBe(true)
        expect(await store.delete('k')).toBe(false)
        expect(await store.delete('never')).toBe(false)
        expect(await store.has('k')).toBe(false)
        expect(await store.size()).toBe(0)
      })

      it('a key holding undefined exists', async () => {
        const { store } = await fresh()
        await store.set('u', undefined)
        expect(await store.has('u')).toBe(true)
        expect(await store.get('u')).toBeUndefined()
        expect(await store.entries()).toEqual([['u', undefined]])
        expect(await store.delete('u')).toBe(true)
      })

      it('clear() empties the store, also when it is already empty', async () => {
        const { store } = await fresh()
        expect(await store.clear()).toBeUndefined()
        await store.set('a', 1)
        await store.set(2, 2)
        await store.clear()
        expect(await store.size()).toBe(0)
        expect(await store.keys()).toEqual([])
        expect(await store.has('a')).toBe(false)
        await store.set('b', 3)
        expect(await store.entries()).toEqual([['b', 3]])
      })

      it('a value is encoded when set() is called: changing it afterwards changes nothing', async () => {
        const { store } = await fresh()
        const value = { n: 1 }
        const pending = store.set('k', value)
        value.n = 2
        await pending
        expect(await store.get('k')).toEqual({ n: 1 })
      })
    })

    describe('values', () => {
      it('every supported type round-trips exactly through get() and entries()', async () => {
        const { store } = await fresh()
        const values = storableValues()
        for (const [label, value] of values) await store.set(label, value)
        for (const [label, value] of values) {
          expect(await store.get(label), label).toStrictEqual(value)
        }
        expect(Buffer.isBuffer(await store.get('a Buffer'))).toBe(true)
        expect(Buffer.isBuffer(await store.get('a Uint8Array'))).toBe(false)
        expect(Object.is(await store.get('-0'), -0)).toBe(true)
        expect(await store.entries()).toStrictEqual(values)
      })

      it('every supported type round-trips through a transaction', async () => {
        const { store } = await fresh()
        const values = storableValues()
        await store.run(async (tx) => {
          for (const [label, value] of values) await tx.set(label, value)
          for (const [label, value] of values) {
            expect(await tx.get(label), `${label}, before the commit`).toStrictEqual(value)
          }
        })
        await store.run(async (tx) => {
          for (const [label, value] of values) {
            expect(await tx.get(label), `${label}, after the commit`).toStrictEqual(value)
          }
          expect(await tx.entries()).toStrictEqual(values)
        })
      })

      it('an unsupported value is UnsupportedValueError and nothing is written', async () => {
        const { store } = await fresh()
        await store.set('bad', 'old')
        await store.set('other', 1)
        const before = await store.entries()
        for (const [label, value] of unstorableValues()) {
          expect(await codeOf(() => store.set('bad', value)), label).toBe(UNSUPPORTED_VALUE)
          expect(await codeOf(() => store.set('new', value)), label).toBe(UNSUPPORTED_VALUE)
        }
        expect(await store.entries()).toEqual(before)
        expect(await store.has('new')).toBe(false)
      })

      it('UnsupportedValueError says where in the value the problem is', async () => {
        const { store } = await fresh()
        const error = await failure(() => store.set('k', { list: [1, () => 2] }))
        expect(error.code).toBe(UNSUPPORTED_VALUE)
        expect((error as { path?: string }).path).toBe('value.list[1]')
      })

      it('tx.set() of an unsupported value fails alone: the transaction goes on and commits the rest', async () => {
        const { store } = await fresh()
        await store.set('bad', 'old')
        await store.run(async (tx) => {
          expect(await codeOf(() => tx.set('bad', () => 1))).toBe(UNSUPPORTED_VALUE)
          expect(await codeOf(() => tx.set('new', Symbol('s')))).toBe(UNSUPPORTED_VALUE)
          expect(await tx.get('bad')).toBe('old')
          expect(await tx.has('new')).toBe(false)
          await tx.set('good', 1)
        })
        expect(await store.entries()).toEqual([
          ['bad', 'old'],
          ['good', 1],
        ])
      })
    })

    describe('keys', () => {
      it('a number and a string that look alike are different keys', async () => {
        const { store } = await fresh()
        await store.set(1, 'number')
        await store.set('1', 'string')
        await store.set(0, 'zero')
        await store.set('0', 'string zero')
        await store.set(1.5, 'float')
        expect(await store.get(1)).toBe('number')
        expect(await store.get('1')).toBe('string')
        expect(await store.get('1.5')).toBeUndefined()
        expect(await store.keys()).toEqual([1, '1', 0, '0', 1.5])
        expect(await store.size()).toBe(5)
        expect(await store.delete('1')).toBe(true)
        expect(await store.get(1)).toBe('number')
        expect(await store.has('0')).toBe(true)
      })

      it('strings and numbers of every kind are keys, and come back with their type', async () => {
        const { store } = await fresh()
        for (const [i, key] of validKeys.entries()) await store.set(key, i)
        for (const [i, key] of validKeys.entries()) expect(await store.get(key), String(key)).toBe(i)
        const keys = await store.keys()
        expect(keys).toEqual(validKeys)
        expect(keys.map((k) => typeof k)).toEqual(validKeys.map((k) => typeof k))
      })

      it('a key that is not a string or a number is UnsupportedKeyError, on every method', async () => {
        const { store } = await fresh()
        await store.set('a', 1)
        for (const [label, key] of invalidKeys) {
          const k = key as string
          expect(await codeOf(() => store.set(k, 1)), `set ${label}`).toBe(UNSUPPORTED_KEY)
          expect(await codeOf(() => store.get(k)), `get ${label}`).toBe(UNSUPPORTED_KEY)
          expect(await codeOf(() => store.has(k)), `has ${label}`).toBe(UNSUPPORTED_KEY)
          expect(await codeOf(() => store.delete(k)), `delete ${label}`).toBe(UNSUPPORTED_KEY)
          expect(await codeOf(() => store.ttl(k)), `ttl ${label}`).toBe(UNSUPPORTED_KEY)
          expect(await codeOf(() => store.setIfAbsent(k, 1)), `setIfAbsent ${label}`).toBe(UNSUPPORTED_KEY)
          expect(await codeOf(() => store.expire(k, 1)), `expire ${label}`).toBe(UNSUPPORTED_KEY)
        }
        await store.run(async (tx) => {
          for (const [label, key] of invalidKeys) {
            const k = key as string
            expect(await codeOf(() => tx.set(k, 1)), `tx.set ${label}`).toBe(UNSUPPORTED_KEY)
            expect(await codeOf(() => tx.get(k)), `tx.get ${label}`).toBe(UNSUPPORTED_KEY)
            expect(await codeOf(() => tx.has(k)), `tx.has ${label}`).toBe(UNSUPPORTED_KEY)
            expect(await codeOf(() => tx.delete(k)), `tx.delete ${label}`).toBe(UNSUPPORTED_KEY)
            expect(await codeOf(() => tx.ttl(k)), `tx.ttl ${label}`).toBe(UNSUPPORTED_KEY)
            expect(await codeOf(() => tx.setIfAbsent(k, 1)), `tx.setIfAbsent ${label}`).toBe(
              UNSUPPORTED_KEY,
            )
            expect(await codeOf(() => tx.expire(k, 1)), `tx.expire ${label}`).toBe(UNSUPPORTED_KEY)
          }
        })
        expect(await store.entries()).toEqual([['a', 1]])
      })
    })

    describe('transactions', () => {
      it('run() returns what the callback returns, also from a synchronous callback', async () => {
        const { store } = await fresh()
        expect(await store.run(async () => ({ answer: 42 }))).toEqual({ answer: 42 })
        expect(await store.run(() => 'sync')).toBe('sync')
        expect(await store.run(async () => undefined)).toBeUndefined()
        expect(await store.size()).toBe(0)
      })

      it('reads inside run() see the committed state plus the transaction’s own writes', async () => {
        const { store } = await fresh()
        await store.set('a', 1)
        await store.set('b', 2)
        await store.run(async (tx) => {
          expect(await tx.get('a')).toBe(1)
          await tx.set('c', 3)
          await tx.set('a', 10)
          expect(await tx.delete('b')).toBe(true)
          expect(await tx.delete('b')).toBe(false)
          expect(await tx.delete('never')).toBe(false)
          expect(await tx.get('a')).toBe(10)
          expect(await tx.get('c')).toBe(3)
          expect(await tx.has('b')).toBe(false)
          expect(await tx.has('c')).toBe(true)
          expect(await tx.size()).toBe(2)
          expect(await tx.keys()).toEqual(['a', 'c'])
          expect(await tx.entries()).toEqual([
            ['a', 10],
            ['c', 3],
          ])
          await tx.set('b', 20)
          expect(await tx.keys()).toEqual(['a', 'c', 'b'])
        })
        expect(await store.entries()).toEqual([
          ['a', 10],
          ['c', 3],
          ['b', 20],
        ])
      })

      it('tx.clear() inside run() hides everything before it; later writes stay', async () => {
        const { store } = await fresh()
        await store.set('a', 1)
        await store.set('b', 2)
        await store.run(async (tx) => {
          await tx.set('c', 3)
          await tx.clear()
          expect(await tx.size()).toBe(0)
          expect(await tx.get('a')).toBeUndefined()
          expect(await tx.keys()).toEqual([])
          await tx.set('b', 'again')
          expect(await tx.entries()).toEqual([['b', 'again']])
        })
        expect(await store.entries()).toEqual([['b', 'again']])
      })

      it('tx.keys() and tx.entries() with a prefix include the transaction’s own writes', async () => {
        const { store } = await fresh()
        await store.set('p:a', 1)
        await store.set('p:b', 2)
        await store.set('q', 3)
        await store.run(async (tx) => {
          await tx.delete('p:a')
          await tx.set('p:c', 4)
          await tx.set(5, 5)
          await tx.set('p:a', 6)
          expect(await tx.keys({ prefix: 'p:' })).toEqual(['p:b', 'p:c', 'p:a'])
          expect(await tx.entries({ prefix: 'p:' })).toEqual([
            ['p:b', 2],
            ['p:c', 4],
            ['p:a', 6],
          ])
          expect(await tx.keys({ prefix: 'q' })).toEqual(['q'])
        })
      })

      it('writes in run() follow Map order too', async () => {
        const { store } = await fresh()
        const model = new Map<string | number, number>()
        for (const [op, key, value] of mapOperations(30, 3)) {
          if (op === 'set') {
            model.set(key, value)
            await store.set(key, value)
          }
        }
        await store.run(async (tx) => {
          for (const [op, key, value] of mapOperations(80, 11)) {
            if (op === 'set') {
              model.set(key, value)
              await tx.set(key, value)
            } else if (op === 'delete') {
              expect(await tx.delete(key)).toBe(model.delete(key))
            } else {
              model.clear()
              await tx.clear()
            }
          }
          expect(await tx.entries()).toEqual([...model])
          expect(await tx.size()).toBe(model.size)
        })
        expect(await store.entries()).toEqual([...model])
      })

      it('the store outside the callback sees none of its writes until run() resolves', async () => {
        const { store } = await fresh()
        await store.set('a', 1)
        await store.run(async (tx) => {
          await tx.set('a', 2)
          await tx.set('b', 2)
          expect(await store.get('a')).toBe(1)
          expect(await store.has('b')).toBe(false)
          expect(await store.keys()).toEqual(['a'])
        })
        expect(await store.entries()).toEqual([
          ['a', 2],
          ['b', 2],
        ])
      })

      it('a callback that throws commits nothing, and run() rethrows what it threw', async () => {
        const { store } = await fresh()
        await store.set('a', 1)
        const boom = new Error('boom')
        await expect(
          store.run(async (tx) => {
            await tx.set('b', 2)
            await tx.delete('a')
            await tx.clear()
            throw boom
          }),
        ).rejects.toBe(boom)
        await expect(
          store.run((tx) => {
            void tx.set('c', 3)
            throw 'not an Error'
          }),
        ).rejects.toBe('not an Error')
        expect(await store.entries()).toEqual([['a', 1]])
        // The store is as usable as before.
        await store.run(async (tx) => tx.set('d', 4))
        expect(await store.keys()).toEqual(['a', 'd'])
      })

      it('a callback that throws after a long await commits nothing either', async () => {
        const { store } = await fresh()
        await expect(
          store.run(async (tx) => {
            await tx.set('a', 1)
            await sleep(5)
            await tx.set('b', 2)
            throw new Error('late')
          }),
        ).rejects.toThrow('late')
        expect(await store.size()).toBe(0)
      })

      it('the transaction object cannot be used once run() ended: StoreClosedError', async () => {
        const { store } = await fresh()
        let leaked: Transaction<unknown> | undefined
        await store.run(async (tx) => {
          leaked = tx
          await tx.set('a', 1)
        })
        const tx = leaked!
        const calls: [string, () => unknown][] = [
          ['get', () => tx.get('a')],
          ['has', () => tx.has('a')],
          ['set', () => tx.set('b', 1)],
          ['delete', () => tx.delete('a')],
          ['keys', () => tx.keys()],
          ['size', () => tx.size()],
          ['entries', () => tx.entries()],
          ['clear', () => tx.clear()],
          ['ttl', () => tx.ttl('a')],
          ['setIfAbsent', () => tx.setIfAbsent('b', 1)],
          ['expire', () => tx.expire('a', 1000)],
        ]
        for (const [method, call] of calls) expect(await codeOf(call), method).toBe(CLOSED)
        let failed: Transaction<unknown> | undefined
        await expect(
          store.run(async (t) => {
            failed = t
            throw new Error('x')
          }),
        ).rejects.toThrow('x')
        expect(await codeOf(() => failed!.set('c', 1))).toBe(CLOSED)
        expect(await store.entries()).toEqual([['a', 1]])
      })

      it('the transaction object has the documented methods and no others', async () => {
        const { store } = await fresh()
        const names = new Set<string>()
        await store.run(async (tx) => {
          for (let o: object | null = tx; o !== null && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
            for (const key of Object.getOwnPropertyNames(o)) names.add(key)
          }
        })
        names.delete('constructor')
        expect([...names].sort()).toEqual(
          [
            'clear',
            'delete',
            'entries',
            'expire',
            'get',
            'has',
            'keys',
            'set',
            'setIfAbsent',
            'size',
            'ttl',
          ].sort(),
        )
      })

      it('sequential read-modify-write transactions lose nothing', async () => {
        const { store } = await fresh()
        for (let i = 0; i < 20; i++) {
          await store.run(async (tx) => tx.set('n', (((await tx.get('n')) as number) ?? 0) + 1))
        }
        expect(await store.get('n')).toBe(20)
      })

      it('concurrent read-modify-write transactions on one instance lose nothing', async () => {
        const { store } = await fresh()
        // Eight at once: each refusal of one means another committed, so an optimistic store
        // needs at most eight attempts for any of them, within the default limit of ten.
        await Promise.all(
          Array.from({ length: 8 }, () =>
            store.run(async (tx) => {
              const n = ((await tx.get('n')) as number | undefined) ?? 0
              await sleep(1)
              await tx.set('n', n + 1)
            }),
          ),
        )
        expect(await store.get('n')).toBe(8)
      })

      it('a set() made while a run() is under way is not lost: one of them goes first', async () => {
        const { store } = await fresh()
        const inside = signal()
        const tx = store.run(async (t) => {
          const before = ((await t.get('n')) as number | undefined) ?? 0
          inside.resolve()
          await sleep(20)
          await t.set('n', before + 1)
        })
        await inside.promise
        const write = store.set('n', 10)
        await Promise.all([tx, write])
        // 10: the transaction first, then the set; 11: the set first, the transaction after it
        // (only an optimistic store lets the set go first). 1 would be the transaction
        // overwriting the set with what it had read before it.
        expect(caps.exclusive ? [10] : [10, 11]).toContain(await store.get('n'))
      })

      if (caps.exclusive) {
        it('a write or a nested run() on the same store inside run() is ReentrantCallError', async () => {
          const { store } = await fresh()
          await store.set('x', 0)
          const nested: [string, () => unknown][] = [
            ['set', () => store.set('x', 1)],
            ['delete', () => store.delete('x')],
            ['clear', () => store.clear()],
            ['setIfAbsent', () => store.setIfAbsent('y', 1)],
            ['expire', () => store.expire('x', 1000)],
            ['run', () => store.run(async () => 1)],
          ]
          for (const [method, call] of nested) {
            expect(await codeOf(() => store.run(async () => call())), method).toBe(REENTRANT)
          }
          // Caught inside the callback, the refusal leaves the transaction itself intact.
          await store.run(async (tx) => {
            expect(await codeOf(() => store.set('x', 2))).toBe(REENTRANT)
            await tx.set('y', 1)
          })
          expect(await store.entries()).toEqual([
            ['x', 0],
            ['y', 1],
          ])
        })
      } else {
        it('a write or a nested run() on the same store inside run() settles instead of deadlocking', async () => {
          const { store } = await fresh()
          const outcome = await Promise.race([
            store
              .run(async () => {
                await store.set('x', 1).catch((error: { code?: string }) => {
                  if (error.code !== REENTRANT) throw error
                })
                await store.run(async () => 1).catch((error: { code?: string }) => {
                  if (error.code !== REENTRANT) throw error
                })
              })
              .then(() => 'settled'),
            sleep(5000).then(() => 'hung'),
          ])
          expect(outcome).toBe('settled')
        })
      }
    })

    describe('group commit', () => {
      it('many concurrent set() calls all land, in the order they were made', async () => {
        const { store } = await fresh()
        const keys = Array.from({ length: 300 }, (_, i) => `k${i}`)
        const results = await Promise.all(keys.map((key, i) => store.set(key, i)))
        expect(results.every((r) => r === undefined)).toBe(true)
        expect(await store.size()).toBe(300)
        expect(await store.keys()).toEqual(keys)
        expect(await store.get('k299')).toBe(299)
      })

      it('each write of a group gets the result of its own step', async () => {
        const { store } = await fresh()
        await store.set('a', 1)
        const results = await Promise.all([store.delete('a'), store.delete('a'), store.set('a', 2)])
        expect(results).toEqual([true, false, undefined])
        expect(await store.get('a')).toBe(2)
      })

      it('a group with a clear() in it applies in call order', async () => {
        const { store } = await fresh()
        await store.set('old', 0)
        const results = await Promise.all([
          store.set('x', 1),
          store.delete('x'),
          store.delete('old'),
          store.set('y', 2),
          store.clear(),
          store.delete('y'),
          store.set('z', 3),
          store.set('y', 4),
        ])
        expect(results).toEqual([undefined, true, true, undefined, undefined, false, undefined, undefined])
        expect(await store.entries()).toEqual([
          ['z', 3],
          ['y', 4],
        ])
      })

      it('an unsupported value fails alone; the writes around it land', async () => {
        const { store } = await fresh()
        const outcomes = await Promise.allSettled([
          store.set('a', 1),
          store.set('bad', () => 1),
          store.set('b', 2),
        ])
        expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
        expect(((outcomes[1] as PromiseRejectedResult).reason as { code?: string }).code).toBe(
          UNSUPPORTED_VALUE,
        )
        expect(await store.entries()).toEqual([
          ['a', 1],
          ['b', 2],
        ])
      })

      it('concurrent set() and run() calls on one instance all land', async () => {
        const { store } = await fresh()
        const work: Promise<unknown>[] = []
        for (let i = 0; i < 20; i++) {
          work.push(store.set(`s${i}`, i))
          if (i % 5 === 0) {
            work.push(
              store.run(async (tx) =>
                tx.set('count', (((await tx.get('count')) as number | undefined) ?? 0) + 1),
              ),
            )
          }
        }
        await Promise.all(work)
        expect(await store.size()).toBe(21)
        expect(await store.get('count')).toBe(4)
        for (let i = 0; i < 20; i++) expect(await store.get(`s${i}`)).toBe(i)
      })
    })

    it.skipIf(caps.expiry !== false)(
      'a backend without expiry refuses ttlMs and expiresAt with InvalidOptionError, writing nothing',
      async () => {
        const { store } = await fresh()
        await store.set('kept', 1)
        const code = (p: Promise<unknown>) =>
          p.then(
            () => 'resolved',
            (e: { code?: string }) => e.code,
          )
        expect(await code(store.set('a', 1, { ttlMs: 1000 }))).toBe('ERR_ANYSTORE_INVALID_OPTION')
        expect(await code(store.set('a', 1, { expiresAt: Date.now() + 1000 }))).toBe(
          'ERR_ANYSTORE_INVALID_OPTION',
        )
        expect(await code(store.expire('kept', 1000))).toBe('ERR_ANYSTORE_INVALID_OPTION')
        expect(await code(store.run((tx) => tx.set('a', 1, { ttlMs: 1000 })))).toBe(
          'ERR_ANYSTORE_INVALID_OPTION',
        )
        expect(await store.entries()).toEqual([['kept', 1]])
        // Without an expiry, the same calls work.
        expect(await store.setIfAbsent('b', 2)).toBe(true)
        expect(await store.ttl('b')).toBeUndefined()
      },
    )

    describe.skipIf(caps.expiry === false)('expiry', () => {
      // Short expiries keep the group fast; every check of "still there" or "gone" is tied to
      // the clock around it, so a slow machine makes a check vacuous, never wrong.

      it('an entry set with ttlMs is there until it expires, then absent to every read', async () => {
        const { store } = await fresh()
        const t0 = Date.now()
        await store.set('short', 's', { ttlMs: 120 })
        const t1 = Date.now()
        await store.set('long', 'l', { ttlMs: 60_000 })
        await store.set('kept', 'k')
        expect(await store.get('long')).toBe('l')
        expect(await store.keys()).toContain('long')
        // Polled: it must not go before its time, and must be gone once its time has passed.
        for (;;) {
          const start = Date.now()
          const present = await store.has('short')
          // The read took its time somewhere between start and end: an absence proves only that
          // the end came after the expiry, a presence only that the start came before it.
          const end = Date.now()
          if (!present) {
            expect(end, 'gone before its expiry').toBeGreaterThanOrEqual(t0 + 120)
            break
          }
          expect(start, 'still there after its expiry').toBeLessThanOrEqual(t1 + 120)
          await sleep(10)
        }
        expect(await store.get('short')).toBeUndefined()
        expect(await store.ttl('short')).toBeUndefined()
        expect(await store.keys()).toEqual(['long', 'kept'])
        expect(await store.keys({ prefix: 's' })).toEqual([])
        expect(await store.size()).toBe(2)
        expect(await store.entries()).toEqual([
          ['long', 'l'],
          ['kept', 'k'],
        ])
        expect(await collect(store.iterateKeys())).toEqual(['long', 'kept'])
        expect(await collect(store.iterateEntries({ prefix: 'k' }))).toEqual([['kept', 'k']])
      })

      it('ttl() gives the milliseconds left, from ttlMs or expiresAt; undefined without an expiry or a key', async () => {
        const { store } = await fresh()
        await store.set('ms', 1, { ttlMs: 60_000 })
        const left = (await store.ttl('ms'))!
        expect(left).toBeGreaterThan(50_000)
        expect(left).toBeLessThanOrEqual(60_000)
        const at = Date.now() + 120_000
        await store.set('date', 2, { expiresAt: new Date(at) })
        await store.set('number', 3, { expiresAt: at })
        for (const key of ['date', 'number']) {
          const rest = (await store.ttl(key))!
          // The same absolute time: what is left is that time minus now.
          expect(Math.abs(Date.now() + rest - at), key).toBeLessThan(1000)
        }
        await store.set('plain', 4)
        expect(await store.ttl('plain')).toBeUndefined()
        expect(await store.ttl('missing')).toBeUndefined()
        // Options that leave the expiry out are no expiry.
        await store.set('empty', 5, {})
        await store.set('undefined', 6, { ttlMs: undefined, expiresAt: undefined })
        expect(await store.ttl('empty')).toBeUndefined()
        expect(await store.ttl('undefined')).toBeUndefined()
        // A set without an expiry removes the one the key had.
        await store.set('ms', 'again')
        expect(await store.ttl('ms')).toBeUndefined()
        expect(await store.get('ms')).toBe('again')
      })

      it('a write that has already expired (ttlMs 0, expiresAt in the past) leaves the key absent', async () => {
        const { store } = await fresh()
        await store.set('a', 1)
        await store.set('a', 2, { expiresAt: Date.now() - 1000 })
        await store.set('b', 3, { ttlMs: 0 })
        await store.set('c', 4, { expiresAt: new Date(0) })
        expect(await store.has('a')).toBe(false)
        expect(await store.has('b')).toBe(false)
        expect(await store.size()).toBe(0)
        expect(await store.delete('a')).toBe(false)
      })

      it('an expired key is absent to delete() and comes back at the end of the order when set again', async () => {
        const { store } = await fresh()
        await store.set('x', 1, { ttlMs: 80 })
        const t1 = Date.now()
        await store.set('y', 2)
        await store.set('z', 3)
        await until(t1 + 80)
        expect(await Promise.all([store.delete('x'), store.delete('y')])).toEqual([false, true])
        await store.set('x', 'back')
        expect(await store.keys()).toEqual(['z', 'x'])
      })

      it('setIfAbsent() writes only when the key is absent or expired, and says whether it did', async () => {
        const { store } = await fresh()
        expect(await store.setIfAbsent('k', 1)).toBe(true)
        expect(await store.setIfAbsent('k', 2)).toBe(false)
        expect(await store.get('k')).toBe(1)
        expect(await store.ttl('k')).toBeUndefined()
        await store.set('t', 'old', { ttlMs: 80 })
        const t1 = Date.now()
        await store.set('m', 'middle')
        await until(t1 + 80)
        expect(await store.setIfAbsent('t', 'new', { ttlMs: 60_000 })).toBe(true)
        expect(await store.get('t')).toBe('new')
        expect(await store.ttl('t')).toBeGreaterThan(50_000)
        expect(await store.keys()).toEqual(['k', 'm', 't'])
        // A key holding undefined is present.
        await store.set('u', undefined)
        expect(await store.setIfAbsent('u', 'no')).toBe(false)
        expect(await store.has('u')).toBe(true)
      })

      it('concurrent setIfAbsent() calls on one key: exactly one writes', async () => {
        const { store } = await fresh()
        const results = await Promise.all(
          Array.from({ length: 8 }, (_, i) => store.setIfAbsent('claim', i, { ttlMs: 60_000 })),
        )
        expect(results.filter((wrote) => wrote)).toHaveLength(1)
        expect(await store.get('claim')).toBe(results.indexOf(true))
      })

      it('expire() changes or removes an expiry, keeps the value and its place, and says whether the key existed', async () => {
        const { store } = await fresh()
        await store.set('a', { n: 1 })
        await store.set('b', 2)
        expect(await store.expire('a', 60_000)).toBe(true)
        expect(await store.ttl('a')).toBeGreaterThan(50_000)
        expect(await store.get('a')).toEqual({ n: 1 })
        expect(await store.expire('a', undefined)).toBe(true)
        expect(await store.ttl('a')).toBeUndefined()
        expect(await store.keys()).toEqual(['a', 'b'])
        expect(await store.expire('missing', 1000)).toBe(false)
        expect(await store.has('missing')).toBe(false)
        expect(await store.expire('b', 80)).toBe(true)
        const t1 = Date.now()
        await until(t1 + 80)
        expect(await store.has('b')).toBe(false)
        // Gone for good: expire() does not bring an expired key back.
        expect(await store.expire('b', 60_000)).toBe(false)
        expect(await store.expire('b', undefined)).toBe(false)
        expect(await store.entries()).toEqual([['a', { n: 1 }]])
        // 0: expired at once.
        expect(await store.expire('a', 0)).toBe(true)
        expect(await store.size()).toBe(0)
      })

      it('bad expiry options are InvalidOptionError, on the store and in run(), and nothing is written', async () => {
        const { store } = await fresh()
        await store.set('a', 1)
        const bad: [string, unknown][] = [
          ['a negative ttlMs', { ttlMs: -1 }],
          ['a NaN ttlMs', { ttlMs: Number.NaN }],
          ['an infinite ttlMs', { ttlMs: Number.POSITIVE_INFINITY }],
          ['a string ttlMs', { ttlMs: '100' }],
          ['both ttlMs and expiresAt', { ttlMs: 1000, expiresAt: Date.now() + 1000 }],
          ['an unknown option', { ttl: 1000 }],
          ['a misspelt option', { ttlms: 1000 }],
          ['an invalid Date', { expiresAt: new Date(Number.NaN) }],
          ['a string expiresAt', { expiresAt: 'tomorrow' }],
          ['a NaN expiresAt', { expiresAt: Number.NaN }],
          ['null', null],
          ['a number', 1000],
        ]
        for (const [label, options] of bad) {
          const o = options as { ttlMs: number }
          expect(await codeOf(() => store.set('a', 2, o)), `set, ${label}`).toBe(INVALID_OPTION)
          expect(await codeOf(() => store.set('n', 2, o)), `set, ${label}`).toBe(INVALID_OPTION)
          expect(await codeOf(() => store.setIfAbsent('n', 2, o)), `setIfAbsent, ${label}`).toBe(
            INVALID_OPTION,
          )
        }
        const typo = await failure(() => store.set('a', 2, { ttlms: 5 } as never))
        expect(typo.message).toContain('ttlMs')
        for (const ttl of [-1, Number.NaN, Number.POSITIVE_INFINITY, '5', null]) {
          expect(await codeOf(() => store.expire('a', ttl as number)), String(ttl)).toBe(INVALID_OPTION)
        }
        await store.run(async (tx) => {
          for (const [label, options] of bad) {
            const o = options as { ttlMs: number }
            expect(await codeOf(() => tx.set('n', 2, o)), `tx.set, ${label}`).toBe(INVALID_OPTION)
            expect(await codeOf(() => tx.setIfAbsent('n', 2, o)), `tx.setIfAbsent, ${label}`).toBe(
              INVALID_OPTION,
            )
          }
          expect(await codeOf(() => tx.expire('a', -5))).toBe(INVALID_OPTION)
        })
        expect(await store.entries()).toEqual([['a', 1]])
        expect(await store.ttl('a')).toBeUndefined()
      })

      it('in run(), reads hide what expired, and tx.set, tx.ttl, tx.setIfAbsent and tx.expire work as on the store', async () => {
        const { store } = await fresh()
        await store.set('gone', 1, { ttlMs: 80 })
        const t1 = Date.now()
        await store.set('kept', 2)
        await until(t1 + 80)
        await store.run(async (tx) => {
          expect(await tx.get('gone')).toBeUndefined()
          expect(await tx.has('gone')).toBe(false)
          expect(await tx.ttl('gone')).toBeUndefined()
          expect(await tx.keys()).toEqual(['kept'])
          expect(await tx.size()).toBe(1)
          expect(await tx.entries()).toEqual([['kept', 2]])
          expect(await tx.setIfAbsent('gone', 'back', { ttlMs: 60_000 })).toBe(true)
          expect(await tx.setIfAbsent('kept', 'no')).toBe(false)
          expect(await tx.ttl('gone')).toBeGreaterThan(50_000)
          expect(await tx.expire('kept', 60_000)).toBe(true)
          expect(await tx.ttl('kept')).toBeGreaterThan(50_000)
          expect(await tx.expire('never', 1000)).toBe(false)
          // The transaction's own write expires within it, too.
          await tx.set('brief', 'b', { expiresAt: Date.now() + 60 })
          const t2 = Date.now()
          await until(t2 + 60)
          expect(await tx.get('brief')).toBeUndefined()
          expect(await tx.has('brief')).toBe(false)
          expect(await tx.keys()).toEqual(['kept', 'gone'])
          expect(await tx.size()).toBe(2)
          expect(await tx.setIfAbsent('brief', 'again')).toBe(true)
        })
        expect(await store.entries()).toEqual([
          ['kept', 2],
          ['gone', 'back'],
          ['brief', 'again'],
        ])
        expect(await store.ttl('kept')).toBeGreaterThan(50_000)
        expect(await store.ttl('brief')).toBeUndefined()
      })

      it('a run() that reads an expiring entry commits what it wrote', async () => {
        const { store } = await fresh()
        await store.set('session', { user: 'ada' }, { ttlMs: 60_000 })
        await store.run(async (tx) => {
          const session = await tx.get('session')
          await tx.set('last-user', session)
          await tx.expire('session', 120_000)
        })
        expect(await store.get('last-user')).toEqual({ user: 'ada' })
        expect(await store.ttl('session')).toBeGreaterThan(110_000)
      })

      it.skipIf(!caps.storedCount)('a commit drops expired entries from storage', async () => {
        const { store, target } = await fresh()
        await store.set('short', 1, { ttlMs: 80 })
        const t1 = Date.now()
        await store.set('kept', 2)
        expect(await target.storedCount!()).toBe(2)
        await until(t1 + 80)
        await store.set('new', 3)
        expect(await target.storedCount!()).toBe(2)
        expect(await store.keys()).toEqual(['kept', 'new'])
      })

      describe.skipIf(!caps.sharedInstances)('several instances', () => {
        it('two instances agree on when an entry expires', async () => {
          const { store: a, open } = await fresh()
          const b = await open()
          const far = Date.now() + 60_000
          await a.set('far', 1, { expiresAt: far })
          for (const store of [a, b]) expect(Math.abs(Date.now() + (await store.ttl('far'))! - far)).toBeLessThan(1000)
          const at = Date.now() + 150
          await a.set('k', 1, { expiresAt: at })
          let seenPresent = 0
          for (;;) {
            const start = Date.now()
            const seen = [await a.has('k'), await b.has('k'), (await b.keys()).includes('k')]
            const end = Date.now()
            // Reads entirely before the expiry see the entry; reads entirely after it do not.
            if (end < at) {
              expect(seen).toEqual([true, true, true])
              seenPresent++
            } else if (start >= at) {
              expect(seen).toEqual([false, false, false])
              break
            }
            await sleep(10)
          }
          expect(await b.size()).toBe(1)
          expect(seenPresent).toBeGreaterThan(0)
        })

        it('an instance that never read the expired entry drops it at its commit', async () => {
          const { store: a, open, target } = await fresh()
          const b = await open()
          await a.set('short', 1, { ttlMs: 80 })
          const t1 = Date.now()
          await a.set('kept', 2)
          await until(t1 + 80)
          expect(await b.delete('short')).toBe(false)
          await b.set('new', 3)
          expect(await a.entries()).toEqual([
            ['kept', 2],
            ['new', 3],
          ])
          if (caps.storedCount) expect(await target.storedCount!()).toBe(2)
        })

        it('concurrent setIfAbsent() calls from two instances: exactly one writes', async () => {
          const { store: a, open } = await fresh()
          const b = await open()
          const results = await Promise.all(
            Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? a : b).setIfAbsent('claim', i)),
          )
          expect(results.filter((wrote) => wrote)).toHaveLength(1)
          expect(await b.get('claim')).toBe(results.indexOf(true))
        })
      })

      it.skipIf(!caps.persistent)('an expiry survives closing and opening again', async () => {
        const { store, reopen } = await fresh()
        const far = Date.now() + 60_000
        await store.set('far', 1, { expiresAt: far })
        await store.set('short', 2, { ttlMs: 80 })
        const t1 = Date.now()
        const again = await reopen()
        expect(Math.abs(Date.now() + (await again.ttl('far'))! - far)).toBeLessThan(1000)
        await until(t1 + 80)
        expect(await again.keys()).toEqual(['far'])
      })

      it.skipIf(!caps.multiProcess)('another process sees an entry until the moment it expires, and not after', async () => {
        const { store, target } = await fresh()
        const watcher = spawnFixture('conformance-child.mjs', [
          JSON.stringify(target.processOptions),
          'watch-expiry',
          'k',
        ])
        const done = exited(watcher)
        done.catch(() => {})
        expect(await nextMessage(watcher)).toBe('ready')
        const at = Date.now() + 1000
        await store.set('k', 1, { expiresAt: at })
        watcher.send(at)
        const report = await nextMessage<{
          problems: string[]
          present: number
          absent: number
          firstEnd: number
        }>(watcher)
        await done
        expect(report.problems).toEqual([])
        // A child slowed down past the expiry before its first read cannot have seen the entry;
        // the problems above still hold every read to the clock.
        if (report.firstEnd < at) expect(report.present).toBeGreaterThan(0)
        expect(report.absent).toBeGreaterThan(0)
      })
    })

    describe('a closed store', () => {
      it('refuses every method with StoreClosedError; close() is idempotent', async () => {
        const { store } = await fresh()
        await store.set('a', 1)
        expect(store.closed).toBe(false)
        await Promise.all([store.close(), store.close()])
        await store.close()
        expect(store.closed).toBe(true)
        let called = false
        const calls: [string, () => unknown][] = [
          ['get', () => store.get('a')],
          ['has', () => store.has('a')],
          ['keys', () => store.keys()],
          ['size', () => store.size()],
          ['entries', () => store.entries()],
          ['iterateKeys', () => collect(store.iterateKeys())],
          ['iterateEntries', () => collect(store.iterateEntries())],
          ['set', () => store.set('b', 1)],
          ['delete', () => store.delete('a')],
          ['clear', () => store.clear()],
          ['ttl', () => store.ttl('a')],
          ['setIfAbsent', () => store.setIfAbsent('b', 1)],
          ['expire', () => store.expire('a', 1000)],
          [
            'run',
            () =>
              store.run(async () => {
                called = true
              }),
          ],
        ]
        for (const [method, call] of calls) expect(await codeOf(call), method).toBe(CLOSED)
        expect(called).toBe(false)
      })

      it('close() waits for writes and transactions in flight, which complete', async () => {
        const { store } = await fresh()
        const write = store.set('late', 1)
        const tx = store.run(async (t) => {
          await sleep(10)
          await t.set('tx', 2)
          return 'done'
        })
        await store.close()
        await expect(write).resolves.toBeUndefined()
        await expect(tx).resolves.toBe('done')
      })

      it('a transaction object kept past close() is closed too', async () => {
        const { store } = await fresh()
        let leaked: Transaction<unknown> | undefined
        await store.run(async (tx) => {
          leaked = tx
        })
        await store.close()
        expect(await codeOf(() => leaked!.get('a'))).toBe(CLOSED)
      })

      it('await using closes the store when the block ends', async () => {
        const target = await factory.create()
        let leaked: AnyStore | undefined
        {
          await using store = await target.open()
          leaked = store
          await store.set('k', 1)
        }
        expect(leaked.closed).toBe(true)
        expect(await codeOf(() => leaked!.get('k'))).toBe(CLOSED)
      })
    })

    describe.skipIf(!caps.sharedInstances)('several instances on one store', () => {
      it("a write by one instance is seen by the other's next read", async () => {
        const { store: a, open } = await fresh()
        const b = await open()
        await a.set('x', 1)
        expect(await b.get('x')).toBe(1)
        expect(await b.has('x')).toBe(true)
        await b.set('y', 2)
        expect(await a.keys()).toEqual(['x', 'y'])
        expect(await b.delete('x')).toBe(true)
        expect(await a.has('x')).toBe(false)
        expect(await a.delete('x')).toBe(false)
        await a.run(async (tx) => tx.set('z', ((await tx.get('y')) as number) + 1))
        expect(await b.entries()).toEqual([
          ['y', 2],
          ['z', 3],
        ])
        await b.clear()
        expect(await a.size()).toBe(0)
      })

      it('both instances see the same Map order', async () => {
        const { store: a, open } = await fresh()
        const b = await open()
        for (const key of ['a', 'b', 'c']) await a.set(key, key)
        await b.set('a', 'again')
        await b.delete('b')
        await a.set('b', 'back')
        expect(await a.keys()).toEqual(['a', 'c', 'b'])
        expect(await b.keys()).toEqual(['a', 'c', 'b'])
      })

      it('run() in one instance starts from what the other committed', async () => {
        const { store: a, open } = await fresh()
        const b = await open()
        await a.set('n', 5)
        expect(await b.run(async (tx) => tx.get('n'))).toBe(5)
        await b.run(async (tx) => tx.set('n', ((await tx.get('n')) as number) * 2))
        expect(await a.get('n')).toBe(10)
      })

      it('reads in one run() are consistent: transfers by another instance never show a torn total', async () => {
        const { store: reader, open } = await fresh()
        const mover = await open()
        await reader.set('x', 50)
        await reader.set('y', 50)
        let stop = false
        let moves = 0
        const moving = (async () => {
          while (!stop) {
            await mover.run(async (tx) => {
              await tx.set('x', ((await tx.get('x')) as number) - 1)
              await tx.set('y', ((await tx.get('y')) as number) + 1)
            })
            moves++
            // A writer that never pauses starves an optimistic reader (every attempt conflicts):
            // liveness is not what this test is about, consistency is.
            await new Promise((resolve) => setTimeout(resolve, 1))
          }
        })()
        const totals: number[] = []
        try {
          for (let i = 0; i < 100; i++) {
            totals.push(
              await reader.run(async (tx) => {
                const x = (await tx.get('x')) as number
                // Room for a transfer to land between the two reads, where one can.
                await new Promise((resolve) => setImmediate(resolve))
                return x + ((await tx.get('y')) as number)
              }),
            )
          }
        } finally {
          stop = true
          await moving
        }
        expect(moves).toBeGreaterThan(0)
        expect(totals.filter((total) => total !== 100)).toEqual([])
      })

      it('concurrent run() increments from two instances end exact', async () => {
        const { store: a, open } = await fresh()
        const b = await open()
        const increments = async (store: AnyStore) => {
          for (let i = 0; i < 25; i++) {
            await store.run(async (tx) =>
              tx.set('n', (((await tx.get('n')) as number | undefined) ?? 0) + 1),
            )
          }
        }
        await Promise.all([increments(a), increments(b)])
        expect(await a.get('n')).toBe(50)
        expect(await b.get('n')).toBe(50)
      })

      it('concurrent set() calls from two instances all land', async () => {
        const { store: a, open } = await fresh()
        const b = await open()
        await Promise.all([
          ...Array.from({ length: 50 }, (_, i) => a.set(`a${i}`, i)),
          ...Array.from({ length: 50 }, (_, i) => b.set(`b${i}`, i)),
        ])
        expect(await a.size()).toBe(100)
        const keys = await b.keys()
        // Each instance's own writes keep their call order.
        expect(keys.filter((k) => String(k).startsWith('a'))).toEqual(
          Array.from({ length: 50 }, (_, i) => `a${i}`),
        )
        expect(keys.filter((k) => String(k).startsWith('b'))).toEqual(
          Array.from({ length: 50 }, (_, i) => `b${i}`),
        )
      })

      it('closing one instance leaves the other working', async () => {
        const { store: a, open } = await fresh()
        const b = await open()
        await a.set('k', 1)
        await a.close()
        expect(await b.get('k')).toBe(1)
        await b.set('k', 2)
        expect(await b.get('k')).toBe(2)
        expect(await codeOf(() => a.get('k'))).toBe(CLOSED)
      })

      it.skipIf(!caps.exclusive)(
        'a write through another instance on the same store inside run() is ReentrantCallError',
        async () => {
          const { store: a, open } = await fresh()
          const b = await open()
          expect(await codeOf(() => a.run(async () => b.set('x', 1)))).toBe(REENTRANT)
          expect(await codeOf(() => a.run(async () => b.run(async () => 1)))).toBe(REENTRANT)
          expect(await b.has('x')).toBe(false)
        },
      )
    })

    describe.skipIf(!caps.persistent)('persistence', () => {
      it('entries, their values, key types and order survive closing and opening again', async () => {
        const { store, reopen } = await fresh()
        const values = storableValues()
        for (const [label, value] of values) await store.set(label, value)
        await store.set(1, 'number')
        await store.set('1', 'string')
        await store.delete(values[0]![0])
        await store.set(values[0]![0], 'moved to the end')
        const expected = await store.entries()
        const again = await reopen()
        expect(await again.entries()).toStrictEqual(expected)
        expect(await again.get(1)).toBe('number')
        expect(Object.is(await again.get('-0'), -0)).toBe(true)
        expect(Buffer.isBuffer(await again.get('a Buffer'))).toBe(true)
      })

      it('a committed run() survives a reopen; one that threw left nothing', async () => {
        const { store, reopen } = await fresh()
        await store.run(async (tx) => {
          await tx.set('a', 1)
          await tx.set('b', 2)
        })
        await expect(
          store.run(async (tx) => {
            await tx.set('c', 3)
            await tx.delete('a')
            throw new Error('abort')
          }),
        ).rejects.toThrow('abort')
        const again = await reopen()
        expect(await again.entries()).toEqual([
          ['a', 1],
          ['b', 2],
        ])
      })

      it('deletes and clears survive a reopen', async () => {
        const { store, reopen } = await fresh()
        await store.set('a', 1)
        await store.set('b', 2)
        await store.delete('a')
        const once = await reopen()
        expect(await once.keys()).toEqual(['b'])
        await once.clear()
        const twice = await reopen()
        expect(await twice.size()).toBe(0)
      })

      it('a write in flight when close() was called is there after a reopen', async () => {
        const { store, reopen } = await fresh()
        const write = store.set('late', 1)
        await store.close()
        await write
        const again = await reopen()
        expect(await again.get('late')).toBe(1)
      })
    })

    describe.skipIf(!caps.readOnly)('a read-only instance', () => {
      it('reads what the store holds and sees later commits of a writer', async () => {
        const { store, openReadOnly } = await fresh()
        await store.set('a', 1)
        const reader = await openReadOnly()
        expect(reader.readOnly).toBe(true)
        expect(store.readOnly).toBe(false)
        expect(await reader.entries()).toEqual([['a', 1]])
        await store.set('b', 2)
        await store.delete('a')
        expect(await reader.keys()).toEqual(['b'])
        expect(await reader.run(async (tx) => tx.get('b'))).toBe(2)
      })

      it('refuses every write with ReadOnlyError, and nothing changes', async () => {
        const { store, openReadOnly } = await fresh()
        await store.set('a', 1)
        const reader = await openReadOnly()
        const writes: [string, () => unknown][] = [
          ['set', () => reader.set('b', 1)],
          ['delete', () => reader.delete('a')],
          ['clear', () => reader.clear()],
          ['run set', () => reader.run(async (tx) => tx.set('b', 1))],
          ['run delete', () => reader.run(async (tx) => tx.delete('a'))],
          ['run clear', () => reader.run(async (tx) => tx.clear())],
          ['setIfAbsent', () => reader.setIfAbsent('b', 1)],
          ['expire', () => reader.expire('a', 1000)],
          ['run setIfAbsent', () => reader.run(async (tx) => tx.setIfAbsent('b', 1))],
          ['run expire', () => reader.run(async (tx) => tx.expire('a', 1000))],
        ]
        for (const [what, call] of writes) expect(await codeOf(call), what).toBe(READ_ONLY)
        expect(await store.entries()).toEqual([['a', 1]])
        expect(await reader.entries()).toEqual([['a', 1]])
      })
    })

    describe.skipIf(!caps.wrongKey)('a wrong key', () => {
      it('open() fails with WrongKeyError and the store is left as it was', async () => {
        const { store, target, reopen } = await fresh()
        await store.set('a', 1)
        await store.close()
        const error = await failure(() => target.openWithWrongKey!())
        expect(error.code).toBe('ERR_ANYSTORE_WRONG_KEY')
        const again = await reopen()
        expect(await again.entries()).toEqual([['a', 1]])
      })
    })

    describe.skipIf(!caps.multiProcess)('several processes on one store', () => {
      const child = 'conformance-child.mjs'
      const optionsOf = (target: StoreUnderTest) => JSON.stringify(target.processOptions)

      it('4 processes × 50 run() increments end at exactly 200', async () => {
        const { store, target } = await fresh()
        const options = optionsOf(target)
        await Promise.all([1, 2, 3, 4].map(() => runFixture(child, [options, 'increment', '50'])))
        expect(await store.get('n')).toBe(200)
      })

      it('4 processes × 25 set() calls keep all 100 keys, each process in its own order', async () => {
        const { store, target } = await fresh()
        const options = optionsOf(target)
        const ids = ['a', 'b', 'c', 'd']
        await Promise.all(ids.map((id) => runFixture(child, [options, 'set-keys', id, '25'])))
        expect(await store.size()).toBe(100)
        const keys = await store.keys()
        for (const id of ids) {
          expect(keys.filter((k) => String(k).startsWith(`${id}-`))).toEqual(
            Array.from({ length: 25 }, (_, i) => `${id}-${i}`),
          )
        }
      })

      it("a child reads the parent's write, and the parent's next read sees the child's", async () => {
        const { store, target } = await fresh()
        await store.set('from-parent', { n: 1, when: new Date(0) })
        const copier = spawnFixture(child, [optionsOf(target), 'copy', 'from-parent', 'from-child'])
        expect(await nextMessage(copier)).toBe('copied')
        expect(await store.get('from-child')).toEqual({ n: 1, when: new Date(0) })
        await exited(copier)
      })
    })

    describe.skipIf(!caps.events)('change events', () => {
      it('a set is reported as added, a second set as changed and a delete as deleted, values decoded', async () => {
        const { store } = await fresh()
        const heard = recorder(store)
        await store.set('a', { n: 1, when: new Date(0) })
        expect(await heard.next()).toEqual(change({ added: [{ key: 'a', value: { n: 1, when: new Date(0) } }] }))
        await store.set('a', new Map([['m', 2n]]))
        expect(await heard.next()).toEqual(
          change({
            changed: [{ key: 'a', oldValue: { n: 1, when: new Date(0) }, value: new Map([['m', 2n]]) }],
          }),
        )
        await store.set(1, undefined)
        expect(await heard.next()).toEqual(change({ added: [{ key: 1, value: undefined }] }))
        expect(await store.delete('a')).toBe(true)
        expect(await heard.next()).toEqual(
          change({ deleted: [{ key: 'a', oldValue: new Map([['m', 2n]]) }] }),
        )
        expect(await store.delete(1)).toBe(true)
        expect(await heard.next()).toEqual(change({ deleted: [{ key: 1, oldValue: undefined }] }))
        expect(heard.errors).toEqual([])
      })

      it('a commit that changes nothing is not reported: the same value again, a missing key deleted, an empty store cleared, a run() that writes nothing new', async () => {
        const { store } = await fresh()
        await store.set('a', { n: 1, list: [1, 2] })
        const heard = recorder(store)
        await store.set('a', { n: 1, list: [1, 2] })
        expect(await store.delete('missing')).toBe(false)
        await store.run(async (tx) => {
          await tx.set('a', { n: 1, list: [1, 2] })
          await tx.set('b', 1)
          await tx.delete('b')
          await tx.delete('missing')
        })
        await store.run(async (tx) => tx.get('a'))
        await store.delete('a')
        expect(await heard.next()).toEqual(change({ deleted: [{ key: 'a', oldValue: { n: 1, list: [1, 2] } }] }))
        await store.clear()
        await store.clear()
        // The next change heard is this one: nothing was reported for the ones before.
        await store.set('sentinel', 1)
        expect(await heard.next()).toEqual(change({ added: [{ key: 'sentinel', value: 1 }] }))
        expect(heard.pending).toEqual([])
      })

      it('-0 and 0, 1 and 1n, a Uint8Array and a Buffer are different values: changing one to the other is reported', async () => {
        const { store } = await fresh()
        await store.set('n', 0)
        await store.set('b', Uint8Array.of(1))
        const heard = recorder(store)
        await store.set('n', -0)
        const reported = await heard.next()
        expect(Object.is(reported.changed[0]?.oldValue, 0)).toBe(true)
        expect(Object.is(reported.changed[0]?.value, -0)).toBe(true)
        await store.set('b', Buffer.of(1))
        expect(Buffer.isBuffer((await heard.next()).changed[0]?.value)).toBe(true)
      })

      it('clear() is one change deleting every key, with the values they held', async () => {
        const { store } = await fresh()
        await store.set('a', 1)
        await store.set(2, 'two')
        const heard = recorder(store)
        await store.clear()
        expect(await heard.next()).toEqual(
          change({
            deleted: [
              { key: 'a', oldValue: 1 },
              { key: 2, oldValue: 'two' },
            ],
          }),
        )
      })

      it('run() is one change however many writes it made; a key it set and then deleted is not in it', async () => {
        const { store } = await fresh()
        await store.set('kept', 1)
        await store.set('changed', 1)
        await store.set('deleted', 1)
        await store.set('same', 'x')
        const heard = recorder(store)
        await store.run(async (tx) => {
          await tx.set('new', 1)
          await tx.set('changed', 2)
          await tx.set('changed', 3)
          expect(await tx.delete('deleted')).toBe(true)
          await tx.set('brief', 1)
          await tx.delete('brief')
          await tx.set('same', 'x')
        })
        expect(await heard.next()).toEqual(
          change({
            added: [{ key: 'new', value: 1 }],
            changed: [{ key: 'changed', oldValue: 1, value: 3 }],
            deleted: [{ key: 'deleted', oldValue: 1 }],
          }),
        )
        // A clear in a run(): the keys it removed and did not set again are deleted.
        await store.run(async (tx) => {
          await tx.clear()
          await tx.set('kept', 1)
          await tx.set('new', 2)
        })
        const cleared = await heard.next()
        expect(cleared.added).toEqual([])
        expect(cleared.changed).toEqual([{ key: 'new', oldValue: 1, value: 2 }])
        expect(cleared.deleted.map((d) => d.key).sort()).toEqual(['changed', 'same'])
        await store.set('sentinel', 1)
        expect(await heard.next()).toEqual(change({ added: [{ key: 'sentinel', value: 1 }] }))
      })

      it('writes committed together (group commit) are one change', async () => {
        const { store } = await fresh()
        await store.set('c', 0)
        const heard = recorder(store)
        await Promise.all([store.set('a', 1), store.set('b', 2), store.delete('c'), store.set('a', 3)])
        const grouped = await heard.next()
        // The order of keys within a list is not specified.
        expect([...grouped.added].sort((x, y) => String(x.key).localeCompare(String(y.key)))).toEqual([
          { key: 'a', value: 3 },
          { key: 'b', value: 2 },
        ])
        expect(grouped.changed).toEqual([])
        expect(grouped.deleted).toEqual([{ key: 'c', oldValue: 0 }])
        await store.set('sentinel', 1)
        expect((await heard.next()).added).toEqual([{ key: 'sentinel', value: 1 }])
      })

      it('replaying the changes heard over the state at watch() gives the state at the end', async () => {
        const { store } = await fresh()
        for (const [op, key, value] of mapOperations(20, 5)) if (op === 'set') await store.set(key, value)
        const model = new Map<string | number, unknown>(await store.entries())
        const heard = recorder(store)
        for (const [i, [op, key, value]] of mapOperations(120, 13).entries()) {
          if (i % 10 === 0) {
            await store.run(async (tx) => {
              await tx.set(key, value)
              await tx.delete((key as number) + 1)
            })
          } else if (op === 'set') await store.set(key, value % 3)
          else if (op === 'delete') await store.delete(key)
          else await store.clear()
        }
        await store.set('sentinel', 'end')
        for (;;) {
          const reported = await heard.next()
          replay(model, reported)
          if (reported.added.some((a) => a.key === 'sentinel')) break
        }
        expect([...model].sort()).toEqual((await store.entries()).sort())
        expect(heard.errors).toEqual([])
      })

      it('prefix: only string keys that start with it; a commit that touches none of them is not reported', async () => {
        const { store } = await fresh()
        const heard = recorder(store, { prefix: 'user:' })
        await store.set('other', 1)
        await store.set(1, 1)
        await store.run(async (tx) => {
          await tx.set('user:1', 'Ada')
          await tx.set('other', 2)
        })
        expect(await heard.next()).toEqual(change({ added: [{ key: 'user:1', value: 'Ada' }] }))
        await store.clear()
        expect(await heard.next()).toEqual(change({ deleted: [{ key: 'user:1', oldValue: 'Ada' }] }))
        await store.set('user:2', 'Bob')
        expect(await heard.next()).toEqual(change({ added: [{ key: 'user:2', value: 'Bob' }] }))
        expect(heard.pending).toEqual([])
      })

      it('each watcher gets its own copies of the values', async () => {
        const { store } = await fresh()
        const first = recorder(store)
        const second = recorder(store)
        await store.set('v', { list: [1] })
        const a = await first.next()
        const b = await second.next()
        ;(a.added[0]!.value as { list: number[] }).list.push(2)
        expect(b.added[0]!.value).toEqual({ list: [1] })
        expect(await store.get('v')).toEqual({ list: [1] })
      })

      it('a listener that throws, or rejects, does not stop the store or the other listeners: onError hears it', async () => {
        const { store } = await fresh()
        const errors: unknown[] = []
        const boom = new Error('listener bug')
        let calls = 0
        const throwing = store.watch(
          () => {
            calls++
            throw boom
          },
          { onError: (error) => errors.push(error) },
        )
        onTestFinished(() => throwing.close())
        const rejecting = store.watch(async () => Promise.reject(new Error('async listener bug')), {
          onError: (error) => errors.push(error),
        })
        onTestFinished(() => rejecting.close())
        const heard = recorder(store)
        await store.set('a', 1)
        await store.set('b', 2)
        expect((await heard.next()).added).toEqual([{ key: 'a', value: 1 }])
        expect((await heard.next()).added).toEqual([{ key: 'b', value: 2 }])
        expect(await store.get('b')).toBe(2)
        await sleep(20)
        expect(calls).toBe(2)
        expect(errors.filter((e) => e === boom)).toHaveLength(2)
        expect(errors.filter((e) => (e as Error).message === 'async listener bug')).toHaveLength(2)
      })

      it('without onError, what a listener throws becomes a process warning with code ANYSTORE_WATCH_ERROR', async () => {
        const { store } = await fresh()
        const warnings: (Error & { code?: string })[] = []
        const onWarning = (warning: Error & { code?: string }) => warnings.push(warning)
        process.on('warning', onWarning)
        onTestFinished(() => {
          process.off('warning', onWarning)
        })
        const watcher = store.watch(() => {
          throw new Error('listener bug')
        })
        onTestFinished(() => watcher.close())
        await store.set('a', 1)
        const deadline = Date.now() + 2000
        while (warnings.length === 0 && Date.now() < deadline) await sleep(5)
        expect(warnings).toHaveLength(1)
        expect(warnings[0]!.name).toBe('AnyStoreWarning')
        expect(warnings[0]!.code).toBe('ANYSTORE_WATCH_ERROR')
        expect(warnings[0]!.message).toContain('listener bug')
      })

      it('a listener may read and write the store', async () => {
        const { store } = await fresh()
        const watcher = store.watch(async (reported) => {
          for (const { key, value } of reported.added) {
            if (key === 'in') await store.set('out', `${String(value)} (seen ${String(await store.get('in'))})`)
          }
        })
        onTestFinished(() => watcher.close())
        const heard = recorder(store)
        await store.set('in', 'x')
        expect((await heard.next()).added).toEqual([{ key: 'in', value: 'x' }])
        expect((await heard.next()).added).toEqual([{ key: 'out', value: 'x (seen x)' }])
      })

      it('changes(): for await yields each change; leaving the loop ends its watch', async () => {
        const { store } = await fresh()
        const before = await settledResources()
        const seen: StoreChange[] = []
        const loop = (async () => {
          for await (const reported of store.changes({ prefix: 'k' })) {
            seen.push(reported)
            if (reported.deleted.length > 0) break
          }
        })()
        await store.set('k1', 1)
        await store.set('other', 1)
        await store.set('k1', 2)
        await store.delete('k1')
        await loop
        expect(seen).toEqual([
          change({ added: [{ key: 'k1', value: 1 }] }),
          change({ changed: [{ key: 'k1', oldValue: 1, value: 2 }] }),
          change({ deleted: [{ key: 'k1', oldValue: 2 }] }),
        ])
        expect(newResources(before, await settledResources())).toEqual([])
      })

      it('changes() watches from the call: a commit before the first next() is not missed; return() ends it', async () => {
        const { store } = await fresh()
        const before = await settledResources()
        const iterator = store.changes()
        await store.set('early', 1)
        await store.set('early', 2)
        expect(await iterator.next()).toEqual({ done: false, value: change({ added: [{ key: 'early', value: 1 }] }) })
        expect(await iterator.next()).toEqual({
          done: false,
          value: change({ changed: [{ key: 'early', oldValue: 1, value: 2 }] }),
        })
        expect(await iterator.return!()).toEqual({ done: true, value: undefined })
        expect(await iterator.next()).toEqual({ done: true, value: undefined })
        expect(newResources(before, await settledResources())).toEqual([])
      })

      it('close() of the last watcher leaves nothing open; await using closes it too', async () => {
        const { store } = await fresh()
        await store.set('a', 0)
        const before = await settledResources()
        const first = store.watch(() => {})
        const second = store.watch(() => {})
        first.close()
        first.close()
        expect(first.closed).toBe(true)
        expect(second.closed).toBe(false)
        second.close()
        {
          await using third = store.watch(() => {})
          await store.set('a', 1)
          expect(third.closed).toBe(false)
        }
        expect(newResources(before, await settledResources())).toEqual([])
      })

      it('closing the store ends its watchers and its changes() loops', async () => {
        const { store } = await fresh()
        await store.set('a', 0)
        const before = await settledResources()
        const watcher = store.watch(() => {})
        const iterator = store.changes()
        const pending = iterator.next()
        await store.set('a', 1)
        expect((await pending).value).toEqual(change({ changed: [{ key: 'a', oldValue: 0, value: 1 }] }))
        const waiting = iterator.next()
        await store.close()
        expect(watcher.closed).toBe(true)
        expect(await waiting).toEqual({ done: true, value: undefined })
        expect(newResources(before, await settledResources())).toEqual([])
      })

      it('watch() and changes() on a closed store fail with StoreClosedError', async () => {
        const { store } = await fresh()
        await store.close()
        expect(await codeOf(() => store.watch(() => {}))).toBe(CLOSED)
        expect(await codeOf(() => store.changes().next())).toBe(CLOSED)
      })

      it('a listener or options of the wrong type are InvalidOptionError', async () => {
        const { store } = await fresh()
        expect(await codeOf(() => store.watch('no' as never))).toBe(INVALID_OPTION)
        expect(await codeOf(() => store.watch(() => {}, { prefix: 1 } as never))).toBe(INVALID_OPTION)
        expect(await codeOf(() => store.watch(() => {}, { onError: 1 } as never))).toBe(INVALID_OPTION)
        expect(await codeOf(() => store.changes({ prefix: 1 } as never).next())).toBe(INVALID_OPTION)
      })

      it.skipIf(!caps.sharedInstances)('commits through another instance are reported, each once', async () => {
        const { store: a, open } = await fresh()
        const b = await open()
        await b.set('old', 1)
        const heard = recorder(a)
        const own = recorder(b)
        await b.set('x', { n: 1 })
        expect(await heard.next()).toEqual(change({ added: [{ key: 'x', value: { n: 1 } }] }))
        await b.run(async (tx) => {
          await tx.set('x', { n: 2 })
          await tx.delete('old')
        })
        expect(await heard.next()).toEqual(
          change({ changed: [{ key: 'x', oldValue: { n: 1 }, value: { n: 2 } }], deleted: [{ key: 'old', oldValue: 1 }] }),
        )
        await b.clear()
        expect(await heard.next()).toEqual(change({ deleted: [{ key: 'x', oldValue: { n: 2 } }] }))
        // Mixed with its own commits, and read by it in between: still each commit once.
        await a.set('mine', 1)
        await b.set('theirs', 1)
        expect(await a.get('theirs')).toBe(1)
        await a.set('sentinel', 1)
        const rest: StoreChange[] = []
        while (!rest.some((c) => c.added.some((x) => x.key === 'sentinel'))) rest.push(await heard.next())
        expect(rest.flatMap((c) => c.added.map((x) => x.key))).toEqual(['mine', 'theirs', 'sentinel'])
        await sleep(20)
        expect(heard.pending).toEqual([])
        // The writer hears its own commits as well.
        expect((await own.next()).added).toEqual([{ key: 'x', value: { n: 1 } }])
        expect(heard.errors).toEqual([])
      })

      it.skipIf(!caps.readOnly)('a read-only instance hears a writer’s commits', async () => {
        const { store, openReadOnly } = await fresh()
        const reader = await openReadOnly()
        const heard = recorder(reader)
        await store.set('a', 1)
        expect(await heard.next()).toEqual(change({ added: [{ key: 'a', value: 1 }] }))
      })

      it.skipIf(!caps.multiProcess)('commits by another process are reported', async () => {
        const { store, target } = await fresh()
        const model = new Map<string | number, unknown>()
        const heard = recorder(store)
        await runFixture('conformance-child.mjs', [JSON.stringify(target.processOptions), 'set-keys', 'p', '10'])
        while (model.size < 10) replay(model, await heard.next())
        expect([...model]).toEqual(Array.from({ length: 10 }, (_, i) => [`p-${i}`, i]))
      })
    })
  })
}
