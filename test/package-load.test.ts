import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { CLI, ROOT, fixture, requireBuild, runCli, runNode, tempDir } from './cli-support.js'

requireBuild()

/**
 * What the built package does to the process that loads it, checked in fresh processes: a
 * host application that imports it must find its process as it was, and a call must load
 * only the code it uses (docs/DESIGN.md, "Build").
 */

const dist = join(ROOT, 'dist/index.js')
const LISTENED = [
  'exit',
  'beforeExit',
  'SIGINT',
  'SIGTERM',
  'SIGHUP',
  'uncaughtException',
  'unhandledRejection',
  'warning',
]

/** Prints what the host can observe of its process, as JSON, before and after `code`. */
function observe(code: string): string {
  return `
    import * as fs from 'node:fs'
    const snapshot = () => ({
      fs: Object.fromEntries(Object.keys(fs.default).map((name) => [name, fs.default[name]])),
      promises: { ...fs.promises },
      listeners: Object.fromEntries(${JSON.stringify(LISTENED)}.map((e) => [e, process.listenerCount(e)])),
      globals: Object.getOwnPropertyNames(globalThis),
    })
    const before = snapshot()
    ${code}
    const after = snapshot()
    const changed = (a, b) => Object.keys({ ...a, ...b }).filter((name) => a[name] !== b[name])
    console.log(JSON.stringify({
      fs: changed(before.fs, after.fs),
      promises: changed(before.promises, after.promises),
      listeners: changed(before.listeners, after.listeners),
      globals: after.globals.filter((name) => !before.globals.includes(name)),
      fsFunctions: Object.values(before.fs).filter((v) => typeof v === 'function').length,
    }))
  `
}

async function changesMadeBy(code: string) {
  const result = await runNode(['--input-type=module', '-e', observe(code)])
  expect(result.stderr).toBe('')
  expect(result.code).toBe(0)
  return JSON.parse(result.stdout) as {
    fs: string[]
    promises: string[]
    listeners: string[]
    globals: string[]
    fsFunctions: number
  }
}

describe('importing the package', () => {
  it('changes nothing global: fs functions, process listeners, globalThis', async () => {
    const changes = await changesMadeBy(`await import(${JSON.stringify(dist)})`)
    expect(changes).toMatchObject({ fs: [], promises: [], listeners: [], globals: [] })
    // The comparison saw the functions it compares.
    expect(changes.fsFunctions).toBeGreaterThan(50)
  })

  it('nor does opening a store in flock mode, reading, writing and closing it', async () => {
    const file = join(tempDir(), 'flock.db')
    const changes = await changesMadeBy(`
      const { AnyStore, newKey } = await import(${JSON.stringify(dist)})
      const store = await AnyStore.open({ file: ${JSON.stringify(file)}, encryptionKey: newKey(), lock: 'flock' })
      await store.set('k', 1)
      if ((await store.get('k')) !== 1) throw new Error('read back wrong')
      await store.close()
    `)
    expect(changes).toMatchObject({ fs: [], promises: [], listeners: [], globals: [] })
  })

  it('a proper-lockfile store is what loads proper-lockfile (and with it graceful-fs, which patches fs)', async () => {
    // Shows that the first test would see the patching had the package loaded it on import.
    const file = join(tempDir(), 'plock.db')
    const changes = await changesMadeBy(`
      const { AnyStore, newKey } = await import(${JSON.stringify(dist)})
      const store = await AnyStore.open({ file: ${JSON.stringify(file)}, encryptionKey: newKey(), lock: 'proper-lockfile' })
      await store.set('k', 1)
      await store.close()
    `)
    expect(changes.fs).toContain('close')
  })
})

/** The modules a process loaded: every resolved ES module URL, require()'s cache, built-ins. */
async function loadsOf(args: string[], env: Record<string, string> = {}) {
  const log = join(tempDir(), 'loads.log')
  const result = await runNode(['--import', fixture('record-loads.mjs'), ...args], {
    env: { ...env, ANYSTORE_LOAD_LOG: log },
  })
  expect(result.stderr).toBe('')
  expect(result.code).toBe(0)
  const lines = readFileSync(log, 'utf8').split('\n').filter(Boolean)
  return { stdout: result.stdout, lines }
}

/** What must not load for a call that does not use it, as patterns on the logged lines. */
const RARELY_USED = {
  'proper-lockfile': /[/\\]node_modules[/\\]proper-lockfile[/\\]/,
  'graceful-fs': /[/\\]node_modules[/\\]graceful-fs[/\\]/,
  'env-paths': /[/\\]node_modules[/\\]env-paths[/\\]/,
  'the editor': /[/\\]dist[/\\]chunks[/\\]editor-[^/\\]*\.js$|^builtin child_process$/,
  'the Redis backend': /[/\\]dist[/\\]chunks[/\\]redis-backend-|[/\\]node_modules[/\\]@?redis[/\\]/,
  keyv: /[/\\]node_modules[/\\]keyv[/\\]|[/\\]dist[/\\]adapters[/\\]keyv\.js$/,
  unstorage: /[/\\]node_modules[/\\]unstorage[/\\]|[/\\]dist[/\\]adapters[/\\]unstorage\.js$/,
}

function loadedOf(lines: string[]): string[] {
  return Object.entries(RARELY_USED)
    .filter(([, pattern]) => lines.some((line) => pattern.test(line)))
    .map(([name]) => name)
}

describe('what loads', () => {
  it('on import of the package: none of the rarely used parts', async () => {
    const { lines } = await loadsOf(['--input-type=module', '-e', `await import(${JSON.stringify(dist)})`])
    expect(lines).toContain(`esm file://${dist}`)
    expect(loadedOf(lines)).toEqual([])
  })

  it('on `anystore get FILE KEY`: none of them either', async () => {
    const dir = tempDir()
    const file = join(dir, 'cli.db')
    const key = (await runCli(['newkey'])).stdout.trim()
    const set = await runCli(['set', file, 'greeting', 'hello'], { env: { ANYSTORE_KEY: key } })
    expect(set.code).toBe(0)
    const { stdout, lines } = await loadsOf([CLI, 'get', file, 'greeting'], { ANYSTORE_KEY: key })
    expect(stdout).toBe('"hello"\n')
    expect(loadedOf(lines)).toEqual([])
  })

  it('each part loads when a call uses it, so the patterns above do see it', async () => {
    const dir = tempDir()
    const { lines } = await loadsOf([
      '--input-type=module',
      '-e',
      `
        const { AnyStore, defaultStashFile, newKey } = await import(${JSON.stringify(dist)})
        const store = await AnyStore.open({ file: ${JSON.stringify(join(dir, 'p.db'))}, encryptionKey: newKey(), lock: 'proper-lockfile' })
        await store.set('k', 1)
        await store.close()
        defaultStashFile('anystore-load-test')
        await import(${JSON.stringify(join(ROOT, 'dist/adapters/keyv.js'))})
        await import(${JSON.stringify(join(ROOT, 'dist/adapters/unstorage.js'))})
      `,
    ])
    expect(loadedOf(lines)).toEqual([
      'proper-lockfile',
      'graceful-fs',
      'env-paths',
      'keyv',
      'unstorage',
    ])
    // The editor and the Redis backend are chunks of their own, which the patterns name.
    const chunks = readdirSync(join(ROOT, 'dist/chunks')).map((name) => join(ROOT, 'dist/chunks', name))
    expect(loadedOf(chunks.map((path) => `esm file://${path}`))).toEqual(['the editor', 'the Redis backend'])
  })
})
