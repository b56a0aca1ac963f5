// The main job: 4 processes increment one counter in an encrypted store, each increment a
// cross-process transaction. Prints the final count (must be exactly 4 × N) and the time.
// Usage: npm run demo [-- N]   (N defaults to 250)
import { fork } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AnyStore, newKey } from '../dist/index.js'

const PROCESSES = 4

if (process.argv[2] === '--child') {
  const [, , , file, n] = process.argv
  const store = await AnyStore.open({ file, encryptionKey: process.env.ANYSTORE_KEY })
  for (let i = 0; i < Number(n); i++) {
    await store.run(async (tx) => tx.set('counter', ((await tx.get('counter')) ?? 0) + 1))
  }
  await store.close()
} else {
  const n = Number(process.argv[2] ?? 250)
  const dir = mkdtempSync(join(tmpdir(), 'anystore-demo-'))
  const file = join(dir, 'counter.db')
  const key = newKey()
  const started = performance.now()
  // The key goes in the environment: any user can read a command line (ps, /proc/PID/cmdline),
  // but only the same user (or root) can read /proc/PID/environ.
  const children = Array.from({ length: PROCESSES }, () =>
    fork(new URL(import.meta.url).pathname, ['--child', file, String(n)], {
      env: { ...process.env, ANYSTORE_KEY: key },
    }),
  )
  const codes = await Promise.all(children.map((c) => new Promise((r) => c.on('exit', r))))
  const elapsed = performance.now() - started
  const store = await AnyStore.open({ file, encryptionKey: key })
  const count = await store.get('counter')
  const lockMode = store.lockMode
  await store.close()
  rmSync(dir, { recursive: true, force: true })
  const expected = PROCESSES * n
  console.log(`${PROCESSES} processes × ${n} increments (lock: ${lockMode})`)
  console.log(`final count: ${count} (expected ${expected})`)
  console.log(
    `time: ${(elapsed / 1000).toFixed(2)} s, ${Math.round(expected / (elapsed / 1000))} transactions/s`,
  )
  if (count !== expected || codes.some((c) => c !== 0)) {
    console.error('LOST UPDATES: the count is wrong')
    process.exit(1)
  }
}
