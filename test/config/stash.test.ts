import { spawn } from 'node:child_process'
import { createReadStream, createWriteStream, existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { PassThrough, Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import {
  AnyStore,
  defaultStashFile,
  newKey,
  type StandardSchemaV1,
  stash,
  unstash,
} from '../../src/index.js'
import { fixture, requireBuild, tempDir } from '../cli-support.js'
import { codeOf, nextMessage, rejection, spawnFixture } from '../helpers.js'

requireBuild()

interface Settings {
  port: number
  host: string
  checked?: boolean
}

/** A Standard Schema validator written by hand: the store depends on no validation library. */
function settingsSchema(options: { async?: boolean } = {}): StandardSchemaV1<unknown, Settings> {
  const validate = (value: unknown): StandardSchemaV1.Result<Settings> => {
    const v = value as Partial<Settings> | null
    const issues: StandardSchemaV1.Issue[] = []
    if (typeof v?.port !== 'number') issues.push({ message: 'expected a number', path: ['port'] })
    if (typeof v?.host !== 'string')
      issues.push({ message: 'expected a string', path: [{ key: 'host' }] })
    if (issues.length > 0) return { issues }
    return { value: { ...(v as Settings), checked: true } }
  }
  return {
    '~standard': {
      version: 1,
      vendor: 'anystore-test',
      validate: options.async ? async (value) => validate(value) : validate,
    },
  }
}

const thing = {
  name: 'app',
  limits: new Map<string, unknown>([['max', 10n]]),
  tags: new Set(['a', 'b']),
  since: new Date(1_700_000_000_000),
  secret: Buffer.from('s3cret'),
}

describe('stash / unstash with a store file', () => {
  it('stores a typed object under a key and reads it back; the store sees the same entry', async () => {
    const file = join(tempDir(), 'cfg', 'app.store')
    const encryptionKey = newKey()
    await stash({ file, key: 'settings', thing, encryptionKey })
    expect(await unstash({ file, key: 'settings', encryptionKey })).toEqual(thing)
    const store = await AnyStore.open({ file, encryptionKey })
    expect(await store.get('settings')).toEqual(thing)
    await store.close()
  })

  it('gives defaults for a missing file or key, and ThingNotFoundError without them', async () => {
    const dir = tempDir()
    const missing = join(dir, 'nested', 'none.store')
    expect(await unstash({ file: missing, key: 'k', defaults: { port: 1 } })).toEqual({ port: 1 })
    expect(await codeOf(unstash({ file: missing, key: 'k' }))).toBe('ERR_ANYSTORE_THING_NOT_FOUND')
    // Reading a missing config creates nothing.
    expect(existsSync(join(dir, 'nested'))).toBe(false)

    const file = join(dir, 'app.store')
    await stash({ file, key: 'other', thing: 1 })
    expect(await unstash({ file, key: 'k', defaults: 'fallback' })).toBe('fallback')
    expect(await codeOf(unstash({ file, key: 'k' }))).toBe('ERR_ANYSTORE_THING_NOT_FOUND')
  })

  it('fails with WrongKeyError for the wrong key', async () => {
    const file = join(tempDir(), 'app.store')
    await stash({ file, key: 'k', thing: 1, encryptionKey: newKey() })
    expect(await codeOf(unstash({ file, key: 'k', encryptionKey: newKey() }))).toBe(
      'ERR_ANYSTORE_WRONG_KEY',
    )
  })

  it('refuses an unsupported value before writing anything', async () => {
    const dir = tempDir()
    const file = join(dir, 'app.store')
    expect(await codeOf(stash({ file, key: 'k', thing: { f: () => 1 } }))).toBe(
      'ERR_ANYSTORE_UNSUPPORTED_VALUE',
    )
    expect(readdirSync(dir)).toEqual([])
  })

  it('needs somewhere to write and something to read', async () => {
    expect(await codeOf(stash({ key: 'k', thing: 1 }))).toBe('ERR_ANYSTORE_INVALID_OPTION')
    expect(await codeOf(unstash({ key: 'k' }))).toBe('ERR_ANYSTORE_INVALID_OPTION')
  })
})

describe('stash / unstash with streams', () => {
  it('reads back what it wrote to a writer, and closes the writer', async () => {
    const path = join(tempDir(), 'thing.stash')
    const writer = createWriteStream(path)
    const encryptionKey = newKey()
    await stash({ writer, key: 'settings', thing, encryptionKey })
    expect(writer.closed).toBe(true)
    expect(
      await unstash({ reader: createReadStream(path), key: 'settings', encryptionKey }),
    ).toEqual(thing)
  })

  it('writes both the file and the writer when both are given', async () => {
    const dir = tempDir()
    const file = join(dir, 'app.store')
    const path = join(dir, 'copy.stash')
    await stash({ file, writer: createWriteStream(path), key: 'k', thing: [1, 2] })
    expect(await unstash({ file, key: 'k' })).toEqual([1, 2])
    expect(await unstash({ reader: createReadStream(path), key: 'k' })).toEqual([1, 2])
  })

  it('prefers the reader over the file', async () => {
    const dir = tempDir()
    const file = join(dir, 'app.store')
    await stash({ file, key: 'k', thing: 'from the file' })
    const path = join(dir, 'x.stash')
    await stash({ writer: createWriteStream(path), key: 'k', thing: 'from the reader' })
    expect(await unstash({ file, reader: createReadStream(path), key: 'k' })).toBe(
      'from the reader',
    )
  })

  it('reads a whole store file opened as a reader', async () => {
    const file = join(tempDir(), 'app.store')
    const encryptionKey = newKey()
    const store = await AnyStore.open({ file, encryptionKey, compress: true })
    await store.set('a', 1)
    await store.set('settings', thing)
    await store.close()
    expect(
      await unstash({ reader: createReadStream(file), key: 'settings', encryptionKey }),
    ).toEqual(thing)
    expect(
      await unstash({ reader: createReadStream(file), key: 'missing', encryptionKey, defaults: 0 }),
    ).toBe(0)
  })

  it('closes the writer when stashing fails', async () => {
    const writer = new PassThrough()
    expect(await codeOf(stash({ writer, key: 'k', thing: Symbol('no') }))).toBe(
      'ERR_ANYSTORE_UNSUPPORTED_VALUE',
    )
    expect(writer.destroyed).toBe(true)
    const file = join(tempDir(), 'f.store')
    const failing = new Writable({
      write(_chunk, _encoding, callback) {
        callback(new Error('disk on fire'))
      },
    })
    await expect(stash({ file, writer: failing, key: 'k', thing: 1 })).rejects.toThrow(
      'disk on fire',
    )
    expect(failing.destroyed).toBe(true)
  })

  it('reports a damaged stream as corrupt and an empty one as not a store', async () => {
    const path = join(tempDir(), 'thing.stash')
    await stash({ writer: createWriteStream(path), key: 'k', thing: 'x' })
    const { readFileSync } = await import('node:fs')
    const bytes = readFileSync(path)
    bytes[bytes.length - 20]! ^= 1
    const damaged = new PassThrough()
    damaged.end(bytes)
    expect(await codeOf(unstash({ reader: damaged, key: 'k' }))).toBe('ERR_ANYSTORE_CORRUPT_FILE')
    const empty = new PassThrough()
    empty.end()
    expect(await codeOf(unstash({ reader: empty, key: 'k' }))).toBe(
      'ERR_ANYSTORE_NOT_ANYSTORE_FILE',
    )
  })

  it('reads a stash another process writes to its stdout', async () => {
    const encryptionKey = newKey()
    const child = spawn(
      process.execPath,
      [fixture('stash-child.mjs'), 'cfg', JSON.stringify({ port: 8080 }), encryptionKey],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    const exited = new Promise((resolve) => child.on('exit', resolve))
    expect(await unstash({ reader: child.stdout, key: 'cfg', encryptionKey })).toEqual({
      port: 8080,
    })
    expect(await exited).toBe(0)
  })
})

describe('schemas', () => {
  it.each([false, true])(
    'validates on unstash and returns the output (async validator: %s)',
    async (async) => {
      const file = join(tempDir(), 'app.store')
      await stash({ file, key: 'good', thing: { port: 80, host: 'h' } })
      await stash({ file, key: 'bad', thing: { port: '80' } })
      const schema = settingsSchema({ async })
      expect(await unstash({ file, key: 'good', schema })).toEqual({
        port: 80,
        host: 'h',
        checked: true,
      })
      let error: { code?: unknown; issues?: unknown } | undefined
      try {
        await unstash({ file, key: 'bad', schema })
      } catch (e) {
        error = e as typeof error
      }
      expect(error?.code).toBe('ERR_ANYSTORE_SCHEMA_VALIDATION')
      expect(error?.issues).toEqual([
        { message: 'expected a number', path: ['port'] },
        { message: 'expected a string', path: ['host'] },
      ])
    },
  )

  it.each([false, true])(
    'stash() validates before writing: nothing is written on failure (async validator: %s)',
    async (async) => {
      const dir = tempDir()
      const file = join(dir, 'app.store')
      const received: unknown[] = []
      const writer = new Writable({
        write(chunk, _encoding, done) {
          received.push(chunk)
          done()
        },
      })
      const schema = settingsSchema({ async })
      const bad = { port: '80', host: 'h' } as unknown as Settings
      const error = await rejection(stash({ file, writer, key: 'k', thing: bad, schema }))
      expect(error.code).toBe('ERR_ANYSTORE_SCHEMA_VALIDATION')
      expect((error as { issues?: unknown }).issues).toEqual([
        { message: 'expected a number', path: ['port'] },
      ])
      expect(readdirSync(dir)).toEqual([])
      expect(writer.destroyed).toBe(true)
      expect(received).toEqual([])
    },
  )

  it('stash() stores what the schema outputs, which unstash() then accepts', async () => {
    const file = join(tempDir(), 'app.store')
    const schema = settingsSchema()
    await stash({ file, key: 'k', thing: { port: 80, host: 'h' }, schema })
    expect(await unstash({ file, key: 'k' })).toEqual({ port: 80, host: 'h', checked: true })
    expect(await unstash({ file, key: 'k', schema })).toEqual({ port: 80, host: 'h', checked: true })
  })

  it('runs defaults through the schema too', async () => {
    const file = join(tempDir(), 'none.store')
    const schema = settingsSchema()
    expect(await unstash({ file, key: 'k', schema, defaults: { port: 1, host: 'x' } })).toEqual({
      port: 1,
      host: 'x',
      checked: true,
    })
  })
})

describe('default location', () => {
  it.runIf(process.platform === 'linux')(
    'puts the file in $XDG_CONFIG_HOME/<name>/ on Linux',
    async () => {
      const config = tempDir()
      const saved = process.env.XDG_CONFIG_HOME
      process.env.XDG_CONFIG_HOME = config
      try {
        const expected = join(config, 'my-app', 'config.anystore')
        expect(defaultStashFile('my-app')).toBe(expected)
        await stash({ name: 'my-app', key: 'settings', thing: { port: 1 } })
        expect(existsSync(expected)).toBe(true)
        expect(await unstash({ name: 'my-app', key: 'settings' })).toEqual({ port: 1 })
        // An explicit file wins over the name.
        const file = join(config, 'explicit.store')
        await stash({ name: 'my-app', file, key: 'settings', thing: 2 })
        expect(await unstash({ file, key: 'settings' })).toBe(2)
        expect(await unstash({ name: 'my-app', key: 'settings' })).toEqual({ port: 1 })
      } finally {
        if (saved === undefined) delete process.env.XDG_CONFIG_HOME
        else process.env.XDG_CONFIG_HOME = saved
      }
    },
  )

  it('refuses a name that is not a safe directory name', () => {
    for (const name of ['', '../etc', 'a/b']) {
      let code: unknown
      try {
        defaultStashFile(name)
      } catch (error) {
        code = (error as { code?: unknown }).code
      }
      expect(code).toBe('ERR_ANYSTORE_INVALID_OPTION')
    }
  })
})

describe('stash() to a file takes the store lock as a store would', () => {
  it('waits at most lockTimeoutMs, in the lock mode given, and writes nothing on timeout', async () => {
    for (const lock of ['flock', 'proper-lockfile'] as const) {
      const file = join(tempDir(), `held-${lock}.db`)
      const holder = spawnFixture('hold-lock.mjs', [file, lock])
      try {
        expect(await nextMessage(holder)).toBe('locked')
        const started = performance.now()
        const error = await rejection(
          stash({ file, key: 'k', thing: 1, lock, lockTimeoutMs: 200 }),
        )
        expect(error.code, lock).toBe('ERR_ANYSTORE_LOCK_TIMEOUT')
        // Far below the 10 s default: the option reached the lock.
        expect(performance.now() - started).toBeLessThan(5000)
      } finally {
        holder.kill('SIGKILL')
        await new Promise((resolve) => holder.once('exit', resolve))
      }
      expect(await unstash({ file, key: 'k', defaults: 'none' })).toBe('none')
    }
  })
})
