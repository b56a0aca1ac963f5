import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Benchmark values: 100 characters, different for every key and every write. */
export function valueFor(index, round = 0) {
  const head = `v${index}:${round}:`
  return head + 'x'.repeat(100 - head.length)
}

export function keyFor(index) {
  return `key-${String(index).padStart(7, '0')}`
}

/** Where benchmark stores live; BENCH_DIR puts them on another file system. */
const root = process.env.BENCH_DIR ?? tmpdir()
const made = []

export function freshDir(label) {
  const dir = mkdtempSync(join(root, `anystore-bench-${label}-`))
  made.push(dir)
  return dir
}

export function removeDirs() {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true })
}

/** Deterministic pseudo-random sequence, so runs draw the same keys. */
export function drawIndexes(count, below, seed = 1) {
  let state = seed
  const out = new Uint32Array(count)
  for (let i = 0; i < count; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    out[i] = state % below
  }
  return out
}

export function check(condition, message) {
  if (!condition) throw new Error(`correctness check failed: ${message}`)
}
