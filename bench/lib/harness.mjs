import { Bench } from 'tinybench'

/**
 * How long each measurement may take. `--quick` shrinks every budget; `--smoke` (used by the
 * test suite) only proves the scenarios run. `rounds`: how many turns each contender gets in
 * the side-by-side comparison (bench/compare.mjs), which splits the time budget between them.
 */
export const PROFILES = {
  full: { time: 400, warmupTime: 60, minIterations: 5, batch: 200, rounds: 5 },
  quick: { time: 120, warmupTime: 20, minIterations: 3, batch: 100, rounds: 3 },
  smoke: { time: 5, warmupTime: 0, minIterations: 1, batch: 2, rounds: 1 },
}

/**
 * Measures `fn` with tinybench and returns the median cost of ONE operation in microseconds.
 * `ops` is how many operations one call of `fn` performs: cheap operations are timed in
 * batches so the clock's own cost does not dominate. Hooks run outside the timed part.
 */
export async function measure(profile, fn, { ops = 1, beforeEach, beforeAll, slow = false } = {}) {
  const bench = new Bench({
    time: slow ? profile.time * 2 : profile.time,
    iterations: profile.minIterations,
    warmup: profile.warmupTime > 0,
    warmupTime: profile.warmupTime,
    warmupIterations: slow ? 1 : 5,
    throws: true,
  })
  bench.add('task', fn, { beforeEach, beforeAll })
  await bench.run()
  const result = bench.tasks[0].result
  if (result.state !== 'completed') {
    throw new Error(`benchmark task ended in state ${result.state}: ${result.error ?? ''}`)
  }
  return {
    medianUs: (result.latency.p50 * 1000) / ops,
    samples: result.latency.samplesCount ?? result.latency.samples?.length,
  }
}

/** Formats microseconds for the table. */
export function formatUs(us) {
  if (us === undefined || Number.isNaN(us)) return '-'
  if (us >= 10_000) return `${(us / 1000).toFixed(0)} ms`
  if (us >= 1000) return `${(us / 1000).toFixed(2)} ms`
  if (us >= 100) return `${us.toFixed(0)} µs`
  return `${us.toFixed(2)} µs`
}

export function formatRatio(ratio) {
  if (ratio === undefined || Number.isNaN(ratio)) return '-'
  if (ratio >= 100) return `${ratio.toFixed(0)}×`
  return ratio >= 0.1 ? `${ratio.toFixed(2)}×` : `${ratio.toPrecision(2)}×`
}

/** Prints rows as an aligned text table. */
export function printTable(title, header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)))
  const line = (cells) => cells.map((c, i) => String(c).padEnd(widths[i])).join('  ')
  console.log(`\n## ${title}`)
  console.log(line(header))
  console.log(line(widths.map((w) => '-'.repeat(w))))
  for (const row of rows) console.log(line(row))
}
