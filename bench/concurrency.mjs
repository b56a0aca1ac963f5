import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { openStore } from './lib/backends.mjs'
import { check, freshDir, keyFor, valueFor } from './lib/data.mjs'
import { measure } from './lib/harness.mjs'
import { releaseTogether, startLineChild } from './lib/line-child.mjs'
import { populate } from './scenarios.mjs'

const INCREMENTER = fileURLToPath(new URL('./fixtures/increment.mjs', import.meta.url))

/**
 * Group commit: 1,000 concurrent set() calls (one commit, or a few) against 1,000 sequential
 * awaited ones (1,000 commits), sync 'always' where the backend has it, on a 1,000-entry store.
 */
export async function groupCommit(profile, writes = 1000, backend = 'file') {
  const location = join(freshDir(`group-${backend}`), 'store.anystore')
  const store = await openStore(backend, { location, sync: 'always' })
  await populate(store, 1000)
  const keys = Array.from({ length: writes }, (_, i) => keyFor(i))
  let round = 0
  let values = []
  // Values are made before each timed call, so only the set() calls are measured.
  const nextRound = () => {
    round++
    values = keys.map((_, i) => valueFor(i, round))
  }
  const concurrent = await measure(
    profile,
    async () => {
      await Promise.all(keys.map((key, i) => store.set(key, values[i])))
    },
    { slow: true, beforeEach: nextRound },
  )
  for (let i = 0; i < writes; i++) {
    check((await store.get(keys[i])) === values[i], 'every concurrent set() is committed')
  }
  const sequential = await measure(
    { ...profile, time: 1, minIterations: 1, warmupTime: 0 },
    async () => {
      for (let i = 0; i < writes; i++) await store.set(keys[i], values[i])
    },
    { slow: true, beforeEach: nextRound },
  )
  const reader = await openStore(backend, { location })
  for (let i = 0; i < writes; i++) {
    check(
      (await reader.get(keyFor(i))) === valueFor(i, round),
      'every sequential set() is committed',
    )
  }
  await reader.close()
  await store.close()
  return {
    writes,
    concurrentMs: concurrent.medianUs / 1000,
    sequentialMs: sequential.medianUs / 1000,
    speedup: sequential.medianUs / concurrent.medianUs,
  }
}

function startContender(kind, path, count, warmUp, backend) {
  return startLineChild(INCREMENTER, [kind, path, String(count), String(warmUp), backend], `${kind} contender`)
}

export async function readCounter(kind, path, backend = 'file') {
  if (kind === 'anystore') {
    const store = await openStore(backend, { location: path })
    const value = await store.get('counter')
    await store.close()
    return value ?? 0
  }
  if (kind === 'lmdb' || kind === 'lmdb-flushed') {
    const { open } = await import('lmdb')
    const db = open({ path })
    const value = db.get('counter')
    await db.close()
    return value ?? 0
  }
  if (kind === 'floor') {
    const { readFileSync } = await import('node:fs')
    return Number(readFileSync(join(path, 'counter'), 'utf8'))
  }
  const { default: Conf } = await import('conf')
  return new Conf({ cwd: path, projectName: 'bench', configName: 'store' }).get('counter') ?? 0
}

/**
 * `processes` processes each doing `count` read-modify-write increments of one counter, all
 * released at once after they have opened the store and done `warmUp` increments of a scratch
 * counter each. Returns the transaction rate and how many increments were lost. `backend` is
 * anystore's (the other kinds are other stores); it must be one other processes can open.
 */
export async function contend(kind, processes, count, warmUp = 0, backend = 'file') {
  const dir = freshDir(`contend-${kind}-${processes}`)
  const path =
    kind === 'anystore'
      ? join(dir, 'store.anystore')
      : kind.startsWith('lmdb')
        ? join(dir, 'db')
        : dir
  const contenders = Array.from({ length: processes }, () =>
    startContender(kind, path, count, warmUp, backend),
  )
  const { reports, wallMs } = await releaseTogether(contenders, `${kind} contender`)
  const total = processes * count
  const final = await readCounter(kind, path, backend)
  return {
    store: kind,
    ...(kind === 'anystore' ? { backend } : {}),
    processes,
    increments: total,
    wallMs,
    slowestMs: Math.max(...reports.map((r) => r.elapsedMs)),
    opsPerSec: (total / wallMs) * 1000,
    final,
    lost: total - final,
  }
}
