import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT, requireBuild, runCli, runNode, tempDir } from '../cli-support.js'

requireBuild()

const dist = join(ROOT, 'dist/index.js')
const WARNING_CODE = 'ANYSTORE_DEFAULT_KEY'

/** Runs an ES module in a fresh Node process (the built package), where no warning was given yet. */
function runScript(code: string) {
  return runNode(['--input-type=module', '-e', code])
}

const count = (text: string, part: string) => text.split(part).length - 1

describe('the public default key', () => {
  it('persisting under it warns once per process, however many stores and stashes', async () => {
    const dir = tempDir()
    const result = await runScript(`
      import { AnyStore, stash, unstash } from ${JSON.stringify(dist)}
      const file = ${JSON.stringify(join(dir, 'a.db'))}
      for (let i = 0; i < 2; i++) {
        const store = await AnyStore.open({ file })
        await store.set('k', i)
        await store.close()
      }
      await stash({ file: ${JSON.stringify(join(dir, 'b.db'))}, key: 'k', thing: 1 })
      console.log(await unstash({ file, key: 'k' }))
    `)
    expect(result.stdout).toBe('1\n')
    expect(count(result.stderr, WARNING_CODE)).toBe(1)
    expect(result.stderr).toContain('AnyStoreWarning')
    expect(result.stderr).toMatch(/public default key/)
    expect(result.code).toBe(0)
  })

  it('stash() to a writer warns too', async () => {
    const result = await runScript(`
      import { PassThrough } from 'node:stream'
      import { stash } from ${JSON.stringify(dist)}
      const writer = new PassThrough()
      writer.resume()
      await stash({ writer, key: 'k', thing: 1 })
    `)
    expect(count(result.stderr, WARNING_CODE)).toBe(1)
    expect(result.code).toBe(0)
  })

  it('can be filtered on its code by a warning listener', async () => {
    const result = await runScript(`
      import { AnyStore } from ${JSON.stringify(dist)}
      process.removeAllListeners('warning')
      process.on('warning', (w) => console.log(JSON.stringify({ name: w.name, code: w.code })))
      const store = await AnyStore.open({ file: ${JSON.stringify(join(tempDir(), 'c.db'))} })
      await store.close()
    `)
    expect(result.stdout).toBe(`${JSON.stringify({ name: 'AnyStoreWarning', code: WARNING_CODE })}\n`)
    expect(result.stderr).toBe('')
  })

  it('no warning in memory or with a key of ones own', async () => {
    const result = await runScript(`
      import { AnyStore, newKey } from ${JSON.stringify(dist)}
      const memory = await AnyStore.open()
      await memory.set('k', 1)
      await memory.close()
      const keyed = await AnyStore.open({ file: ${JSON.stringify(join(tempDir(), 'd.db'))}, encryptionKey: newKey() })
      await keyed.set('k', 1)
      await keyed.close()
    `)
    expect(result).toMatchObject({ code: 0, stderr: '' })
  })

  it('the CLI prints its own warning only, not the library one as well', async () => {
    const file = join(tempDir(), 'cli.db')
    const set = await runCli(['set', file, 'k', 'v'])
    expect(set.code).toBe(0)
    expect(count(set.stderr, 'warning')).toBe(1)
    expect(set.stderr).not.toContain(WARNING_CODE)
    // info tries the default key quietly: no warning of either kind.
    const info = await runCli(['info', file])
    expect(info.code).toBe(0)
    expect(info.stderr).toBe('')
  })
})
