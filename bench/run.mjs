// Entry point of the benchmark suite; the options are described in suite.mjs.
//
// lmdb-js is installed here, beside the suite, on first use rather than as a devDependency:
// its native helper (msgpackr-extract) lists prebuilt packages for platforms the registry
// used here does not carry, which a lockfile cannot record, so `npm ci` of the project would
// fail. `npm install` tolerates the missing optional packages. @keyv/redis (with the keyv it
// plugs into) is a contender of the Redis backend only, so it is installed here too.
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const benchDir = fileURLToPath(new URL('.', import.meta.url))
const contenders = Object.keys(
  JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')).dependencies,
)
const missing = contenders.filter(
  (name) => !existsSync(new URL(`./node_modules/${name}/package.json`, import.meta.url)),
)
if (missing.length > 0) {
  console.error(`installing the benchmark contenders (${missing.join(', ')}) into bench/node_modules ...`)
  execFileSync(
    'npm',
    ['install', '--prefix', benchDir, '--no-audit', '--no-fund', '--no-package-lock'],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  )
}
await import('./suite.mjs')
