// node bench/ab-get-one.mjs [dist/index.js of a build] : median ns of get() of one key of a
// 1,000-entry store, beside a bare fstatSync, a 1-byte readSync and lmdb-js get in the same
// process. Run it for two builds in alternation to compare read checks (docs/DESIGN.md).
import fs, { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { open as openLmdb } from 'lmdb'
import { openStore } from './lib/backends.mjs'

const build = process.argv[2]
  ? await import(pathToFileURL(resolve(process.argv[2])).href)
  : await import('../dist/index.js')
const dir = mkdtempSync(join(tmpdir(), 'anystore-ab-get-'))
const s = await openStore('file', { location: join(dir, 'store'), sync: 'never', build })
const db = openLmdb({ path: join(dir, 'lmdb') })
const v = 'x'.repeat(100)
await s.run(async (tx) => { for (let i = 0; i < 1000; i++) await tx.set(`key-${i}`, v) })
await db.transaction(() => { for (let i = 0; i < 1000; i++) db.put(`key-${i}`, v) })
const fd = fs.openSync(join(dir, 'store'), 'r')
const one = Buffer.alloc(1)
async function time(fn, n = 200_000) {
  for (let i = 0; i < 20_000; i++) await fn()
  const rs = []
  for (let r = 0; r < 9; r++) {
    const t = process.hrtime.bigint()
    for (let i = 0; i < n / 9; i++) await fn()
    rs.push(Number(process.hrtime.bigint() - t) / (n / 9))
  }
  return rs.sort((a, b) => a - b)[4]
}
const out = {
  get: await time(() => s.get('key-7')),
  lmdbGet: await time(() => db.get('key-7')),
  fstat: await time(() => fs.fstatSync(fd)),
  pread1: await time(() => fs.readSync(fd, one, 0, 1, 0)),
}
console.log(JSON.stringify(out))
await s.close()
await db.close()
rmSync(dir, { recursive: true, force: true })
