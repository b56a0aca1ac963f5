import { spawn, spawnSync } from 'node:child_process'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { encodeValue } from '../../src/format/codec.js'
import { EXIT_CODES } from '../../src/cli/exit-codes.js'
import { AnyStore, DEFAULT_ENCRYPTION_KEY, newKey, readFileHeader } from '../../src/index.js'
import { CLI, fixture, ROOT, requireBuild, runCli, Terminal, tempDir } from '../cli-support.js'

requireBuild()

const terminals: Terminal[] = []
afterEach(() => {
  for (const terminal of terminals.splice(0)) terminal.close()
})

const quote = (text: string) => `'${text.replaceAll("'", `'\\''`)}'`

/** Library wording a CLI user cannot act on: option names and function calls. */
const LIBRARY_WORDING = /encryptionKey|lockTimeoutMs|maxFileSize|`defaults`|`editor`|\w\(\)/

interface Fixture {
  dir: string
  file: string
  key: string
  keyFile: string
}

function setup(): Fixture {
  const dir = tempDir()
  const key = newKey()
  const keyFile = join(dir, 'store.key')
  writeFileSync(keyFile, `${key}\n`, { mode: 0o600 })
  return { dir, file: join(dir, 'app.store'), key, keyFile }
}

async function fill(f: Fixture, entries: Iterable<[string | number, unknown]>, compress = false) {
  const store = await AnyStore.open({ file: f.file, encryptionKey: f.key, compress })
  await store.run(async (tx) => {
    for (const [key, value] of entries) await tx.set(key, value)
  })
  await store.close()
}

/**
 * Starts a process that holds the store's lock for `holdMs`, then commits b = 2. Resolves once
 * the lock is held, with a promise of the holder's exit.
 */
async function holdLock(f: Fixture, holdMs: number): Promise<{ exited: Promise<unknown> }> {
  const holder = spawn(
    process.execPath,
    [fixture('cli-hold-lock.mjs'), f.file, f.key, String(holdMs), 'b', '2'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  const exited = new Promise((resolve) => holder.on('exit', resolve))
  await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()))
  // Wrapped: an async function returning the promise itself would wait for it.
  return { exited }
}

async function entriesOf(file: string, key: string): Promise<[string | number, unknown][]> {
  const store = await AnyStore.open({ file, encryptionKey: key })
  try {
    return await store.entries()
  } finally {
    await store.close()
  }
}

/** Exact equality as the store sees it (the codec's bytes tell -0 from 0, Buffer from Uint8Array). */
function expectSameEntries(
  actual: [string | number, unknown][],
  expected: [string | number, unknown][],
) {
  expect(actual.map(([k]) => k)).toEqual(expected.map(([k]) => k))
  actual.forEach(([, value], i) => {
    expect(Buffer.from(encodeValue(value)).equals(Buffer.from(encodeValue(expected[i]![1])))).toBe(
      true,
    )
  })
}

const everyType: [string | number, unknown][] = [
  ['string', 'héllo\nworld'],
  ['numbers', [0, -0, 1.5, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]],
  ['bigint', -123456789012345678901234567890n],
  ['dates', [new Date(1_700_000_000_000), new Date(Number.NaN)]],
  [
    'map',
    new Map<unknown, unknown>([
      [{ a: 1 }, new Set([1n])],
      ['k', undefined],
    ]),
  ],
  ['bytes', Uint8Array.of(0, 1, 255)],
  ['buffer', Buffer.from('buf')],
  ['undefined', undefined],
  ['nested', { list: [null, true, { deep: [undefined] }], $anystore: 'looks like a tag' }],
  ['__proto__', 'a store key named __proto__'],
  ['$anystore', 'a store key named $anystore'],
  [42, 'a number key'],
  ['42', 'a string key that looks like a number'],
]

describe('anystore CLI: basics', () => {
  it('newkey prints a fresh 256-bit base64 key', async () => {
    const a = await runCli(['newkey'])
    const b = await runCli(['newkey'])
    expect(a.code).toBe(0)
    expect(a.stdout).toMatch(/^[A-Za-z0-9+/]{43}\n$/)
    expect(Buffer.from(a.stdout.trim(), 'base64').length).toBe(32)
    expect(a.stdout).not.toBe(b.stdout)
  })

  it('set and get strings, JSON with tagged types, stdin, and number keys', async () => {
    const f = setup()
    const k = ['--key-file', f.keyFile]
    expect((await runCli(['set', f.file, 'greeting', 'hello world', ...k])).code).toBe(0)
    expect((await runCli(['get', f.file, 'greeting', ...k])).stdout).toBe('"hello world"\n')
    expect((await runCli(['get', f.file, 'greeting', '--raw', ...k])).stdout).toBe('hello world\n')

    const json = '{"n": {"$anystore": "bigint", "value": "18446744073709551617"}, "list": [1, 2]}'
    expect((await runCli(['set', f.file, 'obj', json, '--json', ...k])).code).toBe(0)
    expect(await entriesOf(f.file, f.key)).toContainEqual([
      'obj',
      { n: 18446744073709551617n, list: [1, 2] },
    ])
    const pretty = await runCli(['get', f.file, 'obj', '--pretty', ...k])
    expect(JSON.parse(pretty.stdout)).toEqual(JSON.parse(json))
    expect(pretty.stdout).toContain('\n  "list"')

    expect(
      (await runCli(['set', f.file, 'pem', '-', ...k], { input: 'line 1\nline 2\n' })).code,
    ).toBe(0)
    expect((await runCli(['get', f.file, 'pem', '--raw', ...k])).stdout).toBe('line 1\nline 2\n\n')
    expect(
      (await runCli(['set', f.file, 'fromstdin', '-', '--json', ...k], { input: '[true]' })).code,
    ).toBe(0)

    expect((await runCli(['set', f.file, '7', 'number', '--number', ...k])).code).toBe(0)
    expect((await runCli(['set', f.file, '7', 'string', ...k])).code).toBe(0)
    expect((await runCli(['get', f.file, '7', '--number', '--raw', ...k])).stdout).toBe('number\n')
    expect((await runCli(['get', f.file, '7', '--raw', ...k])).stdout).toBe('string\n')
    expect((await runCli(['keys', f.file, '--json', ...k])).stdout).toBe(
      '["greeting","obj","pem","fromstdin",7,"7"]\n',
    )
    expect((await runCli(['keys', f.file, ...k])).stdout).toBe(
      'greeting\nobj\npem\nfromstdin\n7\n7\n',
    )
    expect((await runCli(['size', f.file, ...k])).stdout).toBe('6\n')
  })

  it('delete removes a key and exits 3 when there was none', async () => {
    const f = setup()
    await fill(f, [
      ['a', 1],
      ['b', 2],
    ])
    const k = ['--key-file', f.keyFile]
    expect((await runCli(['delete', f.file, 'a', ...k])).code).toBe(0)
    expect((await runCli(['delete', f.file, 'a', ...k])).code).toBe(
      EXIT_CODES.ERR_ANYSTORE_THING_NOT_FOUND,
    )
    expect(await entriesOf(f.file, f.key)).toEqual([['b', 2]])
  })

  it('keeps the file compressed when it was', async () => {
    const f = setup()
    await fill(f, [['a', 'x'.repeat(1000)]], true)
    expect((await runCli(['set', f.file, 'b', 'y', '--key-file', f.keyFile])).code).toBe(0)
    expect(readFileHeader(f.file).header.flags & 1).toBe(1)
  })
})

describe('anystore CLI: keys', () => {
  it('takes the key from --key-file, else ANYSTORE_KEY, else the default key with a warning', async () => {
    const f = setup()
    await fill(f, [['a', 1]])
    const fromFile = await runCli(['get', f.file, 'a', '--key-file', f.keyFile], {
      env: { ANYSTORE_KEY: newKey() },
    })
    expect(fromFile).toMatchObject({ code: 0, stdout: '1\n', stderr: '' })
    const fromEnv = await runCli(['get', f.file, 'a'], { env: { ANYSTORE_KEY: f.key } })
    expect(fromEnv).toMatchObject({ code: 0, stdout: '1\n', stderr: '' })

    const other = join(f.dir, 'default.store')
    const store = await AnyStore.open({ file: other })
    await store.set('a', 2)
    await store.close()
    const byDefault = await runCli(['get', other, 'a'])
    expect(byDefault.code).toBe(0)
    expect(byDefault.stdout).toBe('2\n')
    expect(byDefault.stderr).toMatch(/warning/)
  })

  it('exits 5 on the wrong key, 9 on an invalid key and 2 on an unreadable key file', async () => {
    const f = setup()
    await fill(f, [['a', 1]])
    expect((await runCli(['get', f.file, 'a'], { env: { ANYSTORE_KEY: newKey() } })).code).toBe(
      EXIT_CODES.ERR_ANYSTORE_WRONG_KEY,
    )
    expect((await runCli(['get', f.file, 'a'], { env: { ANYSTORE_KEY: 'c2hvcnQ=' } })).code).toBe(
      EXIT_CODES.ERR_ANYSTORE_INVALID_KEY,
    )
    expect((await runCli(['get', f.file, 'a', '--key-file', join(f.dir, 'nope')])).code).toBe(
      EXIT_CODES.USAGE,
    )
  })
})

describe('anystore CLI: messages name flags and commands, not library options', () => {
  it('an invalid key names where it came from and `anystore newkey`', async () => {
    const f = setup()
    await fill(f, [['a', 1]])
    const short = join(f.dir, 'short.key')
    writeFileSync(short, 'c2hvcnQ=\n')
    const hint = 'must be base64 of 16, 24 or 32 bytes, got 5 bytes: `anystore newkey` makes one'
    const cases: [string[], Record<string, string>, string][] = [
      [['get', f.file, 'a'], { ANYSTORE_KEY: 'c2hvcnQ=' }, 'The key in $ANYSTORE_KEY'],
      [['get', f.file, 'a', '--key-file', short], {}, `The key in --key-file ${short}`],
      [['set', f.file, 'a', '2', '--key-file', short], {}, `The key in --key-file ${short}`],
      [['info', f.file, '--key-file', short], {}, `The key in --key-file ${short}`],
      [
        ['rekey', f.file, '--key-file', f.keyFile, '--new-key-file', short],
        {},
        `The key in --new-key-file ${short}`,
      ],
      [
        ['rekey', f.file, '--key-file', short, '--new-key-file', f.keyFile],
        {},
        `The key in --key-file ${short}`,
      ],
    ]
    for (const [args, env, source] of cases) {
      const result = await runCli(args, { env })
      expect({ args, code: result.code }).toEqual({
        args,
        code: EXIT_CODES.ERR_ANYSTORE_INVALID_KEY,
      })
      expect(result.stderr).toContain(`anystore: ERR_ANYSTORE_INVALID_KEY: ${source} ${hint}\n`)
      expect(result.stderr).not.toMatch(LIBRARY_WORDING)
    }
    expect(await entriesOf(f.file, f.key)).toEqual([['a', 1]])
  })

  it('a file over the size limit is reported without the library option', async () => {
    const f = setup()
    await fill(f, [['a', 1]])
    // Sparse: takes no disk space, but its size is over the 1 GiB limit.
    truncateSync(f.file, 1100 * 1024 * 1024)
    const result = await runCli(['size', f.file, '--key-file', f.keyFile])
    expect(result.code).toBe(EXIT_CODES.ERR_ANYSTORE_FILE_TOO_LARGE)
    expect(result.stderr).toBe(
      `anystore: ERR_ANYSTORE_FILE_TOO_LARGE: ${f.file} is 1153433600 bytes, over the limit of 1073741824 bytes that the anystore command opens (a guard against hostile files)\n`,
    )
  })
})

describe('anystore CLI: exit codes', () => {
  it('exits 3 for a missing key and 4 for a missing file, creating nothing', async () => {
    const f = setup()
    await fill(f, [['a', 1]])
    const missingKey = await runCli(['get', f.file, 'b', '--key-file', f.keyFile])
    expect(missingKey.code).toBe(EXIT_CODES.ERR_ANYSTORE_THING_NOT_FOUND)
    expect(missingKey.stderr).toBe(
      `anystore: ERR_ANYSTORE_THING_NOT_FOUND: Nothing is stored under the key "b" in ${f.file}: \`anystore keys ${f.file}\` lists the keys\n`,
    )
    const missingNumber = await runCli(['delete', f.file, '7', '--number', '--key-file', f.keyFile])
    expect(missingNumber.code).toBe(EXIT_CODES.ERR_ANYSTORE_THING_NOT_FOUND)
    expect(missingNumber.stderr).not.toMatch(LIBRARY_WORDING)
    const nowhere = join(f.dir, 'sub', 'none.store')
    for (const command of ['get', 'keys', 'size', 'dump', 'verify', 'info', 'delete', 'rekey']) {
      const args =
        command === 'get' || command === 'delete'
          ? [command, nowhere, 'a']
          : command === 'rekey'
            ? [command, nowhere, '--new-key-file', f.keyFile]
            : [command, nowhere]
      const result = await runCli([...args, '--key-file', f.keyFile])
      expect({ command, code: result.code }).toEqual({
        command,
        code: EXIT_CODES.ERR_ANYSTORE_FILE_NOT_FOUND,
      })
    }
    expect(existsSync(join(f.dir, 'sub'))).toBe(false)
  })

  it('exits 6 for a corrupt file, 7 for a foreign file, 8 for a newer format', async () => {
    const f = setup()
    await fill(f, [['a', 'some value']])
    const k = ['--key-file', f.keyFile]
    const bytes = readFileSync(f.file)
    const corrupt = Buffer.from(bytes)
    corrupt[bytes.length - 20]! ^= 0x01
    writeFileSync(f.file, corrupt)
    expect((await runCli(['verify', f.file, ...k])).code).toBe(EXIT_CODES.ERR_ANYSTORE_CORRUPT_FILE)
    expect((await runCli(['get', f.file, 'a', ...k])).code).toBe(
      EXIT_CODES.ERR_ANYSTORE_CORRUPT_FILE,
    )

    writeFileSync(f.file, 'just some text, long enough to hold a header and a tag... '.repeat(3))
    expect((await runCli(['verify', f.file, ...k])).code).toBe(
      EXIT_CODES.ERR_ANYSTORE_NOT_ANYSTORE_FILE,
    )
    expect((await runCli(['info', f.file])).code).toBe(EXIT_CODES.ERR_ANYSTORE_NOT_ANYSTORE_FILE)

    const newer = Buffer.from(bytes)
    newer.writeUInt16BE(4, 8)
    writeFileSync(f.file, newer)
    expect((await runCli(['verify', f.file, ...k])).code).toBe(
      EXIT_CODES.ERR_ANYSTORE_UNSUPPORTED_FORMAT,
    )
    expect((await runCli(['info', f.file])).code).toBe(EXIT_CODES.ERR_ANYSTORE_UNSUPPORTED_FORMAT)
  })

  it('exits 10 when another process holds the lock past --lock-timeout', async () => {
    const f = setup()
    await fill(f, [['a', 1]])
    const { exited } = await holdLock(f, 3000)
    const result = await runCli([
      'set',
      f.file,
      'c',
      '3',
      '--key-file',
      f.keyFile,
      '--lock-timeout',
      '200',
    ])
    expect(result.code).toBe(EXIT_CODES.ERR_ANYSTORE_LOCK_TIMEOUT)
    expect(result.stderr).toMatch(
      /^anystore: ERR_ANYSTORE_LOCK_TIMEOUT: Could not lock .* within 200 ms .*: another process holds it; raise --lock-timeout MS or find the holder\n$/,
    )
    expect(await exited).toBe(0)
  })

  it('--lock chooses the lock mode: exits 21 when another process holds the other mode', async () => {
    const f = setup()
    await fill(f, [['a', 1]])
    const k = ['--key-file', f.keyFile]
    expect((await runCli(['set', f.file, 'c', '3', ...k, '--lock', 'sometimes'])).code).toBe(
      EXIT_CODES.USAGE,
    )
    // The holder uses flock (the default where fs-ext loads).
    const { exited } = await holdLock(f, 3000)
    const mixed = await runCli(['set', f.file, 'c', '3', ...k, '--lock', 'proper-lockfile'])
    expect(mixed.code).toBe(EXIT_CODES.ERR_ANYSTORE_LOCK_MODE_MISMATCH)
    expect(mixed.stderr).toContain('ERR_ANYSTORE_LOCK_MODE_MISMATCH')
    expect(await exited).toBe(0)
    // Once no flock user holds the lock, the same command succeeds.
    expect((await runCli(['set', f.file, 'c', '3', ...k, '--lock', 'proper-lockfile'])).code).toBe(0)
    expect(await entriesOf(f.file, f.key)).toEqual([
      ['a', 1],
      ['b', 2],
      ['c', '3'],
    ])
  })

  it('exits 12 for a value the store cannot hold, 13 for invalid JSON, 18 for a directory', async () => {
    const f = setup()
    const k = ['--key-file', f.keyFile]
    const deep = `${'['.repeat(150)}${']'.repeat(150)}`
    expect((await runCli(['set', f.file, 'a', deep, '--json', ...k])).code).toBe(
      EXIT_CODES.ERR_ANYSTORE_UNSUPPORTED_VALUE,
    )
    expect((await runCli(['set', f.file, 'a', '{oops', '--json', ...k])).code).toBe(
      EXIT_CODES.ERR_ANYSTORE_INVALID_JSON,
    )
    expect((await runCli(['set', f.dir, 'a', 'x', ...k])).code).toBe(
      EXIT_CODES.ERR_ANYSTORE_INVALID_PATH,
    )
  })

  it('exits 2 on usage errors', async () => {
    for (const args of [
      [],
      ['frobnicate'],
      ['get'],
      ['get', 'f'],
      ['get', 'f', 'k', 'extra'],
      ['keys', 'f', '--bogus'],
      ['rekey', 'f'],
      ['help', 'nope'],
    ]) {
      const result = await runCli(args)
      expect({ args, code: result.code }).toEqual({ args, code: EXIT_CODES.USAGE })
    }
  })

  it('names an unknown option with balanced quotes, then the command help', async () => {
    const result = await runCli(['set', 'f', 'k', '-x'])
    expect(result.code).toBe(EXIT_CODES.USAGE)
    const [first, blank, usage] = result.stderr.split('\n')
    expect(first).toBe(
      "anystore: Unknown option '-x'. To pass an argument that starts with '-', put it after '--' and any options (as in: -- -x)",
    )
    expect({ blank, usage }).toEqual({
      blank: '',
      usage: 'Usage: anystore set FILE KEY VALUE [options]',
    })
    const long = await runCli(['keys', 'f', '--bogus=1'])
    expect(long.stderr.split('\n')[0]).toBe(
      "anystore: Unknown option '--bogus'. To pass an argument that starts with '-', put it after '--' and any options (as in: -- --bogus=1)",
    )
  })

  it('documents every exit code in the README', () => {
    const doc = readFileSync(join(ROOT, 'README.md'), 'utf8')
    const table = new Map<string, number>()
    for (const match of doc.matchAll(/^\|\s*(\d+)\s*\|\s*`([A-Z_]+)`\s*\|/gm))
      table.set(match[2]!, Number(match[1]))
    expect(Object.fromEntries(table)).toEqual({ ...EXIT_CODES })
  })
})

describe('anystore CLI: help', () => {
  const commands = [
    'newkey',
    'get',
    'set',
    'delete',
    'keys',
    'size',
    'dump',
    'import',
    'edit',
    'rekey',
    'restore',
    'info',
    'verify',
  ]

  it.each(commands)('%s --help prints its usage and exits 0', async (command) => {
    const result = await runCli([command, '--help'])
    expect(result.code).toBe(0)
    expect(result.stdout.startsWith(`Usage: anystore ${command}`)).toBe(true)
    expect((await runCli(['help', command])).stdout).toBe(result.stdout)
  })

  it('--help lists every command and the exit codes', async () => {
    const result = await runCli(['--help'])
    expect(result.code).toBe(0)
    for (const command of commands) expect(result.stdout).toContain(`anystore ${command}`)
    expect(result.stdout).toContain('ERR_ANYSTORE_WRONG_KEY')
  })

  it('is wired as the package bin, with a shebang', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
    expect(join(ROOT, pkg.bin.anystore)).toBe(CLI)
    expect(readFileSync(CLI, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true)
  })
})

describe('anystore CLI: dump and import', () => {
  it('dump | import round-trips every type exactly, into a store with another key', async () => {
    const f = setup()
    await fill(f, everyType)
    const dump = await runCli(['dump', f.file, '--key-file', f.keyFile])
    expect(dump.code).toBe(0)
    expect(JSON.parse(dump.stdout).$anystore).toBe('entries')
    const target = join(f.dir, 'copy.store')
    const otherKey = newKey()
    const imported = await runCli(['import', target], {
      input: dump.stdout,
      env: { ANYSTORE_KEY: otherKey },
    })
    expect(imported).toMatchObject({ code: 0, stderr: '' })
    expectSameEntries(await entriesOf(target, otherKey), everyType)
    // And the dump of the copy is the same text.
    expect((await runCli(['dump', target], { env: { ANYSTORE_KEY: otherKey } })).stdout).toBe(
      dump.stdout,
    )
  })

  it('dumps string keys as a plain object, one entry per line', async () => {
    const f = setup()
    await fill(f, [
      ['a', 1],
      ['b', { c: [1n] }],
    ])
    const dump = await runCli(['dump', f.file, '--key-file', f.keyFile])
    expect(dump.stdout).toBe('{\n  "a": 1,\n  "b": {"c":[{"$anystore":"bigint","value":"1"}]}\n}\n')
    expect(
      (await runCli(['import', f.file, '{}', '--replace', '--key-file', f.keyFile])).code,
    ).toBe(0)
    expect((await runCli(['dump', f.file, '--key-file', f.keyFile])).stdout).toBe('{}\n')
  })

  it('merges into what is there, or replaces it with --replace', async () => {
    const f = setup()
    await fill(f, [
      ['keep', 1],
      ['change', 2],
    ])
    const k = ['--key-file', f.keyFile]
    expect((await runCli(['import', f.file, '{"change": 3, "new": 4}', ...k])).code).toBe(0)
    expect(await entriesOf(f.file, f.key)).toEqual([
      ['keep', 1],
      ['change', 3],
      ['new', 4],
    ])
    expect(
      (await runCli(['import', f.file, '-', '--replace', ...k], { input: '{"only": 5}' })).code,
    ).toBe(0)
    expect(await entriesOf(f.file, f.key)).toEqual([['only', 5]])
  })

  it('import reads JSON text, a file, or stdin; a missing file is a usage error', async () => {
    const f = setup()
    const k = ['--key-file', f.keyFile]
    const backup = join(f.dir, 'backup.json')
    writeFileSync(backup, '{"from": "file"}\n')
    expect(await runCli(['import', f.file, backup, ...k])).toMatchObject({ code: 0, stderr: '' })
    expect(await entriesOf(f.file, f.key)).toEqual([['from', 'file']])
    // Leading whitespace before the `{` still means JSON text.
    expect((await runCli(['import', f.file, '\n  {"from": "text"}', ...k])).code).toBe(0)
    expect(await entriesOf(f.file, f.key)).toEqual([['from', 'text']])
    expect((await runCli(['import', f.file, ...k], { input: '{"from": "stdin"}' })).code).toBe(0)
    expect(await entriesOf(f.file, f.key)).toEqual([['from', 'stdin']])

    const other = join(f.dir, 'other.store')
    const missing = join(f.dir, 'nope.json')
    const result = await runCli(['import', other, missing, ...k])
    expect(result.code).toBe(EXIT_CODES.USAGE)
    expect(result.stderr).toMatch(
      new RegExp(`^anystore: Cannot read the JSON file ${missing}: ENOENT: no such file or directory`),
    )
    expect(existsSync(other)).toBe(false)
  })

  it('writes nothing when any entry is bad', async () => {
    const f = setup()
    await fill(f, [['a', 1]])
    const before = readFileHeader(f.file).header.commitId
    const k = ['--key-file', f.keyFile]
    const deep = `${'['.repeat(150)}${']'.repeat(150)}`
    expect((await runCli(['import', f.file, `{"b": 2, "c": ${deep}}`, ...k])).code).toBe(
      EXIT_CODES.ERR_ANYSTORE_UNSUPPORTED_VALUE,
    )
    expect(
      (await runCli(['import', f.file, '{"b": 2, "c": {"__proto__": {"x": 1}}}', ...k])).code,
    ).toBe(EXIT_CODES.ERR_ANYSTORE_INVALID_JSON)
    // An argument not starting with `{` names a file; JSON that is not a store comes on stdin.
    expect((await runCli(['import', f.file, ...k], { input: '[1, 2]' })).code).toBe(
      EXIT_CODES.ERR_ANYSTORE_INVALID_JSON,
    )
    expect(readFileHeader(f.file).header.commitId.equals(before)).toBe(true)
  })

  it('stops quietly when the reader of a dump goes away', async () => {
    const f = setup()
    await fill(
      f,
      Array.from({ length: 20_000 }, (_, i) => [`key-${i}`, 'x'.repeat(50)]),
    )
    const result = spawnSync(
      'bash',
      [
        '-c',
        `set -o pipefail; ${quote(process.execPath)} ${quote(CLI)} dump ${quote(f.file)} | head -c 100 > /dev/null`,
      ],
      {
        env: { ...process.env, ANYSTORE_KEY: f.key },
        encoding: 'utf8',
      },
    )
    expect(result.status).toBe(0)
    expect(result.stderr).toBe('')
  })
})

describe('anystore CLI: rekey, info, verify', () => {
  it('rekey re-encrypts under the new key; the old key then fails', async () => {
    const f = setup()
    await fill(f, everyType)
    const newKeyFile = join(f.dir, 'new.key')
    const next = newKey()
    writeFileSync(newKeyFile, next)
    const result = await runCli([
      'rekey',
      f.file,
      '--key-file',
      f.keyFile,
      '--new-key-file',
      newKeyFile,
    ])
    expect(result).toMatchObject({ code: 0, stdout: `re-encrypted ${everyType.length} entries\n` })
    expectSameEntries(await entriesOf(f.file, next), everyType)
    expect((await runCli(['verify', f.file, '--key-file', f.keyFile])).code).toBe(
      EXIT_CODES.ERR_ANYSTORE_WRONG_KEY,
    )
    expect((await runCli(['verify', f.file, '--key-file', newKeyFile])).code).toBe(0)
  })

  it('restore makes a backup the newest commit; a process that has the store open sees it as one', async () => {
    const f = setup()
    await fill(f, [
      ['a', 1],
      ['b', 2],
    ])
    const backup = join(f.dir, 'backup.store')
    copyFileSync(f.file, backup)
    const open = await AnyStore.open({ file: f.file, encryptionKey: f.key })
    await open.run(async (tx) => {
      await tx.set('a', 10)
      await tx.set('c', 3)
    })
    const before = readFileHeader(f.file).header
    const result = await runCli(['restore', f.file, backup, '--key-file', f.keyFile])
    expect(result).toMatchObject({ code: 0, stdout: `restored 2 entries from ${backup}\n` })
    expect(await open.entries()).toEqual([
      ['a', 1],
      ['b', 2],
    ])
    await open.close()
    const after = readFileHeader(f.file).header
    expect(after.storeId?.equals(before.storeId!)).toBe(true)
    expect(after.counter).toBe(before.counter + 1n)

    // A backup under another key: --backup-key-file; without it, the store's key fails on it.
    const other = setup()
    await fill(other, [['z', true]])
    expect((await runCli(['restore', f.file, other.file, '--key-file', f.keyFile])).code).toBe(
      EXIT_CODES.ERR_ANYSTORE_WRONG_KEY,
    )
    const withBackupKey = await runCli([
      'restore',
      f.file,
      other.file,
      '--key-file',
      f.keyFile,
      '--backup-key-file',
      other.keyFile,
    ])
    expect(withBackupKey.code).toBe(0)
    expect(await entriesOf(f.file, f.key)).toEqual([['z', true]])
    expect((await runCli(['restore', f.file, join(f.dir, 'nope'), '--key-file', f.keyFile])).code).toBe(
      EXIT_CODES.ERR_ANYSTORE_FILE_NOT_FOUND,
    )
  })

  it('rekey waits for the lock and includes the holder’s commit', async () => {
    const f = setup()
    await fill(f, [['a', 1]])
    const { exited } = await holdLock(f, 800)
    const next = newKey()
    const newKeyFile = join(f.dir, 'new.key')
    writeFileSync(newKeyFile, next)
    const result = await runCli([
      'rekey',
      f.file,
      '--key-file',
      f.keyFile,
      '--new-key-file',
      newKeyFile,
    ])
    expect(result.code).toBe(0)
    expect(await exited).toBe(0)
    expect(await entriesOf(f.file, next)).toEqual([
      ['a', 1],
      ['b', 2],
    ])
  })

  it('info reads the header without a key and counts entries with one', async () => {
    const f = setup()
    const before = Date.now()
    await fill(
      f,
      [
        ['a', 1],
        ['b', 2],
      ],
      true,
    )
    const noKey = await runCli(['info', f.file, '--json'])
    expect(noKey.code).toBe(0)
    const info = JSON.parse(noKey.stdout)
    expect(info).toMatchObject({
      file: f.file,
      size: readFileSync(f.file).length,
      formatVersion: 3,
      flags: '0x0001',
      compressed: true,
      keyBytes: 32,
      cipher: 'AES-256-GCM',
      entries: null,
    })
    const commit = Date.parse(info.lastCommit)
    expect(commit).toBeGreaterThanOrEqual(before - 1000)
    expect(commit).toBeLessThanOrEqual(Date.now())
    expect(noKey.stderr).toBe('')

    const withKey = await runCli(['info', f.file, '--key-file', f.keyFile])
    expect(withKey.code).toBe(0)
    expect(withKey.stdout).toMatch(/^entries: +2$/m)
    expect(withKey.stdout).toMatch(/^format version: +3$/m)
    const { header } = readFileHeader(f.file)
    expect(info).toMatchObject({ storeId: header.storeId?.toString('hex'), commitCounter: 1 })
    expect(withKey.stdout).toMatch(new RegExp(`^store id: +${header.storeId?.toString('hex')}$`, 'm'))
    expect(withKey.stdout).toMatch(/^commit number: +1$/m)

    const wrong = await runCli(['info', f.file], { env: { ANYSTORE_KEY: newKey() } })
    expect(wrong.code).toBe(EXIT_CODES.ERR_ANYSTORE_WRONG_KEY)
    expect(wrong.stdout).toMatch(/^format version: +3$/m)
  })

  it('info counts entries of a default-key store without being given a key', async () => {
    const f = setup()
    const store = await AnyStore.open({ file: f.file, encryptionKey: DEFAULT_ENCRYPTION_KEY })
    await store.set('a', 1)
    await store.close()
    expect(JSON.parse((await runCli(['info', f.file, '--json'])).stdout).entries).toBe(1)
  })

  it('verify reports the entry count', async () => {
    const f = setup()
    await fill(f, everyType)
    const result = await runCli(['verify', f.file, '--key-file', f.keyFile])
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(new RegExp(`^ok: ${everyType.length} entries`))
  })
})

describe('anystore CLI in a terminal', () => {
  it('edit FILE KEY edits one value with the editor', async () => {
    const f = setup()
    await fill(f, [
      ['cfg', { port: 80 }],
      ['other', 1],
    ])
    const terminal = new Terminal(
      `${quote(process.execPath)} ${quote(CLI)} edit ${quote(f.file)} cfg`,
      {
        ANYSTORE_KEY: f.key,
        EDITOR: 'vim -u NONE -i NONE -N -n',
      },
    )
    terminals.push(terminal)
    await terminal.waitFor(/"port": 80/)
    terminal.type(':%s/80/443/')
    terminal.send('Enter')
    terminal.type(':wq')
    terminal.send('Enter')
    expect(await terminal.exitCode()).toBe(0)
    expect(await entriesOf(f.file, f.key)).toEqual([
      ['cfg', { port: 443 }],
      ['other', 1],
    ])
  })

  it('edit FILE edits the whole store, keeping what another process changed meanwhile', async () => {
    const f = setup()
    await fill(f, [
      ['a', 1],
      ['b', 2],
      [3, 'three'],
    ])
    const steps = join(f.dir, 'steps.json')
    const log = join(f.dir, 'editor.log')
    writeFileSync(log, '')
    const edited =
      '{"$anystore": "entries", "value": [["a", 10], [3, "three"], ["new", {"$anystore": "set", "value": [1]}]]}'
    writeFileSync(
      steps,
      JSON.stringify([
        {
          set: { file: f.file, encryptionKey: f.key, key: 'concurrent', value: 'kept' },
          write: edited,
        },
      ]),
    )
    const terminal = new Terminal(
      `${quote(process.execPath)} ${quote(CLI)} edit ${quote(f.file)}`,
      {
        ANYSTORE_KEY: f.key,
        EDITOR: `${quote(process.execPath)} ${quote(fixture('fake-editor.mjs'))}`,
        FAKE_EDITOR_STEPS: steps,
        FAKE_EDITOR_LOG: log,
      },
    )
    terminals.push(terminal)
    expect(await terminal.exitCode()).toBe(0)
    const shown = JSON.parse(JSON.parse(readFileSync(log, 'utf8').trim()).content)
    expect(shown).toEqual({
      $anystore: 'entries',
      value: [
        ['a', 1],
        ['b', 2],
        [3, 'three'],
      ],
    })
    expect(await entriesOf(f.file, f.key)).toEqual([
      ['a', 10],
      [3, 'three'],
      ['concurrent', 'kept'],
      ['new', new Set([1])],
    ])
  })

  it('edit without any editor names --editor', async () => {
    const f = setup()
    await fill(f, [['a', 1]])
    // An empty PATH for the CLI only: no vim, vi or nano to fall back on.
    const emptyPath = join(f.dir, 'bin')
    mkdirSync(emptyPath)
    const terminal = new Terminal(
      `env PATH=${quote(emptyPath)} ${quote(process.execPath)} ${quote(CLI)} edit ${quote(f.file)} a`,
      { ANYSTORE_KEY: f.key },
    )
    terminals.push(terminal)
    expect(await terminal.exitCode()).toBe(EXIT_CODES.ERR_ANYSTORE_INVALID_OPTION)
    const screen = terminal.screen()
    expect(screen).toContain(
      'anystore: ERR_ANYSTORE_INVALID_OPTION: No editor found: set $EDITOR (or $VISUAL), or pass --editor CMD',
    )
    expect(screen).not.toMatch(LIBRARY_WORDING)
  })

  it('edit exits 16 without a terminal', async () => {
    const f = setup()
    await fill(f, [['a', 1]])
    const result = await runCli(['edit', f.file, 'a', '--key-file', f.keyFile], {
      env: { EDITOR: 'true' },
    })
    expect(result.code).toBe(EXIT_CODES.ERR_ANYSTORE_NOT_A_TERMINAL)
    expect(result.stderr).toBe(
      'anystore: ERR_ANYSTORE_NOT_A_TERMINAL: Editing needs an interactive terminal, but stdin is not a TTY: run it from a terminal, or use `anystore set` or `anystore import` instead\n',
    )
  })

  it('edit of one key checks --lock and --lock-timeout like every command that writes', async () => {
    const f = setup()
    await fill(f, [['a', 1]])
    for (const flags of [
      ['--lock', 'bogus'],
      ['--lock-timeout', 'soon'],
    ]) {
      const result = await runCli(['edit', f.file, 'a', '--key-file', f.keyFile, ...flags], {
        env: { EDITOR: 'true' },
      })
      expect(result.code, flags.join(' ')).toBe(EXIT_CODES.USAGE)
    }
  })

  it('draws a progress bar on a terminal for large dump, import and rekey, and none when piped', async () => {
    const f = setup()
    const count = 3000
    await fill(
      f,
      Array.from({ length: count }, (_, i) => [`key-${i}`, i]),
    )
    const out = join(f.dir, 'dump.json')
    const copy = join(f.dir, 'copy.store')
    const newKeyFile = join(f.dir, 'new.key')
    writeFileSync(newKeyFile, newKey())
    const node = `${quote(process.execPath)} ${quote(CLI)}`
    const terminal = new Terminal(
      `${node} dump ${quote(f.file)} > ${quote(out)} && ${node} import ${quote(copy)} < ${quote(out)} && ${node} rekey ${quote(copy)} --new-key-file ${quote(newKeyFile)} > /dev/null`,
      { ANYSTORE_KEY: f.key },
    )
    terminals.push(terminal)
    expect(await terminal.exitCode()).toBe(0)
    const screen = terminal.screen()
    for (const label of ['dump', 'import', 'rekey']) {
      expect(screen).toMatch(new RegExp(`${label} \\[#+\\] 100% ${count}/${count}`))
    }
    const piped = await runCli(['dump', f.file, '--key-file', f.keyFile])
    expect(piped.code).toBe(0)
    expect(piped.stderr).toBe('')
    const small = join(f.dir, 'small.store')
    expect(readdirSync(f.dir)).not.toContain('small.store')
    expect((await runCli(['import', small, '{"a":1}', '--key-file', f.keyFile])).stderr).toBe('')
  })
})

describe('a Redis URL whose password holds a bare #', () => {
  it('is refused as a usage error that shows no part of the password, before any connection', async () => {
    const url = 'redis://admin:123#secret@127.0.0.1:1#app'
    for (const args of [['size', url], ['copy', url, join(tempDir(), 'out.store')]]) {
      const result = await runCli(args, { env: { ANYSTORE_KEY: newKey() } })
      expect(result.code, args[0]).toBe(2)
      expect(result.stderr, args[0]).toContain('%23')
      expect(result.stderr + result.stdout, args[0]).not.toContain('secret')
      expect(result.stderr + result.stdout, args[0]).not.toContain('123')
    }
  })
})

describe('copy onto the same file through a link', () => {
  it('is refused as the same store', async () => {
    const dir = tempDir()
    const file = join(dir, 'a.store')
    const key = newKey()
    const store = await AnyStore.open({ file, encryptionKey: key })
    await store.set('k', 1)
    await store.close()
    symlinkSync(file, join(dir, 'link.store'))
    const result = await runCli(['copy', file, join(dir, 'link.store'), '--force'], { env: { ANYSTORE_KEY: key } })
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('the same store')
  })
})
