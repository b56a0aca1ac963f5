import { describe, expect, it } from 'vitest'
import { Deadlines, TIMED_OUT } from '../../../src/backends/redis/deadlines.js'

// The one timer that keeps the deadlines of a connection's calls (no Redis needed: the calls
// here are promises settled by hand).

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

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

/** What `promise` settled with, and when (ms after `start`). */
async function outcome(promise: Promise<unknown>, start: number) {
  try {
    return { value: await promise, ms: Date.now() - start }
  } catch (error) {
    return { error, ms: Date.now() - start }
  }
}

describe('redis connection: deadlines', () => {
  it('passes on what a call settles with before its deadline, and rejects one that does not settle by then', async () => {
    const deadlines = new Deadlines()
    const start = Date.now()
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
    expect(a!.ms).toBeLessThan(100)
    expect((b as { error: Error }).error.message).toBe('refused')
    expect(c).toMatchObject({ error: TIMED_OUT })
    expect(c!.ms).toBeGreaterThanOrEqual(95)
    // Settling after the deadline changes nothing.
    silent.resolve('late')
  })

  it('keeps each deadline when they come out of order, as a call sent again keeps its first one', async () => {
    const deadlines = new Deadlines()
    const start = Date.now()
    const late = outcome(deadlines.within(pending().promise, start + 300), start)
    const early = outcome(deadlines.within(pending().promise, start + 60), start)
    const middle = outcome(deadlines.within(pending().promise, start + 150), start)
    const [l, e, m] = await Promise.all([late, early, middle])
    expect(e).toMatchObject({ error: TIMED_OUT })
    expect(m).toMatchObject({ error: TIMED_OUT })
    expect(l).toMatchObject({ error: TIMED_OUT })
    expect(e!.ms).toBeGreaterThanOrEqual(55)
    expect(e!.ms).toBeLessThan(150)
    expect(m!.ms).toBeGreaterThanOrEqual(145)
    expect(m!.ms).toBeLessThan(300)
    expect(l!.ms).toBeGreaterThanOrEqual(295)
  })

  it('at the deadline calls onExpire, and a rejection that causes arrives instead of TIMED_OUT', async () => {
    const deadlines = new Deadlines()
    const start = Date.now()
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

  it('many calls settled in turn leave nothing behind, and a later call still gets its deadline', async () => {
    const deadlines = new Deadlines()
    for (let i = 0; i < 5000; i++) {
      expect(await deadlines.within(Promise.resolve(i), Date.now() + 50)).toBe(i)
    }
    // The timer set for the first call fires with nothing to do; one set for this call must
    // still reject it.
    await sleep(80)
    const start = Date.now()
    const last = await outcome(deadlines.within(pending().promise, start + 40), start)
    expect(last).toMatchObject({ error: TIMED_OUT })
    expect(last.ms).toBeGreaterThanOrEqual(35)
  })

  it('does not keep the process alive once no call waits, and does while one does', async () => {
    // Counted as Node counts what keeps it alive: a timer let go of (unref) is not listed.
    const timers = () => process.getActiveResourcesInfo().filter((what) => what === 'Timeout').length
    const before = timers()
    const deadlines = new Deadlines()
    for (let i = 0; i < 3; i++) await deadlines.within(Promise.resolve(i), Date.now() + 60_000)
    expect(timers()).toBe(before)
    const waiting = pending<number>()
    const call = deadlines.within(waiting.promise, Date.now() + 60_000)
    expect(timers()).toBe(before + 1)
    waiting.resolve(1)
    expect(await call).toBe(1)
    expect(timers()).toBe(before)
  })
})
