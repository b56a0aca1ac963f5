import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
const FILLER = Buffer.alloc(100)

/**
 * Benchmark values: 100 characters, different for every key and every write. The filler is
 * pseudo-random base64 text (6 bits of entropy per character), so compression saves about as
 * much as on typical text, and every run writes the same bytes.
 */
export function valueFor(index, round = 0) {
  const head = `v${index}:${round}:`
  let state = (Math.imul(index + 1, 0x9e3779b1) ^ Math.imul(round + 1, 0x85ebca6b)) >>> 0
  const filler = FILLER.subarray(0, 100 - head.length)
  for (let i = 0; i < filler.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    filler[i] = ALPHABET.charCodeAt(state >>> 26)
  }
  return head + filler.toString('latin1')
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
