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

const holds = new AsyncLocalStorage<readonly Hold[]>()

/** Runs `fn` as the callback of a transaction of `owner` holding `scope`. */
export async function runHolding<T>(owner: unknown, scope: unknown, fn: () => Promise<T> | T): Promise<T> {
  const hold: Hold = { owner, scope, active: true }
  try {
    return await holds.run([...(holds.getStore() ?? []), hold], fn)
  } finally {
    hold.active = false
  }
}

function active(): Hold[] {
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
