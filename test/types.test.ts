import { describe, expect, it } from 'vitest'
import { AnyStore } from '../src/index.js'

// `get<T>()` exists for TypeScript: this file only compiles (npm run typecheck) with it, and
// the values read through it are the ones stored.
describe('get<T>()', () => {
  it('types one value of a store whose values differ in type, on the store and in run()', async () => {
    const store = await AnyStore.open()
    await store.set('name', 'Ada')
    await store.set('visits', 1)
    const visits: number | undefined = await store.get<number>('visits')
    const next = await store.run(async (tx) => {
      const value = ((await tx.get<number>('visits')) ?? 0) + 1
      await tx.set('visits', value)
      return value
    })
    const name: string | undefined = await store.get<string>('name')
    expect({ visits, next, name: name?.toUpperCase() }).toEqual({
      visits: 1,
      next: 2,
      name: 'ADA',
    })
    await store.close()
  })
})
