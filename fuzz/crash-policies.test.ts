import { spawn } from 'node:child_process'
import { closeSync, existsSync, mkdtempSync, openSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, test } from 'vitest'
import { AnyStore, type SyncPolicy } from '../src/index.js'
import { countBudget, report, seedFor } from './budget.js'
import { fixture, requireBuild } from './dist-check.js'
import { prng } from './prng.js'

/**
 * What each `sync` policy loses when the process is SIGKILLed. A child writes one key at a
 * time and prints each acknowledged write with its time (fuzz/fixtures/acknowledger.mjs); the
 * parent kills it at a random moment, then opens the file and compares.
 *
 * - 'always' and 'never': nothing acknowledged may be lost. A killed process leaves the page
 *   cache to the kernel, so the fsync 'never' skips makes no difference here (it would after a
 *   power loss, which no test here can cause).
 * - { everyMs }: the writes acknowledged since the last commit are lost. The file must still
 *   hold a prefix of the writes (commits apply batches whole and in order), and every lost
 *   write must have been acknowledged shortly before the kill: within everyMs plus the time
 *   a commit takes, with a margin for a loaded machine.
 *
 * The figures (writes acknowledged, lost per kill, how old the oldest lost write was) are
 * printed for docs/RELIABILITY.md.
 */

const SLOTS = 16
const EVERY_MS = 100
/** How much later than everyMs a lost write may have been acknowledged: scheduling on a busy machine. */
const MARGIN_MS = 500

const flockSync = (
  createRequire(import.meta.url)('fs-ext') as { flockSync(fd: number, flags: string): void }
).flockSync

const root = mkdtempSync(join(tmpdir(), 'anystore-crash-policies-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

interface Generation {
  /** Acknowledged writes: number -> CLOCK_MONOTONIC ns. */
  acks: Map<number, bigint>
  ready: Promise<void>
  kill(): bigint
  closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

function start(file: string, sync: SyncPolicy): Generation {
  const child = spawn(
    process.execPath,
    [fixture('acknowledger.mjs'), JSON.stringify({ file, sync, slots: SLOTS })],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  const acks = new Map<number, bigint>()
  let markReady: () => void = () => {}
  const ready = new Promise<void>((resolve) => {
    markReady = resolve
  })
  let rest = ''
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (chunk: string) => {
    const lines = (rest + chunk).split('\n')
    rest = lines.pop()!
    for (const line of lines) {
      const [first, second] = line.split(' ')
      if (first === 'ready') markReady()
      else acks.set(Number(first), BigInt(second!))
    }
  })
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  )
  return {
    acks,
    ready,
    closed,
    kill() {
      const at = process.hrtime.bigint()
      child.kill('SIGKILL')
      return at
    },
  }
}

function assertLockFree(file: string): void {
  // Killed before its first commit: no lockfile yet.
  if (!existsSync(`${file}.lock`)) return
  const fd = openSync(`${file}.lock`, 'r+')
  try {
    flockSync(fd, 'exnb')
    flockSync(fd, 'un')
  } finally {
    closeSync(fd)
  }
}

/**
 * The last write the file holds, after checking that it holds exactly the writes up to it:
 * each slot has the latest write to it that is not above that last one.
 */
async function lastStored(file: string): Promise<number> {
  const store = await AnyStore.open<number>({ file, lock: 'flock' })
  try {
    const slots = new Map(await store.entries())
    const last = Math.max(0, ...slots.values())
    for (let slot = 0; slot < SLOTS; slot++) {
      let expected: number | undefined = last - ((((last - slot) % SLOTS) + SLOTS) % SLOTS)
      if (expected < 1) expected = undefined
      expect(slots.get(`k${slot}`), `slot ${slot} after the last write ${last}`).toBe(expected)
    }
    return last
  } finally {
    await store.close()
  }
}

function median(values: number[]): number {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

async function torture(label: string, sync: SyncPolicy, kills: number, random: () => number) {
  const file = join(root, label, 'store.db')
  const lost: number[] = []
  const oldestLostMs: number[] = []
  let acknowledged = 0
  for (let kill = 0; kill < kills; kill++) {
    const generation = start(file, sync)
    await Promise.race([generation.ready, generation.closed])
    // Write-behind: up to twice the bound on what a kill may lose, so that a store which
    // committed late, or never, would be caught. The others: tens to hundreds of commits.
    await sleep(random() * (typeof sync === 'object' ? 2 * (sync.everyMs + MARGIN_MS) : 300))
    const killedAt = generation.kill()
    expect(await generation.closed).toStrictEqual({ code: null, signal: 'SIGKILL' })
    assertLockFree(file)
    const last = await lastStored(file)
    const acks = generation.acks
    acknowledged += acks.size
    const gone = [...acks.keys()].filter((w) => w > last)
    lost.push(gone.length)
    if (gone.length > 0) {
      const oldest = acks.get(Math.min(...gone))!
      oldestLostMs.push(Number(killedAt - oldest) / 1e6)
    }
  }
  return { file, lost, oldestLostMs, acknowledged }
}

const policies: [string, SyncPolicy][] = [
  ['always', 'always'],
  ['never', 'never'],
  [`everyMs ${EVERY_MS}`, { everyMs: EVERY_MS }],
]

for (const [label, sync] of policies) {
  test(`sync ${label}: SIGKILL at random moments ${typeof sync === 'object' ? 'loses only writes acknowledged in the last commit period' : 'loses no acknowledged write'}`, async () => {
    requireBuild()
    const kills = countBudget(8, 100, 'FUZZ_POLICY_KILLS')
    const seed = seedFor(`crash-policy ${label}`, { name: 'FUZZ_POLICY_KILLS', value: kills })
    const result = await torture(label.replace(' ', '-'), sync, kills, prng(seed))
    const totalLost = result.lost.reduce((a, b) => a + b, 0)
    report(`crash-policy ${label}`, {
      seed,
      kills,
      acknowledged: result.acknowledged,
      lost: totalLost,
      killsThatLost: result.lost.filter((n) => n > 0).length,
      lostPerKillMedian: median(result.lost),
      lostPerKillMax: Math.max(0, ...result.lost),
      oldestLostAgeMsMedian: median(result.oldestLostMs).toFixed(1),
      oldestLostAgeMsMax: Math.max(0, ...result.oldestLostMs).toFixed(1),
    })
    expect(result.acknowledged).toBeGreaterThan(0)
    if (typeof sync === 'object') {
      for (const age of result.oldestLostMs) expect(age).toBeLessThan(sync.everyMs + MARGIN_MS)
    } else {
      expect(result.lost).toStrictEqual(result.lost.map(() => 0))
    }
  })
}
