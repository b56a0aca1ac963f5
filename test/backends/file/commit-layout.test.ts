import * as fs from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { AnyStore } from '../../../src/index.js'
import type { StoreKey } from '../../../src/store/types.js'

let dir: string
let file: string

beforeEach(() => {
  dir = fs.mkdtempSync(join(tmpdir(), 'anystore-commit-layout-'))
  file = join(dir, 'store.anystore')
})

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true })
})

const ENTRIES = 3000

async function filledStore(): Promise<AnyStore<string>> {
  const store = await AnyStore.open<string>({ file, sync: 'never' })
  // One commit of many entries this process built itself: encoded entry by entry.
  await store.run(async (tx) => {
    for (let i = 0; i < ENTRIES; i++) await tx.set(`k${i}`, `v${i}`)
  })
  return store
}

async function reopened(): Promise<Map<StoreKey, string>> {
  const reader = await AnyStore.open<string>({ file })
  const entries = new Map(await reader.entries())
  await reader.close()
  return entries
}

describe('commits after a large commit this process encoded itself', () => {
  it('keep every write when a read inside run() comes before the commit', async () => {
    const store = await filledStore()
    await store.run(async (tx) => {
      expect(await store.get('k1')).toBe('v1')
      await tx.set('k1', 'changed')
      await tx.delete('k2')
      await tx.set('new', 'entry')
    })
    expect(await store.get('k1')).toBe('changed')
    expect(await store.has('k2')).toBe(false)
    await store.set('k3', 'later')
    expect(await store.get('new')).toBe('entry')
    const onDisk = await reopened()
    expect(onDisk.get('k1')).toBe('changed')
    expect(onDisk.has('k2')).toBe(false)
    expect(onDisk.get('new')).toBe('entry')
    expect(onDisk.get('k3')).toBe('later')
    expect(onDisk.size).toBe(ENTRIES)
    expect([...onDisk.keys()]).toEqual(await store.keys())
    await store.close()
  })

  it('keep order and values across many small commits and reads', async () => {
    const store = await filledStore()
    const model = new Map<string, string>()
    for (let i = 0; i < ENTRIES; i++) model.set(`k${i}`, `v${i}`)
    for (let round = 0; round < 30; round++) {
      const key = `k${(round * 97) % ENTRIES}`
      if (round % 3 === 0) {
        await store.delete(key)
        model.delete(key)
      } else {
        await store.set(key, `r${round}`)
        model.set(key, `r${round}`)
      }
      if (round % 5 === 0) {
        await Promise.all([store.get('k0'), store.run(async (tx) => tx.set(`extra${round}`, 'x'))])
        model.set(`extra${round}`, 'x')
      }
    }
    expect(await store.entries()).toEqual([...model])
    expect([...(await reopened())]).toEqual([...model])
    await store.close()
  })
})
