/**
 * A linearizability checker for histories of a key/value store, in the style of Wing & Gong's
 * search with Lowe's memoisation (the algorithm behind Knossos and Porcupine).
 *
 * The model is one register per key (absent = `undefined`) plus transactions that read and
 * write several keys atomically. Keys that never share an operation are independent, so the
 * history is split into components (keys joined by transactions) and each is checked alone.
 *
 * The search walks the history's call/return events in time order, linearizing a called
 * operation whenever the model allows it and backtracking when a return is reached before its
 * operation was linearized. Each (set of linearized operations, model state) pair is tried at
 * most once, which keeps the search polynomial for the histories real workloads produce.
 */

export type Value = string | number | null

export type Operation =
  | { kind: 'get'; key: string; result: Value | undefined }
  | { kind: 'has'; key: string; result: boolean }
  | { kind: 'set'; key: string; value: Value }
  | { kind: 'delete'; key: string; result: boolean }
  /** Atomic: every read saw the state before the transaction; then every write applied (`undefined` deletes). */
  | {
      kind: 'txn'
      reads: Record<string, Value | undefined>
      writes: Record<string, Value | undefined>
    }

/** One completed operation: invoked at `call`, answered at `ret` (same clock for every process). */
export interface HistoryEntry {
  process: string
  call: bigint
  ret: bigint
  op: Operation
}

type State = Map<string, Value>

export function keysOf(op: Operation): string[] {
  if (op.kind !== 'txn') return [op.key]
  return [...new Set([...Object.keys(op.reads), ...Object.keys(op.writes)])]
}

/** Applies `op` to `state` if its recorded result is possible there; returns the new state or null. */
export function step(state: State, op: Operation): State | null {
  switch (op.kind) {
    case 'get':
      return state.get(op.key) === op.result ? state : null
    case 'has':
      return state.has(op.key) === op.result ? state : null
    case 'set': {
      const next = new Map(state)
      next.set(op.key, op.value)
      return next
    }
    case 'delete': {
      if (state.has(op.key) !== op.result) return null
      if (!op.result) return state
      const next = new Map(state)
      next.delete(op.key)
      return next
    }
    case 'txn': {
      for (const [key, value] of Object.entries(op.reads)) {
        if (state.get(key) !== value) return null
      }
      // Unchanged state is returned as the same object: the search relies on it to spot reads.
      if (Object.keys(op.writes).length === 0) return state
      const next = new Map(state)
      for (const [key, value] of Object.entries(op.writes)) {
        if (value === undefined) next.delete(key)
        else next.set(key, value)
      }
      return next
    }
  }
}

function stateKey(state: State): string {
  return JSON.stringify([...state].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}

export function describeOperation(op: Operation): string {
  const show = (v: Value | undefined) => (v === undefined ? 'absent' : JSON.stringify(v))
  switch (op.kind) {
    case 'get':
      return `get(${op.key}) -> ${show(op.result)}`
    case 'has':
      return `has(${op.key}) -> ${op.result}`
    case 'set':
      return `set(${op.key}, ${show(op.value)})`
    case 'delete':
      return `delete(${op.key}) -> ${op.result}`
    case 'txn': {
      const reads = Object.entries(op.reads).map(([k, v]) => `${k}=${show(v)}`)
      const writes = Object.entries(op.writes).map(([k, v]) =>
        v === undefined ? `delete ${k}` : `${k}:=${show(v)}`,
      )
      return `run(read ${reads.join(' ') || 'nothing'}; write ${writes.join(' ') || 'nothing'})`
    }
  }
}

interface EventNode {
  index: number
  isCall: boolean
  time: bigint
  match: EventNode | undefined
  prev: EventNode | undefined
  next: EventNode | undefined
}

export interface ComponentResult {
  keys: string[]
  operations: number
  linearizable: boolean
  /** Search steps taken (for reporting how hard the history was). */
  steps: number
  /** When not linearizable: the operations that could not be placed, with context. */
  explanation?: string
}

export interface CheckResult {
  linearizable: boolean
  operations: number
  components: ComponentResult[]
  /** The offending sub-history of every failing component, ready to print. */
  report: string
}

export interface CheckOptions {
  /** Give up (and report failure) after this many search steps per component. */
  maxSteps?: number
  /** State before the first operation. */
  initial?: State
}

function formatEntry(entry: HistoryEntry, origin: bigint): string {
  const ms = (t: bigint) => (Number(t - origin) / 1e6).toFixed(3)
  return `  ${entry.process.padEnd(6)} [${ms(entry.call)} .. ${ms(entry.ret)} ms]  ${describeOperation(entry.op)}`
}

/** Checks one component's history. */
function checkComponent(
  keys: string[],
  history: HistoryEntry[],
  initial: State,
  maxSteps: number,
): ComponentResult {
  const events: EventNode[] = []
  history.forEach((entry, index) => {
    if (entry.ret < entry.call) throw new Error(`operation ${index} returns before it is called`)
    const call: EventNode = {
      index,
      isCall: true,
      time: entry.call,
      match: undefined,
      prev: undefined,
      next: undefined,
    }
    const ret: EventNode = {
      index,
      isCall: false,
      time: entry.ret,
      match: undefined,
      prev: undefined,
      next: undefined,
    }
    call.match = ret
    events.push(call, ret)
  })
  // At equal times, calls first: the operations are then treated as concurrent (the lenient reading).
  events.sort((a, b) =>
    a.time < b.time ? -1 : a.time > b.time ? 1 : a.isCall === b.isCall ? 0 : a.isCall ? -1 : 1,
  )
  const head: EventNode = {
    index: -1,
    isCall: false,
    time: 0n,
    match: undefined,
    prev: undefined,
    next: undefined,
  }
  let last = head
  for (const event of events) {
    last.next = event
    event.prev = last
    last = event
  }

  const lift = (call: EventNode) => {
    for (const node of [call, call.match!]) {
      node.prev!.next = node.next
      if (node.next) node.next.prev = node.prev
    }
  }
  const unlift = (call: EventNode) => {
    for (const node of [call.match!, call]) {
      node.prev!.next = node
      if (node.next) node.next.prev = node
    }
  }

  const linearized = new Uint8Array(history.length)
  const seen = new Set<string>()
  const stack: { call: EventNode; state: State }[] = []
  let state = initial
  let entry = head.next
  let steps = 0
  let deepest: { order: number[]; state: State; stuckAt: number } | undefined

  while (head.next !== undefined) {
    if (++steps > maxSteps) {
      return {
        keys,
        operations: history.length,
        linearizable: false,
        steps,
        explanation: `gave up after ${maxSteps} search steps (raise maxSteps)`,
      }
    }
    if (entry === undefined) throw new Error('event list ended before every operation returned')
    if (entry.isCall) {
      const next = step(state, history[entry.index]!.op)
      if (next !== null) {
        linearized[entry.index] = 1
        const key = `${Buffer.from(linearized).toString('base64')}|${stateKey(next)}`
        if (!seen.has(key)) {
          seen.add(key)
          stack.push({ call: entry, state })
          state = next
          lift(entry)
          entry = head.next
          continue
        }
        linearized[entry.index] = 0
      }
      entry = entry.next
    } else {
      // A return whose operation is not linearized yet: this path is dead.
      if (deepest === undefined || stack.length > deepest.order.length) {
        deepest = { order: stack.map((s) => s.call.index), state, stuckAt: entry.index }
      }
      // An operation that left the state as it was (a read) never needs to be tried later
      // instead: any order placing it later can place it here, where its result already fits.
      // So when backtracking pops one, its alternatives are dead too: keep popping.
      let top = stack.pop()
      while (top !== undefined && top.state === state) {
        linearized[top.call.index] = 0
        unlift(top.call)
        top = stack.pop()
      }
      if (top === undefined) {
        return {
          keys,
          operations: history.length,
          linearizable: false,
          steps,
          explanation: explain(history, deepest!, linearizedSet(deepest!.order)),
        }
      }
      linearized[top.call.index] = 0
      state = top.state
      unlift(top.call)
      entry = top.call.next
    }
  }
  return { keys, operations: history.length, linearizable: true, steps }
}

function linearizedSet(order: number[]): Set<number> {
  return new Set(order)
}

/**
 * The offending sub-history: the longest prefix the search could linearize (its last few
 * operations and the state it left), then the operation whose return came before it could be
 * placed, and every operation still pending at that point (none of which fits the state).
 */
function explain(
  history: HistoryEntry[],
  deepest: { order: number[]; state: State; stuckAt: number },
  done: Set<number>,
): string {
  let origin = history[0]!.call
  for (const entry of history) if (entry.call < origin) origin = entry.call
  const stuck = history[deepest.stuckAt]!
  const pending = history
    .map((entry, index) => ({ entry, index }))
    .filter(({ entry, index }) => !done.has(index) && entry.call <= stuck.ret)
  const lines = [
    `  longest linearizable prefix: ${deepest.order.length} of ${history.length} operations, ending with:`,
    ...deepest.order.slice(-5).map((i) => formatEntry(history[i]!, origin)),
    `  state after it: ${stateKey(deepest.state)}`,
    '  no order of these pending operations fits that state before the first one returns:',
    ...pending.map(({ entry }) => formatEntry(entry, origin)),
  ]
  return lines.join('\n')
}

/** Splits a history into groups of operations over disjoint key sets. */
export function components(history: HistoryEntry[]): { keys: string[]; history: HistoryEntry[] }[] {
  const parent = new Map<string, string>()
  const find = (key: string): string => {
    let root = key
    while (parent.get(root) !== root) root = parent.get(root)!
    parent.set(key, root)
    return root
  }
  for (const entry of history) {
    const keys = keysOf(entry.op)
    for (const key of keys) if (!parent.has(key)) parent.set(key, key)
    for (const key of keys.slice(1)) parent.set(find(key), find(keys[0]!))
  }
  const groups = new Map<string, { keys: string[]; history: HistoryEntry[] }>()
  for (const key of parent.keys()) {
    const root = find(key)
    if (!groups.has(root)) groups.set(root, { keys: [], history: [] })
    groups.get(root)!.keys.push(key)
  }
  for (const entry of history) {
    const first = keysOf(entry.op)[0]
    if (first === undefined) continue // a transaction touching nothing constrains nothing
    groups.get(find(first))!.history.push(entry)
  }
  return [...groups.values()].map((g) => ({ keys: g.keys.sort(), history: g.history }))
}

export function checkHistory(history: HistoryEntry[], options: CheckOptions = {}): CheckResult {
  const maxSteps = options.maxSteps ?? 20_000_000
  const initial = options.initial ?? new Map()
  const results = components(history).map(({ keys, history: part }) => {
    const start = new Map([...initial].filter(([k]) => keys.includes(k)))
    return checkComponent(keys, part, start, maxSteps)
  })
  const failures = results.filter((r) => !r.linearizable)
  const report = failures
    .map(
      (r) =>
        `not linearizable on keys [${r.keys.join(', ')}] (${r.operations} operations):\n${r.explanation}`,
    )
    .join('\n\n')
  return {
    linearizable: failures.length === 0,
    operations: history.length,
    components: results,
    report,
  }
}
