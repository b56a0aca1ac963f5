// Entry point of the benchmark suite; the options are described in suite.mjs.
//
// lmdb-js is installed here, beside the suite, on first use rather than as a devDependency:
// its native helper (msgpackr-extract) lists prebuilt packages for platforms the registry
// used here does not carry, which a lockfile cannot record, so `npm ci` of the project would
// fail. `npm install` tolerates the missing optional packages.
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const benchDir = fileURLToPath(new URL('.', import.meta.url))
if (!existsSync(new URL('./node_modules/lmdb/package.json', import.meta.url))) {
  console.error('installing the benchmark contenders (lmdb) into bench/node_modules ...')
  execFileSync(
    'npm',
    ['install', '--prefix', benchDir, '--no-audit', '--no-fund', '--no-package-lock'],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  )
}
await import('./suite.mjs')
