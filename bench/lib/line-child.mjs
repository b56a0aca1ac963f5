import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { check } from './data.mjs'

/**
 * A child process that answers line by line on its stdout: `next()` is its next line, and
 * rejects once its output has ended without one. The end of the output, not the exit: a
 * child's exit can be reported before its last line has been read.
 */
export function startLineChild(script, args, label) {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout })
  const next = () =>
    new Promise((resolve, reject) => {
      lines.once('line', resolve)
      lines.once('close', () => reject(new Error(`${label} ended its output (exit ${child.exitCode})`)))
    })
  return { child, ready: next(), next }
}

/**
 * Waits until every child of `children` (from startLineChild) says `ready`, then releases them
 * together (a `go` line each) and waits for their reports: the parsed JSON lines, and the wall
 * time from the release to the last report.
 */
export async function releaseTogether(children, label) {
  for (const c of children) check((await c.ready) === 'ready', `${label} starts`)
  const done = children.map((c) => c.next())
  const start = performance.now()
  for (const c of children) c.child.stdin.end('go\n')
  const reports = (await Promise.all(done)).map((line) => JSON.parse(line))
  return { reports, wallMs: performance.now() - start }
}
