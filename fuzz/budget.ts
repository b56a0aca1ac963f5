/**
 * Budgets and seeds for the fuzz suites. `npm test` runs the short profile; `npm run fuzz`
 * sets FUZZ_PROFILE=long. Any figure can be overridden from the environment:
 *   FUZZ_SEED     fast-check seed (printed by every suite, so a failure can be replayed)
 *   FUZZ_RUNS     fast-check runs per property
 *   FUZZ_SECONDS  wall-clock budget per property / suite
 *   FUZZ_KILLS    crash torture: number of SIGKILLs
 */
export const longProfile = process.env.FUZZ_PROFILE === 'long'

function fromEnv(name: string, fallback: number): number {
  const text = process.env[name]
  if (text === undefined || text === '') return fallback
  const value = Number(text)
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number, got ${text}`)
  return value
}

function seedFromEnv(): number {
  return fromEnv('FUZZ_SEED', Date.now() ^ (Math.random() * 0x7fffffff)) | 0
}

/** For suites whose budget is a count: the seed, printed with the count so a run can be replayed. */
export function seedFor(suite: string, count: { name: string; value: number }): number {
  const seed = seedFromEnv()
  console.log(`[fuzz] ${suite}: FUZZ_SEED=${seed} ${count.name}=${count.value}`)
  return seed
}

export interface Budget {
  seed: number
  runs: number
  seconds: number
}

/** The budget for one suite: short and long defaults, env overrides, and the seed printed once. */
export function budgetFor(
  suite: string,
  short: { runs: number; seconds: number },
  long: { runs: number; seconds: number },
): Budget {
  const defaults = longProfile ? long : short
  const budget = {
    seed: seedFromEnv(),
    runs: fromEnv('FUZZ_RUNS', defaults.runs),
    seconds: fromEnv('FUZZ_SECONDS', defaults.seconds),
  }
  console.log(
    `[fuzz] ${suite}: FUZZ_SEED=${budget.seed} FUZZ_RUNS=${budget.runs} FUZZ_SECONDS=${budget.seconds}`,
  )
  return budget
}

/** A count (kills, commits, ...) with short and long defaults and an env override. */
export function countBudget(short: number, long: number, env = 'FUZZ_KILLS'): number {
  return fromEnv(env, longProfile ? long : short)
}

/** Prints one figure in a fixed shape, so docs/RELIABILITY.md can quote the long run's output. */
export function report(suite: string, figures: Record<string, number | string>): void {
  const text = Object.entries(figures)
    .map(([name, value]) => `${name}=${value}`)
    .join(' ')
  console.log(`[fuzz] ${suite} result: ${text}`)
}
