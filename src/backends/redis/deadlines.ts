/**
 * The clock of deadlines, in ms: monotonic, so that a step of the wall clock (NTP, a suspend, an
 * operator) neither cuts a call short nor makes it wait the length of the step.
 */
export const monotonicNow = (): number => performance.now()

/** What a call that ran out of time rejects with: told apart from everything a command can reject with. */
export const TIMED_OUT = Symbol('timed out')

interface Waiter {
  readonly deadline: number
  settled: boolean
  readonly reject: (reason: unknown) => void
  /** Called when the deadline passes; the waiter then rejects on the next turn, not at once. */
  readonly onExpire: (() => void) | undefined
}

/**
 * The deadlines of one connection's calls, kept by one timer. A timer of its own per call
 * (with the promise racing it) cost about a tenth of a bare command's CPU time; here a call
 * costs an entry in a queue, and the timer is set again only when it fires, about once per
 * timeout while calls keep coming. Calls settle mostly in the order they started, so settled
 * ones leave the front of the queue at once and the queue holds about what is in flight.
 */
export class Deadlines {
  #queue: Waiter[] = []
  #head = 0
  #timer: NodeJS.Timeout | undefined
  /** When #timer fires (on the clock of monotonicNow); Infinity when none is set. */
  #firesAt = Number.POSITIVE_INFINITY

  /**
   * `attempt`'s outcome, or a rejection with TIMED_OUT once `deadline` (on the clock of
   * monotonicNow) has passed. With `onExpire`, the deadline calls it first and rejects on the
   * next turn of the event loop, so that a rejection it causes (an abort) arrives first.
   */
  within<T>(attempt: Promise<T>, deadline: number, onExpire?: () => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter = { deadline, settled: false, reject, onExpire }
      this.#add(waiter)
      attempt.then(
        (value) => {
          if (waiter.settled) return
          waiter.settled = true
          this.#trim()
          resolve(value)
        },
        (error: unknown) => {
          if (waiter.settled) return
          waiter.settled = true
          this.#trim()
          reject(error)
        },
      )
    })
  }

  /** How many calls the queue holds: those waiting, and settled ones not yet dropped. */
  get queued(): number {
    return this.#queue.length - this.#head
  }

  #add(waiter: Waiter): void {
    if (this.#head === this.#queue.length) {
      // Empty: the timer (if any) was let go of so as not to keep the process alive.
      this.#queue.length = 0
      this.#head = 0
      this.#timer?.ref()
    }
    this.#queue.push(waiter)
    if (waiter.deadline < this.#firesAt) this.#arm(waiter.deadline)
  }

  /** Drops the settled calls from the front of the queue. */
  #trim(): void {
    const queue = this.#queue
    while (this.#head < queue.length && queue[this.#head]!.settled) this.#head++
    if (this.#head === queue.length) {
      queue.length = 0
      this.#head = 0
      this.#timer?.unref()
    } else if (this.#head > 1024 && this.#head * 2 > queue.length) {
      this.#queue = queue.slice(this.#head)
      this.#head = 0
    }
  }

  #arm(at: number): void {
    clearTimeout(this.#timer)
    this.#firesAt = at
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, at - monotonicNow()))
  }

  /** Rejects every call whose deadline has passed, and sets the timer for the earliest left. */
  #fire(): void {
    this.#timer = undefined
    this.#firesAt = Number.POSITIVE_INFINITY
    const now = monotonicNow()
    const left: Waiter[] = []
    let next = Number.POSITIVE_INFINITY
    for (let i = this.#head; i < this.#queue.length; i++) {
      const waiter = this.#queue[i]!
      if (waiter.settled) continue
      if (waiter.deadline > now) {
        left.push(waiter)
        next = Math.min(next, waiter.deadline)
        continue
      }
      if (waiter.onExpire === undefined) {
        waiter.settled = true
        waiter.reject(TIMED_OUT)
      } else {
        waiter.onExpire()
        setImmediate(() => {
          if (waiter.settled) return
          waiter.settled = true
          waiter.reject(TIMED_OUT)
        })
      }
    }
    this.#queue = left
    this.#head = 0
    if (left.length > 0) this.#arm(next)
  }
}
