import { spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseKey } from '../src/crypto.js'
import { cleanEnv, ROOT, requireBuild } from './cli-support.js'

requireBuild()

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A valid encryption key, as the store would accept it. */
function isKey(text: string): boolean {
  try {
    parseKey(text)
    return true
  } catch {
    return false
  }
}

/** The NUL-separated strings of a /proc file, or undefined once the process is gone. */
function procStrings(pid: string, name: 'cmdline' | 'environ'): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/${name}`, 'utf8').split('\0').filter(Boolean)
  } catch {
    return undefined
  }
}

function parentOf(pid: string): number | undefined {
  try {
    // The parent pid is the 2nd field after the command name, which is in parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
  } catch {
    return undefined
  }
}

describe.runIf(process.platform === 'linux')('demo/counter.mjs', () => {
  it('gives its 4 children the key in their environment, not on the command line', async () => {
    const demo = spawn(process.execPath, [join(ROOT, 'demo/counter.mjs'), '100'], {
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    demo.stdout.on('data', (chunk) => (output += chunk))
    demo.stderr.on('data', (chunk) => (output += chunk))
    const exit = new Promise<number | null>((resolve) => demo.on('exit', resolve))
    let running = true
    void exit.then(() => (running = false))

    // While the demo runs, `ps` could read its children's command lines: so can we.
    const seen = new Map<string, { argv: string[]; env: string[] }>()
    while (running) {
      for (const pid of readdirSync('/proc')) {
        if (!/^\d+$/.test(pid) || seen.has(pid) || parentOf(pid) !== demo.pid) continue
        const argv = procStrings(pid, 'cmdline')
        const env = procStrings(pid, 'environ')
        // A child seen before its exec still shows the parent's argv: wait for --child.
        if (argv?.includes('--child') && env !== undefined) seen.set(pid, { argv, env })
      }
      await sleep(5)
    }

    expect(await exit, output).toBe(0)
    expect(output).toContain('final count: 400 (expected 400)')
    expect(seen.size).toBe(4)
    for (const { argv, env } of seen.values()) {
      expect(argv.filter(isKey)).toEqual([])
      const key = env.find((entry) => entry.startsWith('ANYSTORE_KEY='))?.slice(13)
      expect(key !== undefined && isKey(key)).toBe(true)
    }
  })
})
