import { afterAll, describe, it } from 'vitest'
import { type ChildProcess, spawn } from 'node:child_process'
import { accessSync, constants, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createServer, connect } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'

/**
 * A real redis-server for tests: on a free loopback port, in a temp dir of its own, with the
 * append-only file fsynced on every write (so an acknowledged write survives a SIGKILL).
 */

/** The redis-server binary on PATH (or where Debian puts it), or undefined. */
export function findRedisServer(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/sbin', '/usr/local/bin']
  for (const dir of dirs) {
    if (dir === '') continue
    const path = join(dir, 'redis-server')
    try {
      accessSync(path, constants.X_OK)
      return path
    } catch {
      // not here
    }
  }
  return undefined
}

const binary = findRedisServer()

/**
 * Whether the Redis tests run. They are skipped only on a machine without redis-server and
 * outside CI; in CI (`CI` set) a missing binary fails them instead, so that a setup that lost
 * the install step cannot pass by skipping.
 */
const inCI = !['', '0', 'false'].includes((process.env.CI ?? '').toLowerCase())
export const redisTestsEnabled = binary !== undefined || inCI

export const SKIP_MESSAGE =
  'redis-server is not installed: skipping the Redis tests (apt-get install redis-server; in CI they fail instead)'

if (!redisTestsEnabled) console.warn(SKIP_MESSAGE)

/** A free TCP port on 127.0.0.1: redis-server cannot pick one itself (`--port 0` turns TCP off). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => {
        if (typeof address === 'object' && address !== null) resolve(address.port)
        else reject(new Error('no port'))
      })
    })
  })
}

/** Whether a PING on `port` is answered with PONG. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    let answer = ''
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(500, () => done(false))
    socket.on('error', () => done(false))
    socket.on('connect', () => socket.write('PING\r\n'))
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1')
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'))
    })
  })
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export interface RedisServer {
  readonly port: number
  readonly url: string
  readonly dir: string
  /** Kills the server with SIGKILL: no shutdown, no save; what the AOF holds is what survives. */
  kill(): Promise<void>
  /** Starts it again on the same port and dir (it loads the AOF), once PING answers. */
  restart(): Promise<void>
  /** Sends the server a signal: SIGSTOP makes it hang with its connections open, SIGCONT resumes it. */
  signal(signal: NodeJS.Signals): void
  /** Every byte of the append-only files, as one buffer. */
  aof(): Buffer
  /** Stops it and removes its dir. */
  stop(): Promise<void>
}

/** Starts a redis-server (with `extraArgs` after its own) and waits until it answers PING. */
export async function startRedis(extraArgs: readonly string[] = []): Promise<RedisServer> {
  if (binary === undefined) throw new Error('redis-server not found on PATH: install it (apt-get install redis-server)')
  const path = binary
  const dir = mkdtempSync(join(tmpdir(), 'anystore-redis-'))
  const port = await freePort()
  let child: ChildProcess | undefined
  let output = ''

  const launch = async () => {
    output = ''
    const started = spawn(
      path,
      [
        '--port', String(port),
        '--bind', '127.0.0.1',
        '--save', '',
        '--appendonly', 'yes',
        '--appendfsync', 'always',
        '--dir', dir,
        '--daemonize', 'no',
        '--loglevel', 'warning',
        ...extraArgs,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    started.stdout?.on('data', (chunk) => (output += chunk))
    started.stderr?.on('data', (chunk) => (output += chunk))
    child = started
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline) {
      if (started.exitCode !== null) break
      if (await ping(port)) return
      await sleep(20)
    }
    started.kill('SIGKILL')
    throw new Error(`redis-server did not answer PING on port ${port}: ${output}`)
  }

  const kill = async () => {
    const running = child
    child = undefined
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return
    await new Promise<void>((resolve) => {
      running.once('exit', () => resolve())
      running.kill('SIGKILL')
    })
  }

  await launch()
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    kill,
    restart: launch,
    signal(signal) {
      child?.kill(signal)
    },
    aof() {
      const parts: Buffer[] = []
      const walk = (at: string) => {
        for (const entry of readdirSync(at, { withFileTypes: true })) {
          const full = join(at, entry.name)
          if (entry.isDirectory()) walk(full)
          else if (entry.name.includes('.aof')) parts.push(readFileSync(full))
        }
      }
      walk(dir)
      return Buffer.concat(parts)
    },
    async stop() {
      await kill()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/**
 * The redis-server the tests of one file share: started now, stopped after them. Where the
 * Redis tests are off, undefined, after registering one skipped test under `title` that says
 * why (so that the run shows what it did not test).
 */
export async function sharedRedis(title: string): Promise<RedisServer | undefined> {
  if (!redisTestsEnabled) {
    describe(title, () => {
      it.skip(SKIP_MESSAGE, () => {})
    })
    return undefined
  }
  const server = await startRedis()
  afterAll(async () => {
    await server.stop()
  })
  return server
}
