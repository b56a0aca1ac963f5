import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tempDir } from '../helpers.js'

const ROOT = new URL('../..', import.meta.url).pathname
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')

function adapterBlocks(): string[] {
  const start = readme.indexOf('\n## Adapters: keyv and unstorage\n')
  const end = readme.indexOf('\n## ', start + 1)
  expect(start).toBeGreaterThan(-1)
  return [...readme.slice(start, end).matchAll(/^```js\n([\s\S]*?)^```$/gm)].map((m) => m[1]!)
}

/**
 * A project outside this one whose node_modules holds keyv, unstorage and this package (its
 * built dist, through the package.json exports), so the examples import them as users do.
 */
function consumer(): string {
  const dir = tempDir()
  mkdirSync(join(dir, 'node_modules'))
  symlinkSync(ROOT, join(dir, 'node_modules', 'anystore-kv'))
  for (const name of ['keyv', 'unstorage']) {
    symlinkSync(join(ROOT, 'node_modules', name), join(dir, 'node_modules', name))
  }
  return dir
}

describe('README adapter examples', () => {
  it('run as written and print what their comments say', () => {
    expect(existsSync(join(ROOT, 'dist/adapters/keyv.js')), 'run `npm run build`').toBe(true)
    const blocks = adapterBlocks()
    expect(blocks).toHaveLength(2)
    const dir = consumer()
    for (const [index, code] of blocks.entries()) {
      const expected = [...code.matchAll(/console\.log\(.*\) \/\/ (.*)$/gm)].map((m) => m[1])
      const script = join(dir, `example-${index}.mjs`)
      writeFileSync(script, code)
      // TMPDIR: the examples' own temp directories go where the test's are removed.
      const env = { ...process.env, TMPDIR: dir }
      const output = execFileSync(process.execPath, [script], { cwd: dir, env, encoding: 'utf8' })
      expect(output.trimEnd().split('\n')).toEqual(expected)
    }
  })
})
