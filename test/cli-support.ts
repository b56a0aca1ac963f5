import { spawn, spawnSync } from 'node:child_process'
import { existsSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { beforeAll } from 'vitest'

export { tempDir } from './helpers.js'

export const ROOT = new URL('..', import.meta.url).pathname
export const CLI = join(ROOT, 'dist/cli/main.js')
export const fixture = (name: string) => join(ROOT, 'test/fixtures', name)

/** Child-process tests run the built files: fail clearly when they are missing. */
export function requireBuild(): void {
  beforeAll(() => {
    if (!existsSync(CLI)) throw new Error('dist/cli/main.js is missing: run `npm run build` first')
  })
}

export interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Environment for children: no inherited key or editor, so each test sets what it means. */
export function cleanEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env }
  for (const name of ['ANYSTORE_KEY', 'EDITOR', 'VISUAL']) delete env[name]
  for (const [name, value] of Object.entries(extra)) {
    if (value === undefined) delete env[name]
    else env[name] = value
  }
  return env
}

/** Runs `node dist/cli/main.js ...args` with piped stdio (so stdin is not a terminal). */
export function runCli(
  args: string[],
  options: { env?: Record<string, string | undefined>; input?: string | Buffer; cwd?: string } = {},
): Promise<RunResult> {
  return runNode([CLI, ...args], options)
}

export function runNode(
  args: string[],
  options: { env?: Record<string, string | undefined>; input?: string | Buffer; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      env: cleanEnv(options.env),
      cwd: options.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk))
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk))
    child.on('error', reject)
    child.on('close', (code, signal) =>
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    )
    child.stdin.end(options.input ?? '')
  })
}

let sessions = 0

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * A real terminal: a detached tmux server on its own socket, running one shell command in a
 * 200×50 pane. Keys go in with send-keys, the screen comes back with capture-pane.
 */
export class Terminal {
  /** An absolute socket path: the command's TMPDIR must not move the server's socket. */
  readonly socket = join(tmpdir(), `anystore-tmux-${process.pid}-${++sessions}`)

  constructor(command: string, env: Record<string, string | undefined> = {}, cwd = ROOT) {
    // The pane stays open after the command ends, showing its exit status. The trap keeps
    // this wrapper shell alive on Ctrl-C (an interactive shell would not be in the foreground
    // process group); trapped, unlike ignored, signals are reset to default in the command.
    const script = `trap : INT; ${command}; echo "[exit $?]"; exec sleep 600`
    this.#tmux(
      [
        '-f',
        '/dev/null',
        'new-session',
        '-d',
        '-s',
        'main',
        '-x',
        '200',
        '-y',
        '50',
        '-c',
        cwd,
        'sh',
        '-c',
        script,
      ],
      cleanEnv(env),
    )
  }

  #tmux(args: string[], env: NodeJS.ProcessEnv = process.env): string {
    const result = spawnSync('tmux', ['-S', this.socket, ...args], { env, encoding: 'utf8' })
    if (result.status !== 0) throw new Error(`tmux ${args[0]} failed: ${result.stderr}`)
    return result.stdout
  }

  /** Keys as tmux names them ('Enter', 'C-c', 'Escape') or literal text with `literal`. */
  send(keys: string, literal = false): void {
    this.#tmux(['send-keys', '-t', 'main', ...(literal ? ['-l'] : []), keys])
  }

  type(text: string): void {
    this.send(text, true)
  }

  screen(): string {
    return this.#tmux(['capture-pane', '-p', '-J', '-S', '-200', '-t', 'main'])
  }

  /** Waits until the screen matches; fails with the screen's content after `timeoutMs`. */
  async waitFor(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const match = this.screen().match(pattern)
      if (match) return match
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${pattern}; the screen shows:\n${this.screen()}`)
      }
      await sleep(50)
    }
  }

  /** The command's exit status, once it has ended. */
  async exitCode(timeoutMs?: number): Promise<number> {
    const match = await this.waitFor(/\[exit (\d+)\]/, timeoutMs)
    return Number(match[1])
  }

  close(): void {
    spawnSync('tmux', ['-S', this.socket, 'kill-server'])
    rmSync(this.socket, { force: true })
  }
}
