import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'

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
