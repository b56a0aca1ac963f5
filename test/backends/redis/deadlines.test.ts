import { afterEach, describe, expect, it, vi } from 'vitest'
import { Deadlines, monotonicNow, TIMED_OUT } from '../../../src/backends/redis/deadlines.js'

// The one timer that keeps the deadlines of a connection's calls (no Redis needed: the calls
// here are promises settled by hand). Lower bounds are exact (a call never ends before its
// deadline); upper bounds are loose, as the machine may be busy.

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const LATE = 5000

afterEach(() => {
  vi.restoreAllMocks()
})

/** A promise with its settling functions, as a command in flight. */
function pending<T>() {
  let resolve!: (value: T) => void
  let reject!: (error: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

/** What `promise` settled with, and when (ms after `start`, on the deadlines' clock). */
async function outcome(promise: Promise<unknown>, start: number) {
  try {
    return { value: await promise, ms: monotonicNow() - start }
  } catch (error) {
    return { error, ms: monotonicNow() - start }
  }
}

describe('redis connection: deadlines', () => {
  it('passes on what a call settles with before its deadline, and rejects one that does not settle by then', async () => {
    const deadlines = new Deadlines()
    const start = monotonicNow()
    const answered = pending<string>()
    const failed = pending<string>()
    const silent = pending<string>()
    const results = [
      outcome(deadlines.within(answered.promise, start + 100), start),
      outcome(deadlines.within(failed.promise, start + 100), start),
      outcome(deadlines.within(silent.promise, start + 100), start),
    ]
    answered.resolve('answer')
    failed.reject(new Error('refused'))
    const [a, b, c] = await Promise.all(results)
    expect(a).toMatchObject({ value: 'answer' })
    expect((b as { error: Error }).error.message).toBe('refused')
    expect(c).toMatchObject({ error: TIMED_OUT })
    expect(c!.ms).toBeGreaterThanOrEqual(100)
    expect(c!.ms).toBeLessThan(100 + LATE)
    // Settling after the deadline changes nothing, and nothing is left queued.
    silent.resolve('late')
    expect(deadlines.queued).toBe(0)
  })

  it('keeps each deadline when they come out of order, as a call sent again keeps its first one', async () => {
    const deadlines = new Deadlines()
    const start = monotonicNow()
    const order: string[] = []
    const track = (name: string, promise: Promise<unknown>) =>
      outcome(promise, start).then((result) => {
        order.push(name)
        return result
      })
    const late = track('late', deadlines.within(pending().promise, start + 300))
    const early = track('early', deadlines.within(pending().promise, start + 60))
    const middle = track('middle', deadlines.within(pending().promise, start + 150))
    const [l, e, m] = await Promise.all([late, early, middle])
    expect(order).toEqual(['early', 'middle', 'late'])
    for (const result of [l, e, m]) expect(result).toMatchObject({ error: TIMED_OUT })
    expect(e!.ms).toBeGreaterThanOrEqual(60)
    expect(m!.ms).toBeGreaterThanOrEqual(150)
    expect(l!.ms).toBeGreaterThanOrEqual(300)
    expect(l!.ms).toBeLessThan(300 + LATE)
  })

  it('at the deadline calls onExpire, and a rejection that causes arrives instead of TIMED_OUT', async () => {
    const deadlines = new Deadlines()
    const start = monotonicNow()
    const aborted = pending<string>()
    const ignored = pending<string>()
    const calls: string[] = []
    const abortable = outcome(
      deadlines.within(aborted.promise, start + 50, () => {
        calls.push('aborted')
        aborted.reject(new Error('AbortError'))
      }),
      start,
    )
    const unmoved = outcome(deadlines.within(ignored.promise, start + 50, () => calls.push('ignored')), start)
    const [a, u] = await Promise.all([abortable, unmoved])
    expect(calls).toEqual(['aborted', 'ignored'])
    expect((a as { error: Error }).error.message).toBe('AbortError')
    expect(u).toMatchObject({ error: TIMED_OUT })
  })

  it('many calls settled in turn leave nothing queued, and a later call still gets its deadline', async () => {
    const deadlines = new Deadlines()
    for (let i = 0; i < 5000; i++) {
      expect(await deadlines.within(Promise.resolve(i), monotonicNow() + 50)).toBe(i)
    }
    expect(deadlines.queued).toBe(0)
    // Many in flight at once, settled in another order than they came: dropped all the same.
    const inFlight = Array.from({ length: 3000 }, () => pending<number>())
    const calls = inFlight.map((call) => deadlines.within(call.promise, monotonicNow() + 60_000))
    expect(deadlines.queued).toBe(3000)
    for (let i = inFlight.length - 1; i >= 0; i--) inFlight[i]!.resolve(i)
    expect(await Promise.all(calls)).toEqual(inFlight.map((_, i) => i))
    expect(deadlines.queued).toBe(0)
    // The timer set for the first call fires with nothing to do; one set for this call must
    // still reject it.
    await sleep(80)
    const start = monotonicNow()
    const last = await outcome(deadlines.within(pending().promise, start + 40), start)
    expect(last).toMatchObject({ error: TIMED_OUT })
    expect(last.ms).toBeGreaterThanOrEqual(40)
  })

  it('keeps time on a monotonic clock: a step of the wall clock neither delays nor hastens a deadline', async () => {
    const deadlines = new Deadlines()
    const realNow = Date.now.bind(Date)
    const start = monotonicNow()
    const back = outcome(deadlines.within(pending().promise, start + 100), start)
    // The wall clock goes back an hour while the call waits.
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() - 3_600_000)
    const result = await back
    expect(result).toMatchObject({ error: TIMED_OUT })
    expect(result.ms).toBeGreaterThanOrEqual(100)
    expect(result.ms).toBeLessThan(100 + LATE)
    vi.restoreAllMocks()
    // And forward an hour: a call with a second to go still has it.
    const second = monotonicNow()
    const answered = pending<string>()
    const call = outcome(deadlines.within(answered.promise, second + 1000), second)
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() + 3_600_000)
    await sleep(50)
    answered.resolve('in time')
    expect(await call).toMatchObject({ value: 'in time' })
  })

  it('does not keep the process alive once no call waits, and does while one does', async () => {
    // Counted as Node counts what keeps it alive: a timer let go of (unref) is not listed.
    const timers = () => process.getActiveResourcesInfo().filter((what) => what === 'Timeout').length
    const before = timers()
    const deadlines = new Deadlines()
    for (let i = 0; i < 3; i++) await deadlines.within(Promise.resolve(i), monotonicNow() + 60_000)
    expect(timers()).toBe(before)
    const waiting = pending<number>()
    const call = deadlines.within(waiting.promise, monotonicNow() + 60_000)
    expect(timers()).toBe(before + 1)
    waiting.resolve(1)
    expect(await call).toBe(1)
    expect(timers()).toBe(before)
  })
})
