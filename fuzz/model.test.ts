import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import fc from 'fast-check'
import { afterAll, expect, test } from 'vitest'
import { AnyStore, type AnyStoreOptions, type StoreKey } from '../src/index.js'
import { keyArb, unsupportedValueArb, valueArb } from './arbitraries.js'
import { budgetFor, report } from './budget.js'

/**
 * Model-based test: random sequences of every public operation run against a real store on
 * a real file and against a plain Map; after every step the store must hold exactly what the
 * Map holds, in the same order. The model also tracks what the file holds, which differs from
 * memory while persistence is switched off.
 */
interface Model {
  memory: Map<StoreKey, unknown>
  file: Map<StoreKey, unknown>
  persisted: boolean
}

interface Real {
  store: AnyStore
  file: string
  options: AnyStoreOptions
}

type Command = fc.AsyncCommand<Model, Real>

const root = mkdtempSync(join(tmpdir(), 'anystore-model-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

const counters = { runs: 0, commands: 0 }

function same(a: unknown, b: unknown): boolean {
  return isDeepStrictEqual(a, b)
}

function describeKey(key: StoreKey): string {
  return typeof key === 'number' ? String(key) : JSON.stringify(key)
}

function describeValue(value: unknown): string {
  const text = (() => {
    try {
      return (
        JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v)) ?? String(value)
      )
    } catch {
      return String(value)
    }
  })()
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}

/** The whole state, in order, compared after every command. */
async function checkState(model: Model, real: Real): Promise<void> {
  const entries = await real.store.entries()
  const expected = [...model.memory]
  if (
    entries.length !== expected.length ||
    !entries.every(([k, v], i) => Object.is(k, expected[i]![0]) && same(v, expected[i]![1]))
  ) {
    expect(entries).toStrictEqual(expected)
    throw new Error('entries differ from the model')
  }
  expect(await real.store.size()).toBe(model.memory.size)
  expect(await real.store.keys()).toStrictEqual([...model.memory.keys()])
}

function afterWrite(model: Model): void {
  if (model.persisted) model.file = new Map(model.memory)
}

class SetCommand implements Command {
  constructor(
    readonly key: StoreKey,
    readonly value: unknown,
  ) {}
  check = () => true
  async run(model: Model, real: Real) {
    await real.store.set(this.key, this.value)
    model.memory.set(this.key, this.value)
    afterWrite(model)
    expect(same(await real.store.get(this.key), this.value)).toBe(true)
  }
  toString = () => `set(${describeKey(this.key)}, ${describeValue(this.value)})`
}

class SetUnsupportedCommand implements Command {
  constructor(
    readonly key: StoreKey,
    readonly value: unknown,
  ) {}
  check = () => true
  async run(_model: Model, real: Real) {
    await expect(real.store.set(this.key, this.value)).rejects.toMatchObject({
      code: 'ERR_ANYSTORE_UNSUPPORTED_VALUE',
    })
  }
  toString = () => `set(${describeKey(this.key)}, <unsupported ${typeof this.value}>)`
}

class GetCommand implements Command {
  constructor(readonly key: StoreKey) {}
  check = () => true
  async run(model: Model, real: Real) {
    const value = await real.store.get(this.key)
    expect(same(value, model.memory.get(this.key))).toBe(true)
    expect(await real.store.has(this.key)).toBe(model.memory.has(this.key))
  }
  toString = () => `get(${describeKey(this.key)}); has(${describeKey(this.key)})`
}

class DeleteCommand implements Command {
  constructor(readonly key: StoreKey) {}
  check = () => true
  async run(model: Model, real: Real) {
    const existed = await real.store.delete(this.key)
    expect(existed).toBe(model.memory.delete(this.key))
    afterWrite(model)
  }
  toString = () => `delete(${describeKey(this.key)})`
}

class ClearCommand implements Command {
  check = () => true
  async run(model: Model, real: Real) {
    await real.store.clear()
    model.memory.clear()
    afterWrite(model)
  }
  toString = () => 'clear()'
}

/** Writes issued without awaiting in between: they share one group commit. */
class BatchCommand implements Command {
  constructor(readonly writes: { key: StoreKey; value: unknown; remove: boolean }[]) {}
  check = () => true
  async run(model: Model, real: Real) {
    const promises = this.writes.map((w) =>
      w.remove ? real.store.delete(w.key) : real.store.set(w.key, w.value),
    )
    const results = await Promise.all(promises)
    this.writes.forEach((w, i) => {
      if (w.remove) expect(results[i]).toBe(model.memory.delete(w.key))
      else model.memory.set(w.key, w.value)
    })
    afterWrite(model)
  }
  toString = () =>
    `batch[${this.writes.map((w) => (w.remove ? `delete(${describeKey(w.key)})` : `set(${describeKey(w.key)}, ${describeValue(w.value)})`)).join(', ')}]`
}

type TxStep =
  | { op: 'set'; key: StoreKey; value: unknown }
  | { op: 'delete'; key: StoreKey }
  | { op: 'get'; key: StoreKey }
  | { op: 'clear' }
  | { op: 'snapshot' }

const txStepArb: fc.Arbitrary<TxStep> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ op: fc.constant('set' as const), key: keyArb, value: valueArb }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), key: keyArb }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('get' as const), key: keyArb }) },
  { weight: 1, arbitrary: fc.constant({ op: 'clear' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'snapshot' as const }) },
)

class TxError extends Error {}

/** run(): steps checked against a copy of the model; the copy becomes the model only if it commits. */
class RunCommand implements Command {
  constructor(
    readonly steps: TxStep[],
    readonly fails: boolean,
  ) {}
  check = () => true
  async run(model: Model, real: Real) {
    const draft = new Map(model.memory)
    const outcome = real.store.run(async (tx) => {
      for (const step of this.steps) {
        switch (step.op) {
          case 'set':
            await tx.set(step.key, step.value)
            draft.set(step.key, step.value)
            break
          case 'delete':
            expect(await tx.delete(step.key)).toBe(draft.delete(step.key))
            break
          case 'get':
            expect(same(await tx.get(step.key), draft.get(step.key))).toBe(true)
            expect(await tx.has(step.key)).toBe(draft.has(step.key))
            break
          case 'clear':
            await tx.clear()
            draft.clear()
            break
          case 'snapshot': {
            const entries = await tx.entries()
            expect(entries.map(([k]) => k)).toStrictEqual([...draft.keys()])
            expect(entries.every(([k, v]) => same(v, draft.get(k)))).toBe(true)
            expect(await tx.size()).toBe(draft.size)
            expect(await tx.keys()).toStrictEqual([...draft.keys()])
            break
          }
        }
      }
      if (this.fails) throw new TxError('rolled back on purpose')
      return draft.size
    })
    if (this.fails) {
      await expect(outcome).rejects.toBeInstanceOf(TxError)
      return
    }
    expect(await outcome).toBe(draft.size)
    model.memory = draft
    afterWrite(model)
  }
  toString = () =>
    `run(${this.fails ? 'throws' : 'commits'}: ${this.steps.map((s) => ('key' in s ? `${s.op}(${describeKey(s.key)})` : `${s.op}()`)).join(', ')})`
}

class EnablePersistenceCommand implements Command {
  check = (model: Readonly<Model>) => !model.persisted
  async run(model: Model, real: Real) {
    await real.store.enablePersistence(real.file)
    // One commit merges memory into the file; on a key in both, memory wins.
    const merged = new Map(model.file)
    for (const [k, v] of model.memory) merged.set(k, v)
    model.memory = merged
    model.persisted = true
    model.file = new Map(merged)
    expect(real.store.file).toBe(real.file)
  }
  toString = () => 'enablePersistence()'
}

class DisablePersistenceCommand implements Command {
  check = (model: Readonly<Model>) => model.persisted
  async run(model: Model, real: Real) {
    real.store.disablePersistence()
    model.persisted = false
    expect(real.store.file).toBeUndefined()
  }
  toString = () => 'disablePersistence()'
}

/** close(), then open the file again: what was persisted comes back, memory-only state does not. */
class ReopenCommand implements Command {
  check = () => true
  async run(model: Model, real: Real) {
    await real.store.close()
    await expect(real.store.get('a')).rejects.toMatchObject({ code: 'ERR_ANYSTORE_CLOSED' })
    await real.store.close() // idempotent
    real.store = await AnyStore.open({ ...real.options, file: real.file })
    model.memory = new Map(model.file)
    model.persisted = true
  }
  toString = () => 'close(); open()'
}

/** A second instance on the same file writes; this instance must see it (when persisted). */
class OtherInstanceWritesCommand implements Command {
  constructor(
    readonly key: StoreKey,
    readonly value: unknown,
  ) {}
  check = () => true
  async run(model: Model, real: Real) {
    const other = await AnyStore.open({ ...real.options, file: real.file })
    try {
      expect([...(await other.keys())]).toStrictEqual([...model.file.keys()])
      await other.set(this.key, this.value)
    } finally {
      await other.close()
    }
    model.file.set(this.key, this.value)
    if (model.persisted) model.memory = new Map(model.file)
  }
  toString = () => `otherInstance.set(${describeKey(this.key)}, ${describeValue(this.value)})`
}

type Write = { key: StoreKey; value: unknown; remove: boolean }

/** Applies plain writes to a copy of `state`; returns the new state and each write's result. */
function applyWrites(state: Map<StoreKey, unknown>, writes: Write[]) {
  const next = new Map(state)
  const results = writes.map((w) => (w.remove ? next.delete(w.key) : (next.set(w.key, w.value), undefined)))
  return { state: next, results }
}

/** Applies a transaction's steps to a copy of `state`; returns the new state and what it read. */
function applyTx(state: Map<StoreKey, unknown>, steps: Write[]) {
  const next = new Map(state)
  const reads = steps.map((s) => {
    const seen = next.get(s.key)
    if (s.remove) next.delete(s.key)
    else next.set(s.key, s.value)
    return seen
  })
  return { state: next, reads }
}

/**
 * A run() that yields between its steps, racing plain writes issued at the same time. The
 * transaction must be atomic: the outcome is one of the two serial orders, never a mix.
 */
class RaceCommand implements Command {
  constructor(
    readonly steps: Write[],
    readonly writes: Write[],
  ) {}
  check = () => true
  async run(model: Model, real: Real) {
    const reads: unknown[] = []
    const tx = real.store.run(async (t) => {
      for (const step of this.steps) {
        reads.push(await t.get(step.key))
        await new Promise((resolve) => setImmediate(resolve))
        if (step.remove) await t.delete(step.key)
        else await t.set(step.key, step.value)
      }
    })
    const writes = Promise.all(
      this.writes.map((w) => (w.remove ? real.store.delete(w.key) : real.store.set(w.key, w.value))),
    )
    const [, results] = await Promise.all([tx, writes])
    const txFirst = (() => {
      const a = applyTx(model.memory, this.steps)
      const b = applyWrites(a.state, this.writes)
      return { state: b.state, reads: a.reads, results: b.results }
    })()
    const writesFirst = (() => {
      const b = applyWrites(model.memory, this.writes)
      const a = applyTx(b.state, this.steps)
      return { state: a.state, reads: a.reads, results: b.results }
    })()
    const entries = await real.store.entries()
    const matches = (o: typeof txFirst) =>
      same(reads, o.reads) && same(results, o.results) && same(entries, [...o.state])
    if (matches(txFirst)) model.memory = txFirst.state
    else if (matches(writesFirst)) model.memory = writesFirst.state
    else {
      expect({ reads, results, entries }).toStrictEqual({ ...txFirst, entries: [...txFirst.state] })
      throw new Error('the transaction and the plain writes interleaved')
    }
    afterWrite(model)
  }
  toString = () =>
    `race[run(${this.steps.map((s) => `${s.remove ? 'delete' : 'set'}(${describeKey(s.key)})`).join(', ')}) | ${this.writes.map((w) => `${w.remove ? 'delete' : 'set'}(${describeKey(w.key)})`).join(', ')}]`
}

/** Writes issued and close() called without waiting: close waits, and every write lands. */
class CloseWhileWritingCommand implements Command {
  constructor(readonly writes: Write[]) {}
  check = () => true
  async run(model: Model, real: Real) {
    const pending = this.writes.map((w) =>
      w.remove ? real.store.delete(w.key) : real.store.set(w.key, w.value),
    )
    const closed = real.store.close()
    const results = await Promise.all(pending)
    await closed
    const applied = applyWrites(model.memory, this.writes)
    expect(results).toStrictEqual(applied.results)
    model.memory = applied.state
    afterWrite(model)
    real.store = await AnyStore.open({ ...real.options, file: real.file })
    model.memory = new Map(model.file)
    model.persisted = true
  }
  toString = () =>
    `writes then close() at once [${this.writes.map((w) => `${w.remove ? 'delete' : 'set'}(${describeKey(w.key)})`).join(', ')}]; open()`
}

/**
 * Many entries at once (over the 1024 at which a commit's payload is kept and reused), so
 * that later commands run on a large map: the paths that copy a loaded payload around the
 * changed records, rather than re-encoding every entry, get their share of the checks.
 */
class BulkCommand implements Command {
  constructor(
    readonly count: number,
    readonly tag: number,
    readonly viaRun: boolean,
    readonly deleteEvery: number,
  ) {}
  check = () => true
  async run(model: Model, real: Real) {
    const keys = Array.from({ length: this.count }, (_, i) => `bulk-${i}`)
    const valueOf = (i: number) => (i % 3 === 0 ? { i, tag: this.tag } : `${this.tag}:${i}`)
    if (this.viaRun) {
      await real.store.run(async (tx) => {
        for (const [i, key] of keys.entries()) await tx.set(key, valueOf(i))
      })
    } else {
      await Promise.all(keys.map((key, i) => real.store.set(key, valueOf(i))))
    }
    for (const [i, key] of keys.entries()) model.memory.set(key, valueOf(i))
    afterWrite(model)
    if (this.deleteEvery > 0) {
      const doomed = keys.filter((_, i) => i % this.deleteEvery === 0)
      const results = await Promise.all(doomed.map((key) => real.store.delete(key)))
      expect(results.every((r) => r)).toBe(true)
      for (const key of doomed) model.memory.delete(key)
      afterWrite(model)
    }
  }
  toString = () =>
    `bulk(${this.count} entries via ${this.viaRun ? 'run()' : 'set()'}, tag ${this.tag}${this.deleteEvery ? `, then delete every ${this.deleteEvery}th` : ''})`
}

const commandArbs = [
  fc
    .tuple(fc.integer({ min: 1000, max: 1600 }), fc.nat(1000), fc.boolean(), fc.constantFrom(0, 0, 2, 7))
    .map(([count, tag, viaRun, every]) => new BulkCommand(count, tag, viaRun, every)),
  fc.tuple(keyArb, valueArb).map(([k, v]) => new SetCommand(k, v)),
  fc.tuple(keyArb, valueArb).map(([k, v]) => new SetCommand(k, v)),
  fc.tuple(keyArb, unsupportedValueArb).map(([k, v]) => new SetUnsupportedCommand(k, v)),
  keyArb.map((k) => new GetCommand(k)),
  keyArb.map((k) => new DeleteCommand(k)),
  fc.constant(new ClearCommand()),
  fc
    .array(fc.record({ key: keyArb, value: valueArb, remove: fc.boolean() }), {
      minLength: 2,
      maxLength: 6,
    })
    .map((writes) => new BatchCommand(writes)),
  fc
    .tuple(fc.array(txStepArb, { maxLength: 8 }), fc.boolean())
    .map(([steps, fails]) => new RunCommand(steps, fails)),
  fc.constant(new EnablePersistenceCommand()),
  fc.constant(new DisablePersistenceCommand()),
  fc.constant(new ReopenCommand()),
  fc.tuple(keyArb, valueArb).map(([k, v]) => new OtherInstanceWritesCommand(k, v)),
  fc
    .tuple(
      fc.array(fc.record({ key: keyArb, value: valueArb, remove: fc.boolean() }), { minLength: 1, maxLength: 4 }),
      fc.array(fc.record({ key: keyArb, value: valueArb, remove: fc.boolean() }), { minLength: 1, maxLength: 4 }),
    )
    .map(([steps, writes]) => new RaceCommand(steps, writes)),
  fc
    .array(fc.record({ key: keyArb, value: valueArb, remove: fc.boolean() }), { minLength: 1, maxLength: 4 })
    .map((writes) => new CloseWhileWritingCommand(writes)),
]

const optionsArb = fc.record({
  compress: fc.boolean(),
  sync: fc.constantFrom('always' as const, 'never' as const),
  lock: fc.constantFrom('flock' as const, 'proper-lockfile' as const),
})

test('every public operation matches an in-memory model', async () => {
  const budget = budgetFor('model', { runs: 80, seconds: 20 }, { runs: 1_000_000, seconds: 180 })
  let instance = 0
  await fc.assert(
    fc.asyncProperty(
      optionsArb,
      fc.commands(commandArbs, { maxCommands: 40, size: 'large' }),
      async (options, commands) => {
        counters.runs++
        const file = join(root, `case-${instance++}`, 'store ü.db')
        const real: Real = { store: await AnyStore.open({ ...options, file }), file, options }
        const model: Model = { memory: new Map(), file: new Map(), persisted: true }
        const checked = [...commands].map(
          (command): Command => ({
            check: (m) => command.check(m) as boolean,
            run: async (m, r) => {
              counters.commands++
              await command.run(m, r)
              await checkState(m, r)
            },
            toString: () => command.toString(),
          }),
        )
        try {
          await fc.asyncModelRun(() => ({ model, real }), checked)
        } finally {
          await real.store.close()
        }
        // No temp file outlives a run.
        expect(readdirSync(join(file, '..')).filter((n) => n.endsWith('.tmp'))).toStrictEqual([])
      },
    ),
    {
      seed: budget.seed,
      numRuns: budget.runs,
      interruptAfterTimeLimit: budget.seconds * 1000,
      markInterruptAsFailure: false,
    },
  )
  report('model', { seed: budget.seed, cases: counters.runs, commands: counters.commands })
  expect(counters.runs).toBeGreaterThan(0)
})
