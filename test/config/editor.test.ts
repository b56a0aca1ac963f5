import {
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { chooseEditor } from '../../src/config/editor.js'
import { newKey, readFileHeader, stash, unstash } from '../../src/index.js'
import { fixture, requireBuild, runNode, Terminal, tempDir } from '../cli-support.js'

requireBuild()

const terminals: Terminal[] = []
afterEach(() => {
  for (const terminal of terminals.splice(0)) terminal.close()
})

const quote = (text: string) => `'${text.replaceAll("'", `'\\''`)}'`

type Step = { write: string } | { keep: true } | { exit: number } | { wait: true } | { symlink: string }

interface EditRun {
  dir: string
  /** TMPDIR of the editing process: where its temp file must appear and then vanish. */
  tmp: string
  terminal: Terminal
  result(): Promise<{ ok: boolean; value?: string; code?: string }>
  /** What the editor saw on each run: the temp file's path, mode and content. */
  editorRuns(): { file: string; mode: number; content: string }[]
}

function editInTerminal(options: Record<string, unknown>, steps: Step[], dir = tempDir()): EditRun {
  const tmp = join(dir, 'tmp')
  mkdirSync(tmp)
  const stepsFile = join(dir, 'steps.json')
  const log = join(dir, 'editor.log')
  const resultFile = join(dir, 'result.json')
  writeFileSync(stepsFile, JSON.stringify(steps))
  writeFileSync(log, '')
  const command = `${quote(process.execPath)} ${quote(fixture('edit-thing.mjs'))} ${quote(JSON.stringify(options))} ${quote(resultFile)}`
  const terminal = new Terminal(command, {
    EDITOR: `${quote(process.execPath)} ${quote(fixture('fake-editor.mjs'))}`,
    FAKE_EDITOR_STEPS: stepsFile,
    FAKE_EDITOR_LOG: log,
    TMPDIR: tmp,
  })
  terminals.push(terminal)
  return {
    dir,
    tmp,
    terminal,
    async result() {
      expect(await terminal.exitCode()).toBe(0)
      return JSON.parse(readFileSync(resultFile, 'utf8'))
    },
    editorRuns() {
      return readFileSync(log, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line))
    },
  }
}

/** The temp file was private while the editor had it, and nothing is left behind. */
function expectTempFilesGone(run: EditRun): void {
  const runs = run.editorRuns()
  expect(runs.length).toBeGreaterThan(0)
  for (const { file, mode } of runs) {
    expect(file.startsWith(run.tmp)).toBe(true)
    expect(mode).toBe(0o600)
    expect(existsSync(file)).toBe(false)
  }
  expect(readdirSync(run.tmp)).toEqual([])
}

describe('editThing in a terminal, with a scripted editor', () => {
  it('saves valid JSON the editor wrote', async () => {
    const dir = tempDir()
    const file = join(dir, 'app.store')
    const encryptionKey = newKey()
    await stash({ file, key: 'cfg', thing: { port: 80, since: new Date(0) }, encryptionKey })
    const run = editInTerminal(
      { file, key: 'cfg', encryptionKey },
      [
        {
          write:
            '{"port": 8080, "since": {"$anystore": "date", "value": "2001-02-03T00:00:00.000Z"}}',
        },
      ],
      dir,
    )
    expect((await run.result()).ok).toBe(true)
    expect(await unstash({ file, key: 'cfg', encryptionKey })).toEqual({
      port: 8080,
      since: new Date('2001-02-03T00:00:00.000Z'),
    })
    // The editor was shown pretty JSON, with the tagged form for the Date.
    expect(JSON.parse(run.editorRuns()[0]!.content)).toEqual({
      port: 80,
      since: { $anystore: 'date', value: '1970-01-01T00:00:00.000Z' },
    })
    expect(run.editorRuns()[0]!.content).toContain('\n  "port": 80')
    expectTempFilesGone(run)
  })

  it('shows invalid JSON, re-asks on other answers, and lets the user fix it', async () => {
    const dir = tempDir()
    const file = join(dir, 'app.store')
    await stash({ file, key: 'cfg', thing: { port: 80 } })
    const run = editInTerminal(
      { file, key: 'cfg' },
      [{ write: '{"port": 81,' }, { write: '{"port": 8081}' }],
      dir,
    )
    await run.terminal.waitFor(
      /ERR_ANYSTORE_INVALID_JSON|Invalid JSON input[\s\S]*Edit again\? \[Y\/n\]/,
    )
    run.terminal.type('maybe')
    run.terminal.send('Enter')
    await run.terminal.waitFor(/Edit again\? \[Y\/n\] maybe\s+Edit again\? \[Y\/n\]/)
    run.terminal.type('y')
    run.terminal.send('Enter')
    expect((await run.result()).ok).toBe(true)
    expect(await unstash({ file, key: 'cfg' })).toEqual({ port: 8081 })
    // The second run started from the text the user had written, not from scratch.
    expect(run.editorRuns().map((r) => r.content)).toEqual(['{\n  "port": 80\n}\n', '{"port": 81,'])
    expectTempFilesGone(run)
  })

  it('shows schema issues and saves nothing when the user declines to edit again', async () => {
    const dir = tempDir()
    const file = join(dir, 'app.store')
    await stash({ file, key: 'cfg', thing: { port: 80 } })
    const before = readFileHeader(file).header.commitId
    const run = editInTerminal(
      { file, key: 'cfg', schema: 'port' },
      [{ write: '{"port": 0}' }],
      dir,
    )
    await run.terminal.waitFor(
      /port: port must be an integer from 1 to 65535[\s\S]*Edit again\? \[Y\/n\]/,
    )
    run.terminal.type('n')
    run.terminal.send('Enter')
    expect(await run.result()).toMatchObject({ ok: false, code: 'ERR_ANYSTORE_EDIT_ABORTED' })
    expect(readFileHeader(file).header.commitId.equals(before)).toBe(true)
    expectTempFilesGone(run)
  })

  it('returns the schema output once the edit passes', async () => {
    const dir = tempDir()
    const file = join(dir, 'app.store')
    const run = editInTerminal(
      { file, key: 'cfg', schema: 'port', defaults: { port: 1 } },
      [{ write: '{"port": 2}' }],
      dir,
    )
    expect((await run.result()).ok).toBe(true)
    expect(await unstash({ file, key: 'cfg' })).toEqual({ port: 2, checked: true })
  })

  it('saves nothing when the editor exits with an error', async () => {
    const dir = tempDir()
    const file = join(dir, 'app.store')
    await stash({ file, key: 'cfg', thing: { port: 80 } })
    const run = editInTerminal({ file, key: 'cfg' }, [{ exit: 3 }], dir)
    expect(await run.result()).toMatchObject({ ok: false, code: 'ERR_ANYSTORE_EDIT_ABORTED' })
    expect(await unstash({ file, key: 'cfg' })).toEqual({ port: 80 })
    expectTempFilesGone(run)
  })

  it('saves nothing when the temp file was replaced by a symbolic link', async () => {
    const dir = tempDir()
    const file = join(dir, 'app.store')
    await stash({ file, key: 'cfg', thing: { port: 80 } })
    // Valid JSON, so following the link would store it.
    const elsewhere = join(dir, 'elsewhere.json')
    writeFileSync(elsewhere, '{"port": 6666}')
    const run = editInTerminal({ file, key: 'cfg' }, [{ symlink: elsewhere }], dir)
    expect(await run.result()).toMatchObject({ ok: false, code: 'ERR_ANYSTORE_EDIT_ABORTED' })
    expect(await unstash({ file, key: 'cfg' })).toEqual({ port: 80 })
    expect(readFileSync(elsewhere, 'utf8')).toBe('{"port": 6666}')
    expectTempFilesGone(run)
  })

  it('saves nothing on Ctrl-C while the editor is open', async () => {
    const dir = tempDir()
    const file = join(dir, 'app.store')
    await stash({ file, key: 'cfg', thing: { port: 80 } })
    const run = editInTerminal({ file, key: 'cfg' }, [{ wait: true }], dir)
    await run.terminal.waitFor(/editor waiting/)
    run.terminal.send('C-c')
    expect(await run.result()).toMatchObject({ ok: false, code: 'ERR_ANYSTORE_EDIT_ABORTED' })
    expect(await unstash({ file, key: 'cfg' })).toEqual({ port: 80 })
    expectTempFilesGone(run)
  })

  it('saves nothing and cleans up when the process gets SIGTERM while the editor is open', async () => {
    const dir = tempDir()
    const file = join(dir, 'app.store')
    await stash({ file, key: 'cfg', thing: { port: 80 } })
    const run = editInTerminal({ file, key: 'cfg' }, [{ wait: true }], dir)
    await run.terminal.waitFor(/editor waiting/)
    process.kill(Number(readFileSync(join(dir, 'result.json.pid'), 'utf8')), 'SIGTERM')
    expect(await run.result()).toMatchObject({ ok: false, code: 'ERR_ANYSTORE_EDIT_ABORTED' })
    expect(await unstash({ file, key: 'cfg' })).toEqual({ port: 80 })
    expectTempFilesGone(run)
  })

  it('saves nothing on Ctrl-C at the Edit again prompt', async () => {
    const dir = tempDir()
    const file = join(dir, 'app.store')
    await stash({ file, key: 'cfg', thing: { port: 80 } })
    const run = editInTerminal({ file, key: 'cfg' }, [{ write: 'nope' }], dir)
    await run.terminal.waitFor(/Edit again\? \[Y\/n\]/)
    run.terminal.send('C-c')
    expect(await run.result()).toMatchObject({ ok: false, code: 'ERR_ANYSTORE_EDIT_ABORTED' })
    expect(await unstash({ file, key: 'cfg' })).toEqual({ port: 80 })
    expectTempFilesGone(run)
  })

  it('does not commit when the text is left as it was', async () => {
    const dir = tempDir()
    const file = join(dir, 'app.store')
    await stash({ file, key: 'cfg', thing: { port: 80 } })
    const before = readFileHeader(file).header.commitId
    const run = editInTerminal({ file, key: 'cfg' }, [{ keep: true }], dir)
    expect((await run.result()).ok).toBe(true)
    expect(readFileHeader(file).header.commitId.equals(before)).toBe(true)
  })

  it('fails with ThingNotFoundError before opening the editor when there is nothing and no defaults', async () => {
    const dir = tempDir()
    const file = join(dir, 'app.store')
    const missing = editInTerminal({ file, key: 'cfg' }, [{ keep: true }], dir)
    expect(await missing.result()).toMatchObject({
      ok: false,
      code: 'ERR_ANYSTORE_THING_NOT_FOUND',
    })
    expect(missing.editorRuns()).toEqual([])
  })

  it('edits from a reader into a writer', async () => {
    const dir = tempDir()
    const source = join(dir, 'in.stash')
    const target = join(dir, 'out.stash')
    await stash({ writer: createWriteStream(source), key: 'cfg', thing: { port: 80 } })
    const run = editInTerminal(
      { readerPath: source, writerPath: target, key: 'cfg' },
      [{ write: '{"port": 443}' }],
      dir,
    )
    expect((await run.result()).ok).toBe(true)
    expect(await unstash({ reader: createReadStream(target), key: 'cfg' })).toEqual({ port: 443 })
  })
})

describe('editThing without a terminal', () => {
  it('throws NotATerminalError when stdin is not a TTY, leaving no temp file', async () => {
    const dir = tempDir()
    const tmp = join(dir, 'tmp')
    mkdirSync(tmp)
    const file = join(dir, 'app.store')
    await stash({ file, key: 'cfg', thing: { port: 80 } })
    const resultFile = join(dir, 'result.json')
    const result = await runNode(
      [fixture('edit-thing.mjs'), JSON.stringify({ file, key: 'cfg' }), resultFile],
      { env: { EDITOR: 'true', TMPDIR: tmp } },
    )
    expect(result.code).toBe(0)
    expect(JSON.parse(readFileSync(resultFile, 'utf8'))).toMatchObject({
      ok: false,
      code: 'ERR_ANYSTORE_NOT_A_TERMINAL',
    })
    expect(readdirSync(tmp)).toEqual([])
  })
})

describe('editThing with vim in a real terminal', () => {
  it('saves what is typed in vim', async () => {
    const dir = tempDir()
    const file = join(dir, 'app.store')
    await stash({ file, key: 'cfg', thing: { host: 'localhost', port: 80 } })
    const resultFile = join(dir, 'result.json')
    const terminal = new Terminal(
      `${quote(process.execPath)} ${quote(fixture('edit-thing.mjs'))} ${quote(JSON.stringify({ file, key: 'cfg' }))} ${quote(resultFile)}`,
      { EDITOR: 'vim -u NONE -i NONE -N -n' },
    )
    terminals.push(terminal)
    await terminal.waitFor(/"port": 80/)
    terminal.type(':%s/80/8080/')
    terminal.send('Enter')
    terminal.type(':wq')
    terminal.send('Enter')
    expect(await terminal.exitCode()).toBe(0)
    expect(JSON.parse(readFileSync(resultFile, 'utf8')).ok).toBe(true)
    expect(await unstash({ file, key: 'cfg' })).toEqual({ host: 'localhost', port: 8080 })
  })
})

describe('Ctrl-C inside vim', () => {
  it('is vim’s to handle: leaving insert mode with Ctrl-C and then :wq saves', async () => {
    const dir = tempDir()
    const file = join(dir, 'app.store')
    await stash({ file, key: 'cfg', thing: { note: 'a' } })
    const resultFile = join(dir, 'result.json')
    const terminal = new Terminal(
      `${quote(process.execPath)} ${quote(fixture('edit-thing.mjs'))} ${quote(JSON.stringify({ file, key: 'cfg' }))} ${quote(resultFile)}`,
      { EDITOR: 'vim -u NONE -i NONE -N -n' },
    )
    terminals.push(terminal)
    await terminal.waitFor(/"note": "a"/)
    terminal.type('/a"')
    terminal.send('Enter')
    terminal.type('a')
    terminal.type('bc')
    terminal.send('C-c')
    terminal.type(':wq')
    terminal.send('Enter')
    expect(await terminal.exitCode()).toBe(0)
    expect(JSON.parse(readFileSync(resultFile, 'utf8')).ok).toBe(true)
    expect(await unstash({ file, key: 'cfg' })).toEqual({ note: 'abc' })
  })
})

describe('chooseEditor', () => {
  it('prefers $VISUAL, then $EDITOR, then the given editor', () => {
    const saved = { VISUAL: process.env.VISUAL, EDITOR: process.env.EDITOR }
    try {
      process.env.VISUAL = 'v'
      process.env.EDITOR = 'e'
      expect(chooseEditor('g')).toBe('v')
      delete process.env.VISUAL
      expect(chooseEditor('g')).toBe('e')
      delete process.env.EDITOR
      expect(chooseEditor('g')).toBe('g')
      expect(['vim', 'vi', 'nano']).toContain(chooseEditor())
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name]
        else process.env[name] = value
      }
    }
  })
})
