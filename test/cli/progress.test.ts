import { describe, expect, it } from 'vitest'
import { PROGRESS_MIN_TOTAL, ProgressBar } from '../../src/cli/progress.js'

/** A terminal-like sink that records what was written. */
function sink(isTTY: boolean) {
  const writes: string[] = []
  return { isTTY, columns: 80, writes, write: (chunk: string) => writes.push(chunk) > 0 }
}

describe('ProgressBar', () => {
  it('draws nothing when the stream is not a terminal', () => {
    const out = sink(false)
    const bar = new ProgressBar('dump', 10_000, out)
    for (let i = 1; i <= 10_000; i++) bar.update(i)
    bar.finish()
    expect(bar.enabled).toBe(false)
    expect(out.writes).toEqual([])
  })

  it('draws nothing for small jobs', () => {
    const out = sink(true)
    const bar = new ProgressBar('dump', PROGRESS_MIN_TOTAL - 1, out)
    bar.update(5)
    bar.finish()
    expect(out.writes).toEqual([])
  })

  it('redraws one line at most every interval and ends with the full bar', () => {
    const out = sink(true)
    const bar = new ProgressBar('import', 4000, out, { intervalMs: 60_000 })
    for (let i = 1; i <= 4000; i++) bar.update(i)
    bar.finish()
    // The first update draws, the rest fall inside the interval, finish draws and ends the line.
    expect(out.writes.length).toBe(3)
    expect(out.writes[0]).toMatch(/^\rimport \[-+\] +0% 1\/4000$/)
    expect(out.writes[1]).toMatch(/^\rimport \[#+\] 100% 4000\/4000$/)
    expect(out.writes[2]).toBe('\n')
  })

  it('fits a narrow terminal', () => {
    const out = { ...sink(true), columns: 30 }
    const bar = new ProgressBar('rekey', 2000, out)
    bar.update(1000)
    expect(out.writes[0]).toMatch(/^\rrekey \[#{5}-{5}\] +50% 1000\/2000$/)
  })
})
