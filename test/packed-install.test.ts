import { execFileSync } from 'node:child_process'
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

/**
 * What users get: the project's tracked files are copied to a clean directory (as a fresh clone
 * would have them), packed with `npm pack` (whose `prepack` builds), and the tarball is installed
 * into an empty consumer project. The consumer then runs the README's quick start as written,
 * the same through `require()`, and the `anystore` command. Runs on whichever Node runs vitest,
 * so CI's Node 22 and 24 passes check those versions too.
 */

const root = new URL('..', import.meta.url).pathname
const readme = readFileSync(join(root, 'README.md'), 'utf8')
// npm, the command's `#!/usr/bin/env node` and node-gyp all use this Node, not another on PATH.
const env = {
  ...process.env,
  PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`,
  npm_config_update_notifier: 'false',
}

function run(file: string, args: string[], cwd: string, extraEnv: Record<string, string> = {}) {
  return execFileSync(file, args, {
    cwd,
    env: { ...env, ...extraEnv },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  })
}

function quickStart(): string {
  const start = readme.indexOf('\n## Quick start\n')
  const code = /```js\n([\s\S]*?)```/.exec(readme.slice(start))?.[1]
  if (start === -1 || code === undefined) throw new Error('README has no quick start')
  return code
}

let packed: { filename: string; files: { path: string }[] }
let consumer: string
// Shared by the tests below, so not the per-test temp dirs of ./helpers.js.
const work = mkdtempSync(join(tmpdir(), 'anystore-pack-'))
afterAll(() => rmSync(work, { recursive: true, force: true }))

beforeAll(() => {
  const source = join(work, 'source')
  const tracked = run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], root)
    .split('\0')
    .filter((path) => path !== '')
  for (const path of tracked) {
    mkdirSync(dirname(join(source, path)), { recursive: true })
    copyFileSync(join(root, path), join(source, path))
  }
  // The build needs the compiler; the tarball must not need anything else from the work tree.
  symlinkSync(join(root, 'node_modules'), join(source, 'node_modules'))
  const out = join(work, 'out')
  mkdirSync(out)
  const report = JSON.parse(
    run('npm', ['pack', '--json', '--pack-destination', out, '--loglevel=error'], source),
  ) as (typeof packed)[]
  packed = report[0]!
  consumer = join(work, 'consumer')
  mkdirSync(consumer)
  writeFileSync(
    join(consumer, 'package.json'),
    JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }),
  )
  run(
    'npm',
    [
      'install',
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      '--loglevel=error',
      join(out, packed.filename),
    ],
    consumer,
  )
}, 600_000)

describe('the packed package', () => {
  it('holds the library, the command, types, LICENSE and the chart, and no source maps', () => {
    const files = packed.files.map((f) => f.path)
    for (const path of [
      'dist/index.js',
      'dist/index.d.ts',
      'dist/cli/main.js',
      'LICENSE',
      'README.md',
      'CHANGELOG.md',
      'package.json',
      'bench/results/chart.svg',
      'docs/FORMAT.md',
    ]) {
      expect(files, path).toContain(path)
    }
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([])
    expect(files.filter((f) => f.startsWith('src/') || f.startsWith('test/'))).toEqual([])
    // The README's chart is referenced by the path the tarball holds it at.
    expect(readme).toContain('](bench/results/chart.svg)')
  })

  it('runs the README quick start as written, as an ES module', () => {
    const script = join(consumer, 'quickstart.mjs')
    writeFileSync(script, quickStart())
    expect(run(process.execPath, [script], consumer).trim()).toBe('quick start ok')
  })

  it('loads through require()', () => {
    const script = join(consumer, 'quickstart.cjs')
    writeFileSync(
      script,
      `const assert = require('node:assert/strict')
const { AnyStore, newKey, WrongKeyError } = require('anystore-kv')
const { join } = require('node:path')
async function main() {
  const file = join(__dirname, 'required.db')
  const store = await AnyStore.open({ file, encryptionKey: newKey() })
  assert.equal(store.lockMode, 'flock') // fs-ext built for this Node
  await store.set('n', 41)
  await store.run(async (tx) => tx.set('n', (await tx.get('n')) + 1))
  assert.equal(await store.get('n'), 42)
  await store.close()
  await assert.rejects(AnyStore.open({ file, encryptionKey: newKey() }), WrongKeyError)
  console.log('require ok')
}
main().catch((error) => { console.error(error); process.exitCode = 1 })
`,
    )
    const output = run(process.execPath, [script], consumer)
    expect(output.trim()).toBe('require ok')
  })

  it('installs the anystore command', () => {
    const bin = join(consumer, 'node_modules', '.bin', 'anystore')
    const key = run(bin, ['newkey'], consumer).trim()
    expect(key).toMatch(/^[A-Za-z0-9+/_-]{43}$/)
    const withKey = { ANYSTORE_KEY: key }
    run(bin, ['set', 'cli.db', 'greeting', 'hello'], consumer, withKey)
    run(bin, ['set', 'cli.db', 'limits', '--json', '{"max": 10}'], consumer, withKey)
    expect(run(bin, ['get', 'cli.db', 'greeting', '--raw'], consumer, withKey)).toBe('hello\n')
    expect(run(bin, ['keys', 'cli.db'], consumer, withKey)).toBe('greeting\nlimits\n')
    expect(run(bin, ['--help'], consumer)).toContain('anystore')
    // The README's `npx anystore-kv ...`: the package's only command runs under its package name.
    expect(run('npm', ['exec', '--offline', '--', 'anystore-kv', 'size', 'cli.db'], consumer, withKey)).toBe(
      '2\n',
    )
  })
})
