import { describe, expect, it } from 'vitest'
import { Mutex, withPathMutex } from '../../src/store/mutex.js'

const tick = () => new Promise((resolve) => setTimeout(resolve, 1))

describe('Mutex', () => {
  it('runs critical sections one at a time, in arrival order, even when one throws', async () => {
    const mutex = new Mutex()
    const log: string[] = []
    const section = (name: string, fail = false) =>
      mutex.run(async () => {
        log.push(`${name}:start`)
        await tick()
        log.push(`${name}:end`)
        if (fail) throw new Error(name)
      })
    const results = await Promise.allSettled([section('a'), section('b', true), section('c')])
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
    expect(log).toEqual(['a:start', 'a:end', 'b:start', 'b:end', 'c:start', 'c:end'])
    expect(mutex.idle).toBe(true)
  })

  it('serializes by path and lets different paths run concurrently', async () => {
    let inside = 0
    let most = 0
    const section = (path: string) =>
      withPathMutex(path, async () => {
        inside++
        most = Math.max(most, inside)
        await tick()
        inside--
      })
    await Promise.all([section('/x'), section('/x'), section('/x')])
    expect(most).toBe(1)
    await Promise.all([section('/x'), section('/y')])
    expect(most).toBe(2)
  })
})
