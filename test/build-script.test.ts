import { execFileSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, symlinkSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tempDir } from './helpers.js'

const project = resolve(import.meta.dirname, '..')

describe('scripts/build.mjs', () => {
  it('bundles a checkout whose path has a space, with node_modules linked from elsewhere, and ships the licences', () => {
    const checkout = join(tempDir(), 'a checkout with spaces')
    mkdirSync(checkout)
    for (const part of ['src', 'scripts', 'package.json']) {
      cpSync(join(project, part), join(checkout, part), { recursive: true })
    }
    symlinkSync(join(project, 'node_modules'), join(checkout, 'node_modules'))
    execFileSync(process.execPath, ['scripts/build.mjs'], {
      cwd: checkout,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    expect(existsSync(join(checkout, 'dist', 'index.js'))).toBe(true)
    expect(existsSync(join(checkout, 'dist', 'cli', 'main.js'))).toBe(true)
    expect(existsSync(join(checkout, 'dist', 'licenses', '@msgpack__msgpack.LICENSE'))).toBe(true)
  }, 60_000)
})
