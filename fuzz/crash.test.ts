import { type ChildProcess, fork } from 'node:child_process'
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, expect, test } from 'vitest'
import { AnyStore } from '../src/index.js'
import { countBudget, report, seedFor } from './budget.js'
import { fixture, requireBuild } from './dist-check.js'
import { prng } from './prng.js'

/**
 * Crash torture: a child commits in a loop (sync 'always') and reports each acknowledged
 * commit; it is SIGKILLed, either by the parent at a random moment or by itself at a chosen
 * step of a commit. After every kill: the lock is free, the store opens and decodes, every
 * acknowledged commit is there, transactions are whole, and the next commit leaves no temp.
 */

const PHASES = [
  'open-temp',
  'write-temp',
  'fsync-temp',
  'rename',
  'after-rename',
  'fsync-dir',
] as const
const SLOTS = 8

const flockSync = (
  createRequire(import.meta.url)('fs-ext') as { flockSync(fd: number, flags: string): void }
).flockSync

const root = mkdtempSync(join(tmpdir(), 'anystore-crash-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

interface Generation {
  child: ChildProcess
  acked: { seq: number; b: number }
  ready: Promise<void>
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

function spawnCommitter(spec: Record<string, unknown>): Generation {
  const child = fork(fixture('committer.mjs'), [JSON.stringify(spec)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const acked = { seq: 0, b: 0 }
  let markReady: () => void = () => {}
  const ready = new Promise<void>((resolve) => {
    markReady = resolve
  })
  child.on('message', (m: { type: string; seq?: number; b?: number }) => {
    if (m.type === 'ready') markReady()
    if (m.seq !== undefined) acked.seq = Math.max(acked.seq, m.seq)
    if (m.b !== undefined) acked.b = Math.max(acked.b, m.b)
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  )
  return { child, acked, ready, exited }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

function assertLockFree(file: string): void {
  const fd = openSync(`${file}.lock`, 'r+')
  try {
    flockSync(fd, 'exnb') // throws EAGAIN if a dead holder still held it
    flockSync(fd, 'un')
  } finally {
    closeSync(fd)
  }
}

/**
 * Checks one committer's keys (named with `prefix`) against what it acknowledged: every
 * acknowledged commit is there (later, unacknowledged ones may be too), and transactions are
 * whole (the counter and the slot were written with seq, in one commit). Returns what is stored.
 */
async function checkWriter(
  store: AnyStore<number>,
  prefix: string,
  acked: { seq: number; b: number },
) {
  // One entries() call: other committers may still be writing, and separate get()s would
  // each see a different version of the file.
  const snapshot = new Map(await store.entries())
  const get = async (name: string) => snapshot.get(`${prefix}${name}`)
  const seq = (await get('seq')) ?? 0
  const b = (await get('b')) ?? 0
  expect(seq).toBeGreaterThanOrEqual(acked.seq)
  expect(b).toBeGreaterThanOrEqual(acked.b)
  if (acked.b > 0) expect(await get(`b${acked.b % 4}`)).toBeGreaterThanOrEqual(acked.b)
  expect(await get('c')).toBe(seq === 0 ? undefined : seq)
  if (seq > 0) expect(await get(`k${seq % SLOTS}`)).toBe(seq)
  for (let slot = 0; slot < SLOTS; slot++) {
    const value = await get(`k${slot}`)
    if (value !== undefined) expect(value % SLOTS === slot && value <= seq).toBe(true)
  }
  return { seq, b }
}

type LockKind = 'flock' | 'proper-lockfile'

/** Kills `kills` committers in a row on one file, checking the store after each kill. */
async function torture(lock: LockKind, kills: number, seed: number) {
  const random = prng(seed)
  const file = join(root, `torture ${lock}`, 'store.db')
  const stats = {
    kills: 0,
    parentKills: 0,
    selfKills: 0,
    acked: 0,
    strayTempsSeen: 0,
    byPhase: {} as Record<string, number>,
  }
  const acked = { seq: 0, b: 0 }

  while (stats.kills < kills) {
    const selfKill = random() < 0.5
    const dieAt = selfKill
      ? {
          phase: PHASES[Math.floor(random() * PHASES.length)]!,
          afterCommits: Math.floor(random() * 12),
        }
      : undefined
    const spec = { file, lock, compress: random() < 0.3, bulk: random() < 0.2 ? 200_000 : 0, dieAt }
    const generation = spawnCommitter(spec)
    if (!selfKill) {
      if (random() < 0.15) {
        await sleep(random() * 200) // may land while the child starts or loads the store
      } else {
        await Promise.race([generation.ready, generation.exited])
        await sleep(random() * 40)
      }
      generation.child.kill('SIGKILL')
    } else {
      const timer = setTimeout(() => generation.child.kill('SIGKILL'), 20_000)
      await generation.exited
      clearTimeout(timer)
    }
    const { code, signal } = await generation.exited
    expect({ code, signal }).toStrictEqual({ code: null, signal: 'SIGKILL' })
    stats.kills++
    if (selfKill) {
      stats.selfKills++
      stats.byPhase[dieAt!.phase] = (stats.byPhase[dieAt!.phase] ?? 0) + 1
    } else stats.parentKills++
    stats.acked +=
      Math.max(0, generation.acked.seq - acked.seq) + Math.max(0, generation.acked.b - acked.b)
    acked.seq = Math.max(acked.seq, generation.acked.seq)
    acked.b = Math.max(acked.b, generation.acked.b)

    if (!existsSync(file)) {
      expect(acked).toStrictEqual({ seq: 0, b: 0 })
      continue
    }
    // flock: free the moment the holder died. proper-lockfile: the next commit below must
    // take the dead holder's lock directory over once it is stale (staleMs, 2 s).
    if (lock === 'flock') assertLockFree(file)
    const store = await AnyStore.open<number>({ file, lock, staleMs: 2000 })
    try {
      const stored = await checkWriter(store, '', acked)
      acked.seq = stored.seq
      acked.b = stored.b
      stats.strayTempsSeen += readdirSync(dirname(file)).filter((n) => n.endsWith('.tmp')).length
      // The next commit removes whatever temp file the killed holder left.
      await store.set('checked', stats.kills)
      expect(readdirSync(dirname(file)).filter((n) => n.endsWith('.tmp'))).toStrictEqual([])
      expect(existsSync(`${file}.lock`)).toBe(true)
    } finally {
      await store.close()
    }
  }
  return stats
}

test('SIGKILL at random moments and at every commit step loses no acknowledged commit', async () => {
  requireBuild()
  const kills = countBudget(50, 1000)
  const seed = seedFor('crash', { name: 'FUZZ_KILLS', value: kills })
  const stats = await torture('flock', kills, seed)
  report('crash', {
    seed,
    kills: stats.kills,
    parentKills: stats.parentKills,
    selfKills: stats.selfKills,
    ackedCommits: stats.acked,
    strayTempsRemoved: stats.strayTempsSeen,
    ...Object.fromEntries(PHASES.map((p) => [`kills.${p}`, stats.byPhase[p] ?? 0])),
  })
  expect(stats.kills).toBe(kills)
})

test("the proper-lockfile fallback: a killed holder's stale lock is taken over, nothing lost", async () => {
  requireBuild()
  // Each kill costs a stale period (2 s) before the next commit: a few here, more in npm run fuzz.
  const kills = countBudget(3, 40, 'FUZZ_PLOCK_KILLS')
  const seed = seedFor('crash-proper-lockfile', { name: 'FUZZ_PLOCK_KILLS', value: kills })
  const stats = await torture('proper-lockfile', kills, seed)
  report('crash-proper-lockfile', { seed, kills: stats.kills, ackedCommits: stats.acked })
  expect(stats.kills).toBe(kills)
})

test('several committers on one file, one killed at a time: the others carry on, nothing is lost', async () => {
  requireBuild()
  const kills = countBudget(20, 300, 'FUZZ_SHARED_KILLS')
  const seed = seedFor('crash-shared', { name: 'FUZZ_SHARED_KILLS', value: kills })
  const random = prng(seed)
  const file = join(root, 'shared torture', 'store.db')
  const writers = ['w0.', 'w1.', 'w2.']
  const acked = writers.map(() => ({ seq: 0, b: 0 }))
  const live = writers.map((prefix) => spawnCommitter({ file, lock: 'flock', prefix }))
  let ackedCommits = 0
  try {
    for (let kill = 0; kill < kills; kill++) {
      const victim = Math.floor(random() * writers.length)
      const generation = live[victim]!
      await Promise.race([generation.ready, generation.exited])
      await sleep(random() * 40)
      generation.child.kill('SIGKILL')
      expect(await generation.exited).toStrictEqual({ code: null, signal: 'SIGKILL' })
      // Take what every writer has acknowledged so far, then read: the file must hold at least that.
      const snapshot = live.map((g, i) => ({
        seq: Math.max(acked[i]!.seq, g.acked.seq),
        b: Math.max(acked[i]!.b, g.acked.b),
      }))
      const store = await AnyStore.open<number>({ file, lock: 'flock' })
      try {
        for (const [i, prefix] of writers.entries()) {
          const stored = await checkWriter(store, prefix, snapshot[i]!)
          if (i === victim) {
            ackedCommits += Math.max(0, snapshot[i]!.seq - acked[i]!.seq) + Math.max(0, snapshot[i]!.b - acked[i]!.b)
            acked[i] = stored
          }
        }
      } finally {
        await store.close()
      }
      live[victim] = spawnCommitter({ file, lock: 'flock', prefix: writers[victim] })
    }
  } finally {
    for (const g of live) g.child.kill('SIGKILL')
    await Promise.all(live.map((g) => g.exited))
  }
  // With every writer gone, one commit clears whatever temps the killed ones left.
  const store = await AnyStore.open<number>({ file, lock: 'flock' })
  await store.set('done', 1)
  await store.close()
  expect(readdirSync(dirname(file)).filter((n) => n.endsWith('.tmp'))).toStrictEqual([])
  assertLockFree(file)
  report('crash-shared', { seed, kills, writers: writers.length, ackedCommitsOfKilledWriters: ackedCommits })
})
