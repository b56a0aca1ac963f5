import { TransactionConflictError } from '../store/errors.js'
import type { Backend, BackendTransaction } from './backend.js'

/** What one try of a transaction came to: its value once its commit applied, else the conflict. */
export type Attempt<T> = { committed: true; value: T } | { committed: false; conflict: string }

/**
 * Runs `attempt` in a transaction of `backend` until its commit applies: once on an exclusive
 * backend (its commits never conflict), up to `limit` times on an optimistic one, with a
 * growing, jittered pause between tries; then TransactionConflictError.
 */
export async function transactUntilCommitted<T>(
  backend: Backend,
  attempt: (tx: BackendTransaction) => Promise<Attempt<T>>,
  limit: number,
): Promise<T> {
  for (let attempts = 1; ; attempts++) {
    const outcome = await backend.transaction(attempt)
    if (outcome.committed) return outcome.value
    if (attempts >= limit) {
      throw new TransactionConflictError(backend.location, attempts, outcome.conflict)
    }
    await new Promise((resolve) => setTimeout(resolve, backoffMs(attempts)))
  }
}

/** Before attempt n + 1 of a transaction refused by a conflict: jittered, growing, capped. */
function backoffMs(attempt: number): number {
  return Math.random() * Math.min(100, 2 ** attempt)
}

/** Every item of a listing, synchronous or not, as an array. */
export async function collect<T>(items: Iterable<T> | AsyncIterable<T>): Promise<T[]> {
  if (Array.isArray(items)) return items
  if (Symbol.iterator in items) return Array.from(items)
  const out: T[] = []
  for await (const item of items) out.push(item)
  return out
}
