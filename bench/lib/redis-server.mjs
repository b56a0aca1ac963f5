import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createClient } from 'redis'

/**
 * The Redis server of `--backend redis`: the one at BENCH_REDIS_URL (set by --redis-url) if
 * given, else the one on the default port if it answers, else a redis-server the suite starts
 * itself on a free loopback port in a temp dir and stops at the end (as the tests do, see
 * test/backends/redis/server.ts). Its persistence settings are read back and printed with the
 * figures, since they decide what a write costs on the server.
 */

const DEFAULT_URL = 'redis://127.0.0.1:6379'

/**
 * How the suite's own server persists: the append-only file, flushed once a second (Redis's
 * default for the AOF). BENCH_REDIS_APPENDFSYNC=always makes every write wait for an fsync.
 */
const APPENDFSYNC = process.env.BENCH_REDIS_APPENDFSYNC ?? 'everysec'

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

/** Whether `url`'s host and port answer PING with PONG within half a second. */
function answers(url) {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    const socket = connect(Number(port || 6379), hostname)
    let reply = ''
    const done = (ok) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(500, () => done(false))
    socket.on('error', () => done(false))
    socket.on('connect', () => socket.write('PING\r\n'))
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1')
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'))
    })
  })
}

async function startServer() {
  const dir = mkdtempSync(join(tmpdir(), 'anystore-bench-redis-'))
  const port = await freePort()
  const child = spawn(
    process.env.BENCH_REDIS_SERVER ?? 'redis-server',
    [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--save', '',
      '--appendonly', 'yes',
      '--appendfsync', APPENDFSYNC,
      '--dir', dir,
      '--daemonize', 'no',
      '--loglevel', 'warning',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let output = ''
  child.stderr.on('data', (chunk) => (output += chunk))
  const spawned = new Promise((resolve) => {
    child.once('error', (error) => resolve(error))
    child.once('spawn', () => resolve(undefined))
  })
  const stop = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  // A run that stops on a failed check must not leave the server behind.
  process.once('exit', stop)
  const url = `redis://127.0.0.1:${port}`
  const failed = await spawned
  if (failed !== undefined) {
    stop()
    throw new Error(
      `no Redis server answered at ${DEFAULT_URL} and redis-server could not be started ` +
        `(${failed.message}): install it (apt-get install redis-server) or pass --redis-url`,
    )
  }
  const deadline = Date.now() + 10_000
  while (!(await answers(url))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      stop()
      throw new Error(`redis-server did not answer PING on port ${port}: ${output}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return { url, dir, stop }
}

/** What a server says of itself: version and persistence settings. */
async function describeServer(url) {
  const client = createClient({ url })
  await client.connect()
  try {
    const config = await client.configGet(['appendonly', 'appendfsync', 'save'])
    const info = await client.info('server')
    return {
      version: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown',
      appendonly: config.appendonly,
      appendfsync: config.appendfsync,
      save: config.save,
    }
  } finally {
    client.destroy()
  }
}

/**
 * Finds or starts the server and points BENCH_REDIS_URL at it (child processes inherit it).
 * Returns its URL, settings, whether the suite started it, and stop() (nothing for a server
 * the suite did not start).
 */
export async function ensureRedisServer() {
  const given = process.env.BENCH_REDIS_URL
  let started
  if (given === undefined && !(await answers(DEFAULT_URL))) started = await startServer()
  const url = started?.url ?? given ?? DEFAULT_URL
  process.env.BENCH_REDIS_URL = url
  const settings = started || (await answers(url)) ? await describeServer(url) : undefined
  return {
    url,
    startedBySuite: started !== undefined,
    ...settings,
    stop: () => started?.stop(),
  }
}

/**
 * The key of the stores the Redis comparison opens: fixed, so that the increment processes and
 * the parent open the same stores, and not the public default key, which warns.
 */
export const REDIS_BENCH_KEY = Buffer.alloc(32, 0x5a).toString('base64')

/** The options anystore's own client is created with (src/backends/redis/connection.ts). */
export function clientOptions(url) {
  return {
    url,
    socket: {
      connectTimeout: 5000,
      reconnectStrategy: (retries) => Math.min(20 * 2 ** Math.min(retries, 10), 500),
    },
  }
}

/** One line for the output: where the server is, who started it, how it persists. */
export function describeRedis(server) {
  const who = server.startedBySuite ? 'started by the suite, stopped at the end' : 'already running'
  if (server.version === undefined) return `Redis at ${server.url} (${who}): no answer`
  return (
    `Redis ${server.version} at ${server.url} (${who}): appendonly ${server.appendonly}, ` +
    `appendfsync ${server.appendfsync}, save '${server.save}'`
  )
}
