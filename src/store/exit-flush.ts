import { writeSync } from 'node:fs'

/** What a write-behind store does when the process ends with changes still uncommitted. */
export interface ExitFlush {
  /**
   * The event loop drained ('beforeExit'): start committing, asynchronously, unless a commit
   * failed since the last call reported it (retrying here would keep the process alive, each
   * drain starting another attempt, for as long as the failure lasts).
   */
  commitBeforeExit(): void
  /**
   * The process is exiting ('exit'): nothing asynchronous will run again. Commit synchronously
   * where the backend can; say what could not be done, and whether acknowledged changes are
   * lost for good.
   */
  commitAtExit(): { message: string; lost: boolean } | undefined
}

const waiting = new Set<ExitFlush>()
let hooked = false

/**
 * Registers `store` until doneAtExit(): it holds changes that the end of the process must
 * commit. Two process listeners in all, however many stores: one per store would trip Node's
 * listener-leak warning at the eleventh.
 */
export function flushAtExit(store: ExitFlush): void {
  waiting.add(store)
  if (hooked) return
  hooked = true
  process.on('beforeExit', () => {
    for (const store of [...waiting]) store.commitBeforeExit()
  })
  process.on('exit', (code) => {
    let lost = false
    for (const store of [...waiting]) {
      const outcome = store.commitAtExit()
      if (outcome === undefined) continue
      lost ||= outcome.lost
      // Synchronous on purpose: a stream write queued now would never be flushed.
      try {
        writeSync(2, `anystore: ${outcome.message}\n`)
      } catch {
        // stderr closed: the exit code below still tells.
      }
    }
    // Acknowledged writes are gone: a supervisor or a shell must not take this for success.
    if (lost && code === 0) process.exitCode = 1
  })
}

export function doneAtExit(store: ExitFlush): void {
  waiting.delete(store)
}
