import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { CLI, cleanEnv, requireBuild, runCli, tempDir } from '../cli-support.js'

requireBuild()

describe('key files', () => {
  it('warns, as ssh does, when the key file is readable by others, and says how to fix it', async () => {
    const dir = tempDir()
    const keyFile = join(dir, 'app.key')
    const store = join(dir, 'app.store')
    writeFileSync(keyFile, (await runCli(['newkey'])).stdout, { mode: 0o600 })

    const quiet = await runCli(['set', store, 'a', '1', '--key-file', keyFile])
    expect(quiet.code).toBe(0)
    expect(quiet.stderr).toBe('')

    chmodSync(keyFile, 0o644)
    const loud = await runCli(['get', store, 'a', '--key-file', keyFile])
    expect(loud.code).toBe(0)
    expect(loud.stdout).toBe('"1"\n')
    expect(loud.stderr).toContain(`--key-file ${keyFile} is accessible by other users (mode 0644)`)
    expect(loud.stderr).toContain(`chmod 600 ${keyFile}`)
    expect(loud.stderr).not.toContain(readFileSync(keyFile, 'utf8').trim())
  })

  it('newkey FILE writes a usable key with mode 0600, even under umask 0', () => {
    const dir = tempDir()
    const keyFile = join(dir, 'app.key')
    const made = spawnSync('sh', ['-c', `umask 000 && "${process.execPath}" "${CLI}" newkey "${keyFile}"`], {
      env: cleanEnv(),
      encoding: 'utf8',
    })
    expect(made.status, made.stderr).toBe(0)
    expect(made.stdout).toBe('')
    expect(statSync(keyFile).mode & 0o777).toBe(0o600)
    expect(readFileSync(keyFile, 'utf8')).toMatch(/^[A-Za-z0-9+/_-]{43}\n$/)
  })

  it('newkey FILE never overwrites a file, nor writes through a link planted at the name', async () => {
    const dir = tempDir()
    const existing = join(dir, 'old.key')
    writeFileSync(existing, 'the only copy of an old key\n')
    const refused = await runCli(['newkey', existing])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toContain('already exists')
    expect(readFileSync(existing, 'utf8')).toBe('the only copy of an old key\n')

    const target = join(dir, 'elsewhere.key')
    const link = join(dir, 'link.key')
    symlinkSync(target, link)
    expect((await runCli(['newkey', link])).code).toBe(2)
    expect(existsSync(target)).toBe(false)
  })
})
