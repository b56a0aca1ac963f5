import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import { budgetFor, report } from './budget.js'
import {
  checkHistory,
  components,
  type HistoryEntry,
  type Operation,
  step,
  type Value,
} from './linearizability.js'

/** [call, ret] in milliseconds (the clock itself counts nanoseconds). */
function op(process: string, call: number, ret: number, operation: Operation): HistoryEntry {
  return { process, call: BigInt(call) * 1_000_000n, ret: BigInt(ret) * 1_000_000n, op: operation }
}

const set = (key: string, value: Value): Operation => ({ kind: 'set', key, value })
const get = (key: string, result: Value | undefined): Operation => ({ kind: 'get', key, result })
const del = (key: string, result: boolean): Operation => ({ kind: 'delete', key, result })
const has = (key: string, result: boolean): Operation => ({ kind: 'has', key, result })
const txn = (
  reads: Record<string, Value | undefined>,
  writes: Record<string, Value | undefined>,
): Operation => ({ kind: 'txn', reads, writes })

function expectRejected(history: HistoryEntry[], mentioned: string[]) {
  const result = checkHistory(history)
  expect(result.linearizable).toBe(false)
  for (const text of mentioned) expect(result.report).toContain(text)
  console.log(result.report)
  return result
}

describe('accepts linearizable histories', () => {
  test('sequential writes and reads', () => {
    const result = checkHistory([
      op('p1', 0, 1, set('a', 'x')),
      op('p2', 2, 3, get('a', 'x')),
      op('p1', 4, 5, del('a', true)),
      op('p2', 6, 7, has('a', false)),
      op('p2', 8, 9, get('a', undefined)),
    ])
    expect(result.linearizable).toBe(true)
  })

  test('a read overlapping a write may see either value', () => {
    const result = checkHistory([
      op('p1', 0, 10, set('a', 'x')),
      op('p2', 1, 2, get('a', undefined)),
      op('p3', 3, 4, get('a', 'x')),
      op('p2', 5, 6, get('a', 'x')),
    ])
    expect(result.linearizable).toBe(true)
  })

  test('concurrent increments through transactions that serialise', () => {
    const result = checkHistory([
      op('p1', 0, 10, txn({ c: undefined }, { c: 1 })),
      op('p2', 1, 11, txn({ c: 1 }, { c: 2 })),
      op('p3', 2, 12, txn({ c: 2 }, { c: 3 })),
      op('p1', 13, 14, get('c', 3)),
    ])
    expect(result.linearizable).toBe(true)
  })

  test('independent keys are checked as separate components', () => {
    const history = [
      op('p1', 0, 1, set('a', 1)),
      op('p2', 0, 1, set('b', 2)),
      op('p1', 2, 3, get('a', 1)),
      op('p2', 2, 3, get('b', 2)),
      op('p3', 4, 5, txn({ c: undefined, d: undefined }, { c: 1 })),
    ]
    expect(components(history).map((c) => c.keys)).toStrictEqual([['a'], ['b'], ['c', 'd']])
    expect(checkHistory(history).linearizable).toBe(true)
  })

  test('histories built from a sequential run with overlapping intervals', () => {
    // Each operation takes effect at a point inside its interval; results come from applying
    // them in that order, so a linearization exists by construction and must be found.
    const budget = budgetFor(
      'linearizability-accept',
      { runs: 200, seconds: 10 },
      { runs: 20_000, seconds: 30 },
    )
    const keys = fc.constantFrom('a', 'b', 'c')
    const opArb = fc.oneof(
      fc.record({
        kind: fc.constant('set' as const),
        key: keys,
        value: fc.integer({ min: 0, max: 3 }),
      }),
      fc.record({ kind: fc.constant('get' as const), key: keys }),
      fc.record({ kind: fc.constant('has' as const), key: keys }),
      fc.record({ kind: fc.constant('delete' as const), key: keys }),
      fc.record({
        kind: fc.constant('txn' as const),
        read: keys,
        write: keys,
        value: fc.integer({ min: 0, max: 3 }),
      }),
    )
    const planned = fc.array(
      fc.record({
        op: opArb,
        point: fc.integer({ min: 0, max: 1000 }),
        before: fc.nat(80),
        after: fc.nat(80),
      }),
      { minLength: 5, maxLength: 40, size: 'max' },
    )
    let checked = 0
    let operations = 0
    fc.assert(
      fc.property(planned, (plan) => {
        const order = [...plan.keys()].sort((x, y) => plan[x]!.point - plan[y]!.point || x - y)
        let state = new Map<string, Value>()
        const history: HistoryEntry[] = []
        order.forEach((index, rank) => {
          const { op: p, before, after } = plan[index]!
          // Distinct points: rank breaks ties so real-time order agrees with the chosen order.
          const point = BigInt(plan[index]!.point * 1000 + rank)
          let operation: Operation
          if (p.kind === 'set') operation = set(p.key, p.value)
          else if (p.kind === 'get') operation = get(p.key, state.get(p.key))
          else if (p.kind === 'has') operation = has(p.key, state.has(p.key))
          else if (p.kind === 'delete') operation = del(p.key, state.has(p.key))
          else operation = txn({ [p.read]: state.get(p.read) }, { [p.write]: p.value })
          state = step(state, operation)!
          history.push({
            process: `p${index % 4}`,
            call: point - BigInt(before * 1000),
            ret: point + BigInt(after * 1000),
            op: operation,
          })
        })
        const result = checkHistory(history)
        if (!result.linearizable) console.log(result.report)
        checked++
        operations += history.length
        return result.linearizable
      }),
      { seed: budget.seed, numRuns: budget.runs, interruptAfterTimeLimit: budget.seconds * 1000 },
    )
    report('linearizability-accept', { seed: budget.seed, histories: checked, operations })
    expect(checked).toBeGreaterThan(0)
  })
})

describe('rejects non-linearizable histories and prints the offending sub-history', () => {
  test('a stale read after a completed write', () => {
    expectRejected(
      [op('p1', 0, 1, set('a', 'new')), op('p2', 2, 3, get('a', undefined))],
      ['get(a) -> absent', 'set(a, "new")'],
    )
  })

  test('a read of a value nobody wrote', () => {
    expectRejected([op('p1', 0, 1, set('a', 1)), op('p2', 0, 5, get('a', 2))], ['get(a) -> 2'])
  })

  test('reads that go back in time', () => {
    expectRejected(
      [
        op('p1', 0, 1, set('a', 1)),
        op('p1', 2, 20, set('a', 2)),
        op('p2', 3, 4, get('a', 2)),
        op('p3', 5, 6, get('a', 1)),
      ],
      ['get(a) -> 1'],
    )
  })

  test('a lost update: two increments that both read the same count', () => {
    expectRejected(
      [
        op('p1', 0, 5, txn({ c: 0 }, { c: 1 })),
        op('p2', 1, 6, txn({ c: 0 }, { c: 1 })),
        op('p0', -10, -5, set('c', 0)),
      ],
      ['run(read c=0; write c:=1)'],
    )
  })

  test('a delete that reports the wrong outcome', () => {
    expectRejected(
      [op('p1', 0, 1, set('a', 1)), op('p2', 2, 3, del('a', false))],
      ['delete(a) -> false'],
    )
  })

  test('a transaction seen half applied', () => {
    const result = expectRejected(
      [
        op('p1', 0, 1, txn({}, { a: 1, b: 1 })),
        op('p2', 2, 3, get('a', 1)),
        op('p2', 4, 5, get('b', undefined)),
      ],
      ['get(b) -> absent'],
    )
    expect(result.components.map((c) => c.keys)).toStrictEqual([['a', 'b']])
  })

  test('only the failing component is reported', () => {
    const result = expectRejected(
      [
        op('p1', 0, 1, set('ok', 1)),
        op('p2', 2, 3, get('ok', 1)),
        op('p1', 0, 1, set('bad', 1)),
        op('p2', 2, 3, get('bad', 7)),
      ],
      ['keys [bad]'],
    )
    expect(result.report).not.toContain('keys [ok]')
    expect(result.components.filter((c) => c.linearizable).map((c) => c.keys)).toStrictEqual([
      ['ok'],
    ])
  })

  test('a write overtaken by an older write after both completed', () => {
    expectRejected(
      [
        op('p1', 0, 1, set('a', 'first')),
        op('p2', 2, 3, set('a', 'second')),
        op('p3', 4, 5, get('a', 'first')),
      ],
      ['get(a) -> "first"'],
    )
  })

  test('many concurrent reads stay cheap to reject (reads are never re-ordered later)', () => {
    // 60 overlapping reads, then an impossible one: without the read rule the search would
    // try every subset of the 60 before giving up.
    const history = [op('w', 0, 1, set('a', 'x'))]
    for (let i = 0; i < 60; i++) history.push(op(`r${i}`, 2, 100, get('a', 'x')))
    history.push(op('w', 2, 100, set('a', 'y')))
    history.push(op('late', 101, 102, get('a', 'x')))
    const result = checkHistory(history, { maxSteps: 100_000 })
    expect(result.linearizable).toBe(false)
    expect(result.report).not.toContain('gave up')
    expect(result.report).toContain('get(a) -> "x"')
  })

  test('a search that runs out of budget is a failure, not a pass', () => {
    const history = Array.from({ length: 12 }, (_, i) => op(`p${i}`, 0, 100, set('a', i)))
    history.push(op('r', 200, 201, get('a', 99)))
    const result = checkHistory(history, { maxSteps: 50 })
    expect(result.linearizable).toBe(false)
    expect(result.report).toContain('gave up')
  })
})
