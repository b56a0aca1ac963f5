import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import * as api from '../src/index.js'
import { ERROR_CODES } from '../src/store/errors.js'
import { tempDir } from './helpers.js'
import { redisTestsEnabled, startRedis } from './backends/redis/server.js'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
const dist = new URL('../dist/index.js', import.meta.url).pathname

function section(title: string): string {
  const start = readme.indexOf(`\n## ${title}\n`)
  expect(start, `README has a "## ${title}" section`).toBeGreaterThan(-1)
  const end = readme.indexOf('\n## ', start + 1)
  return readme.slice(start, end === -1 ? undefined : end)
}

describe('README', () => {
  it('quick start runs as written', () => {
    const code = /```js\n([\s\S]*?)```/.exec(section('Quick start'))?.[1]
    expect(code).toBeDefined()
    const script = join(tempDir(), 'quickstart.mjs')
    writeFileSync(script, code!.replace("from 'anystore-kv'", `from '${dist}'`))
    const output = execFileSync(process.execPath, [script], { encoding: 'utf8' })
    expect(output.trim()).toBe('quick start ok')
  })

  it('the change events example runs as written', () => {
    const start = readme.indexOf('\n### Change events')
    expect(start, 'README has a "### Change events" section').toBeGreaterThan(-1)
    const code = /```js\n([\s\S]*?)```/.exec(readme.slice(start))?.[1]
    expect(code).toContain('store.watch(')
    const script = join(tempDir(), 'change-events.mjs')
    writeFileSync(script, code!.replace("from 'anystore-kv'", `from '${dist}'`))
    const output = execFileSync(process.execPath, [script], { encoding: 'utf8' })
    // The listener's lines, in commit order, then the end of the script.
    expect(output.trim().split('\n')).toEqual([
      "added user:1 { name: 'Ada' }",
      "added user:2 { name: 'Grace' }",
      "changed user:1 { name: 'Ada' } { name: 'Ada Lovelace' }",
      "deleted user:1 { name: 'Ada Lovelace' }",
      "deleted user:2 { name: 'Grace' }",
      'change events ok',
    ])
  })

  // The example reads REDIS_URL: here a redis-server of the tests' own, started for it.
  it.skipIf(!redisTestsEnabled)('the Redis example runs as written against a real server', async () => {
    const code = /```js\n([\s\S]*?)```/.exec(section('Redis'))?.[1]
    expect(code).toContain('redis: { url, name')
    const script = join(tempDir(), 'redis-example.mjs')
    writeFileSync(script, code!.replace("from 'anystore-kv'", `from '${dist}'`))
    const server = await startRedis()
    try {
      const output = execFileSync(process.execPath, [script], {
        encoding: 'utf8',
        env: { ...process.env, REDIS_URL: server.url },
      })
      expect(output.trim()).toBe('1 2')
    } finally {
      await server.stop()
    }
  })

  it('options table matches DEFAULT_OPTIONS', () => {
    const rows = new Map(
      [...section('Options').matchAll(/^\| `(\w+)` \| [^|]*(?:\\\|[^|]*)* \| (.+?) \|/gm)].map(
        (m) => [m[1], m[2]],
      ),
    )
    const defaults = api.DEFAULT_OPTIONS as Record<string, unknown>
    for (const [name, value] of Object.entries(defaults)) {
      if (name === 'persist') continue // documented as depending on `file`
      const shown =
        name === 'encryptionKey'
          ? 'DEFAULT_ENCRYPTION_KEY'
          : JSON.stringify(value).replaceAll('"', "'")
      expect(rows.get(name), `README default for ${name}`).toBe(`\`${shown}\``)
    }
    for (const name of ['file', 'persist']) expect(rows.has(name)).toBe(true)
    // The file-system hook is internal (openWithFileSystem), not an option to document.
    expect(rows.has('fs')).toBe(false)
  })

  it('errors table lists every exported error class with its code', () => {
    const table = section('Errors')
    const classes = Object.entries(api).filter(
      ([name, value]) =>
        typeof value === 'function' &&
        value.prototype instanceof api.AnyStoreError &&
        name !== 'AnyStoreError',
    )
    expect(classes.length).toBeGreaterThanOrEqual(14)
    for (const [name, ErrorClass] of classes) {
      const code = Reflect.construct(ErrorClass as new (...args: unknown[]) => api.AnyStoreError, [
        'x',
        'y',
        'z',
      ]).code
      expect(table, name).toContain(`| \`${name}\` | \`${code}\` |`)
    }
  })

  it('errors table has one row for every error code', () => {
    const codes = [...section('Errors').matchAll(/^\| `\w+` \| `(ERR_ANYSTORE_\w+)` \|/gm)].map(
      (m) => m[1],
    )
    expect(codes.sort()).toEqual([...ERROR_CODES].sort())
  })
})
