import { describe, expect, it } from 'vitest'
import { encodePayload } from '../../src/format/payload.js'
import { PayloadIndex } from '../../src/format/payload-index.js'
import type { StoreKey } from '../../src/store/types.js'

/** FNV-1a, 32 bits, unseeded: how the index hashed keys before it used a keyed hash. */
const FNV_OFFSET = 0x811c9dc5
const FNV_PRIME = 0x01000193

function fnv1a(text: string, state = FNV_OFFSET): number {
  let h = state
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), FNV_PRIME)
  return h >>> 0
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'

/** A fixed sequence of pseudo-random 6-letter blocks (a linear congruential generator). */
function blocks(): () => string {
  let state = 1
  return () => {
    let text = ''
    for (let i = 0; i < 6; i++) {
      state = (Math.imul(state, 1103515245) + 12345) | 0
      text += LETTERS[(state >>> 16) % LETTERS.length]
    }
    return text
  }
}

/**
 * 2^stages ASCII keys with one and the same FNV-1a hash, as anyone can make them offline
 * (Joux's multicollision): each stage finds two 6-letter blocks that take the hash from the
 * same state to the same state (a birthday search, about 80,000 tries), and any choice of
 * block at every stage gives the same final hash.
 */
function fnvCollidingKeys(stages: number): string[] {
  const next = blocks()
  const choices: [string, string][] = []
  let state = FNV_OFFSET
  for (let stage = 0; stage < stages; stage++) {
    const seen = new Map<number, string>()
    for (;;) {
      const candidate = next()
      const h = fnv1a(candidate, state)
      const earlier = seen.get(h)
      if (earlier !== undefined && earlier !== candidate) {
        choices.push([earlier, candidate])
        state = h
        break
      }
      seen.set(h, candidate)
    }
  }
  let keys = ['']
  for (const [a, b] of choices) keys = keys.flatMap((prefix) => [prefix + a, prefix + b])
  return keys
}

/** Indexes `keys` and looks each one up (which builds the table). */
function indexAndFind(keys: StoreKey[]): PayloadIndex {
  const value = { value: Uint8Array.of(0xc0) }
  const index = new PayloadIndex(encodePayload(keys.map((key) => [key, value])))
  keys.forEach((key, record) => expect(index.find(key)).toBe(record))
  expect(index.find('absent')).toBe(-1)
  return index
}

describe('PayloadIndex against hash flooding', () => {
  it('indexes keys crafted to collide under an unseeded hash in linear probes', () => {
    const crafted = fnvCollidingKeys(14)
    expect(crafted.length).toBe(16_384)
    expect(new Set(crafted).size).toBe(crafted.length)
    expect(new Set(crafted.map((key) => fnv1a(key))).size).toBe(1)
    const ordinary = crafted.map((_, i) => `key:${i}`)

    const craftedIndex = indexAndFind(crafted)
    const ordinaryIndex = indexAndFind(ordinary)
    // A table at most half full averages under 2 probes per insert and per lookup; colliding
    // keys would take n²/2 (134 million here).
    expect(ordinaryIndex.probes).toBeLessThan(4 * crafted.length)
    expect(craftedIndex.probes).toBeLessThan(4 * crafted.length)
    // Their one FNV-1a value gave them away: they were hashed again with the strong hash.
    expect(craftedIndex.hashedStrongly).toBe(true)
    expect(ordinaryIndex.hashedStrongly).toBe(false)
  })

  it('still finds repeated keys and every key after hashing strongly', () => {
    const crafted = fnvCollidingKeys(8)
    const value = { value: Uint8Array.of(0xc0) }
    const entries = crafted.map((key): [StoreKey, typeof value] => [key, value])
    const numbers: [StoreKey, typeof value][] = [
      [1.5, value],
      [-0, value],
    ]
    const index = indexAndFind([...crafted, 1.5, -0])
    expect(index.hashedStrongly).toBe(true)
    expect(index.find(0)).toBe(crafted.length + 1)
    const repeated = encodePayload([...entries, ...numbers, [crafted[100] as string, value]])
    expect(() => new PayloadIndex(repeated)).toThrow(/repeats entry 100/)
    const zeros = encodePayload([...entries, [0, value], ...numbers])
    expect(() => new PayloadIndex(zeros)).toThrow(/repeats entry/)
  })

  it('spreads number keys too: consecutive integers and powers of two', () => {
    const numbers: number[] = []
    for (let i = 0; i < 8192; i++) numbers.push(i, 2 ** (i % 1000) * (i + 1), -i - 0.5)
    const keys = [...new Set(numbers)]
    const index = indexAndFind(keys)
    expect(index.probes).toBeLessThan(4 * keys.length)
    expect(index.hashedStrongly).toBe(false)
  })
})
