import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { AnyStore, newKey } from '../../src/index.js'
import { fixture, tempDir } from '../helpers.js'

const REENTRANT = 'ERR_ANYSTORE_REENTRANT'

/** Settles within `ms`, or says it did not: a call wrongly let through waits for itself. */
function within<T>(promise: Promise<T>, ms = 2000): Promise<T | 'never settled'> {
  return Promise.race([
    promise,
    new Promise<'never settled'>((resolve) => setTimeout(() => resolve('never settled'), ms)),
  ])
}

/** 'resolved', or the code `call` failed with, thrown synchronously or not. */
async function outcome(call: () => Promise<unknown>): Promise<unknown> {
  try {
    await call()
    return 'resolved'
  } catch (error) {
    return (error as { code?: string }).code
  }
}

function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void
  const opened = new Promise<void>((resolve) => {
    open = resolve
  })
  return { opened, open }
}

async function stores(): Promise<[AnyStore<number>, AnyStore<number>]> {
  return [await AnyStore.open<number>(), await AnyStore.open<number>()]
}

describe('held scopes: a call is refused only from inside a run() of what it would wait for', () => {
  it('calls from outside every run() go through while a run() waits, also ones made meanwhile', async () => {
    const [a] = await stores()
    const release = gate()
    const entered = gate()
    const running = a.run(async (tx) => {
      entered.open()
      await release.opened
      await tx.set('in', 1)
    })
    await entered.opened
    const direct = outcome(() => a.set('out', 1))
    // Work scheduled from outside while the run() is under way, in contexts made after it began.
    const timer = new Promise<unknown>((resolve) => setTimeout(() => resolve(outcome(() => a.set('timer', 1))), 1))
    const read = new Promise<unknown>((resolve) => setImmediate(() => resolve(a.get('in'))))
    release.open()
    await running
    expect(await within(direct)).toBe('resolved')
    expect(await within(timer)).toBe('resolved')
    expect(await within(read)).toBe(1)
    expect(await a.entries()).toEqual([
      ['in', 1],
      ['out', 1],
      ['timer', 1],
    ])
    await a.close()
  })

  it('concurrent runs of two stores: each refuses its own store only, until its own callback settles', async () => {
    const [a, b] = await stores()
    const bothIn = { a: gate(), b: gate() }
    const bEnded = gate()
    const crossed: Promise<unknown>[] = []
    const inA = a.run(async () => {
      bothIn.a.open()
      await bothIn.b.opened
      const own = await outcome(() => a.set('x', 1))
      // Not awaited here: it waits for b's run(), which is not this one.
      crossed.push(outcome(() => b.set('from a', 1)))
      // b's run() has ended (and with it, its hold); this one still holds a.
      await bEnded.opened
      return [own, await outcome(() => a.set('x', 1)), await outcome(() => a.close())]
    })
    const inB = b.run(async () => {
      bothIn.b.open()
      await bothIn.a.opened
      const own = await outcome(() => b.set('x', 1))
      crossed.push(outcome(() => a.set('from b', 1)))
      return own
    })
    expect(await within(inB)).toBe(REENTRANT)
    bEnded.open()
    expect(await within(inA)).toEqual([REENTRANT, REENTRANT, REENTRANT])
    expect(await within(Promise.all(crossed))).toEqual(['resolved', 'resolved'])
    expect(await a.get('from b')).toBe(1)
    expect(await b.get('from a')).toBe(1)
    await a.close()
    await b.close()
  })

  it('a run() of another store nested in a run(): both refused inside, the inner one free after it', async () => {
    const [a, b] = await stores()
    const inner = gate()
    const seen = await within(
      a.run(async () => {
        const nested = await b.run(async () => [
          await outcome(() => a.set('x', 1)),
          await outcome(() => b.set('x', 1)),
          await outcome(() => b.close()),
          await outcome(() => a.run(async () => 1)),
        ])
        inner.open()
        return [...nested, await outcome(() => a.set('x', 1)), await outcome(() => b.set('after', 1))]
      }),
    )
    await inner.opened
    expect(seen).toEqual([REENTRANT, REENTRANT, REENTRANT, REENTRANT, REENTRANT, 'resolved'])
    expect(await b.get('after')).toBe(1)
    await a.close()
    await b.close()
  })

  it('async work a run() started goes on outside it once the callback settles', async () => {
    const [a, b] = await stores()
    const alone = gate()
    const besideAnother = gate()
    const besideItsOwnStore = gate()
    let later: Promise<unknown[]> | undefined
    await a.run(async () => {
      later = (async () => [
        await alone.opened.then(() => outcome(() => a.set('alone', 1))),
        await besideAnother.opened.then(() => outcome(() => a.set('beside b', 1))),
        await besideItsOwnStore.opened.then(() => outcome(() => a.set('beside a', 1))),
      ])()
    })
    // No run() under way at all.
    alone.open()
    // While a run() of another store is under way.
    const entered = gate()
    const release = gate()
    const inB = b.run(async () => {
      entered.open()
      await release.opened
    })
    await entered.opened
    besideAnother.open()
    // While a new run() of the same store is under way: the lingering work is not part of it,
    // so its write waits for that run() instead of being refused.
    const inA = a.run(async (tx) => {
      besideItsOwnStore.open()
      await tx.set('run', 1)
    })
    await new Promise((resolve) => setTimeout(resolve, 20))
    release.open()
    await inB
    await inA
    expect(await within(later!)).toEqual(['resolved', 'resolved', 'resolved'])
    expect((await a.keys()).sort()).toEqual(['alone', 'beside a', 'beside b', 'run'])
    await a.close()
    await b.close()
  })

  it('a run() made after every run() has ended refuses as the first one did', async () => {
    const file = join(tempDir(), 's.db')
    const a = await AnyStore.open<number>({ file, encryptionKey: newKey() })
    for (let round = 0; round < 3; round++) {
      // From a context made while no run() was under way.
      const code = await new Promise((resolve) =>
        setImmediate(() => resolve(a.run(async () => outcome(() => a.set('x', round))))),
      )
      expect(code).toBe(REENTRANT)
      expect(await outcome(() => a.run(() => Promise.reject(new Error('dropped'))))).toBeUndefined()
      expect(await outcome(() => a.set('x', round))).toBe('resolved')
    }
    expect(await a.get('x')).toBe(2)
    await a.close()
  })

  it('leaves no promise hooks on in the host process once every run() has ended and the event loop turned', () => {
    // A child process, so that nothing else in it uses async context (dist/, as fixtures do).
    const report = JSON.parse(execFileSync(process.execPath, [fixture('promise-hooks.mjs')], { encoding: 'utf8' }))
    expect(report).toEqual({
      beforeImport: false,
      opened: false,
      afterRun: false,
      afterConcurrentAndSuccessiveRuns: false,
      afterNestedRuns: false,
      afterThrowingRun: false,
      refusedInside: 'ERR_ANYSTORE_REENTRANT',
    })
  })
})
