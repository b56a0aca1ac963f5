import { AsyncLocalStorage } from 'node:async_hooks'
import { ReentrantCallError } from './errors.js'

/**
 * One running transaction, as the async context of its callback sees it. `active` is cleared
 * when the callback settles: async work the callback started lives on in the same context, and
 * must not be taken for part of a transaction that has ended.
 */
interface Hold {
  /** The store whose run() this is. */
  readonly owner: unknown
  /** What the transaction holds exclusively (a file's path), or undefined on an optimistic backend. */
  readonly scope: unknown
  active: boolean
}

/**
 * The holds of the current async context. Where AsyncLocalStorage propagates through promise
 * hooks (Node 20 and 22), an enabled instance makes every promise of the process pay for them,
 * the host application's included; so it is created by the first run() and disabled once no
 * run() callback is under way. Nothing is lost then: every hold is inactive, and the contexts
 * that carry one come back, still inactive, when the next run() enables it again.
 */
let holds: AsyncLocalStorage<readonly Hold[]> | undefined
/** Holds still active, across every store of the process. */
let running = 0
let disableScheduled = false

/**
 * Disables `holds` on the next turn of the event loop if no run() has begun by then. Switching
 * promise hooks off and on again costs 2–3 µs, a fifth to a third of a run() on a memory store:
 * runs that follow one another without the loop turning keep them on in between.
 */
function disableWhenIdle(): void {
  if (disableScheduled) return
  disableScheduled = true
  setImmediate(() => {
    disableScheduled = false
    if (running === 0) holds?.disable()
  }).unref()
}

/** Runs `fn` as the callback of a transaction of `owner` holding `scope`. */
export async function runHolding<T>(owner: unknown, scope: unknown, fn: () => Promise<T> | T): Promise<T> {
  const hold: Hold = { owner, scope, active: true }
  const enclosing = active()
  holds ??= new AsyncLocalStorage()
  running++
  try {
    return await holds.run([...enclosing, hold], fn)
  } finally {
    hold.active = false
    running--
    if (running === 0) disableWhenIdle()
  }
}

function active(): Hold[] {
  // With no run() under way no hold is active, whatever context the caller is in.
  if (running === 0 || holds === undefined) return []
  return (holds.getStore() ?? []).filter((hold) => hold.active)
}

/** Whether the caller runs inside a transaction that holds `scope`. */
export function holdsScope(scope: unknown): boolean {
  return scope !== undefined && active().some((hold) => hold.scope === scope)
}

/** Whether the caller runs inside a run() of `owner`. */
export function insideRunOf(owner: unknown): boolean {
  return active().some((hold) => hold.owner === owner)
}

/** Refuses a call that would wait for the transaction it is made from. */
export function refuseInside(scope: unknown, method: string): void {
  if (holdsScope(scope)) throw new ReentrantCallError(method)
}
