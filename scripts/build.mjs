// `npm run build`: the code that ships, bundled by esbuild into dist/, and its type declarations
// from tsc. Why a bundle: each ES module costs a fresh process about 0.7 ms to load, and the
// package is imported by short-lived command-line processes (docs/DESIGN.md, "Build").
//
// - One file per public entry point (the package, its CLI, its two adapters), sharing chunks in
//   dist/chunks/. Parts few calls use are dynamic imports in the source, so they become chunks
//   of their own that load on first use: the editor, the Redis backend.
// - Dependencies (runtime, optional, peer) stay outside the bundle, loaded from node_modules
//   when used. A devDependency the source imports is bundled: @msgpack/msgpack, whose dozens of
//   small modules every store needs at once. Its licence goes to dist/licenses/.
// - Declarations come from tsc, file for file beside the bundle, so `exports` keeps its types.
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const root = new URL('..', import.meta.url)
const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8'))
const external = [
  ...Object.keys(pkg.dependencies ?? {}),
  ...Object.keys(pkg.optionalDependencies ?? {}),
  ...Object.keys(pkg.peerDependencies ?? {}),
]

rmSync(new URL('dist', root), { recursive: true, force: true })
const { metafile } = await build({
  // A path, not the URL's percent-encoded pathname: a checkout may sit under a name with spaces.
  absWorkingDir: fileURLToPath(root),
  entryPoints: {
    index: 'src/index.ts',
    'cli/main': 'src/cli/bin.ts',
    'adapters/keyv': 'src/adapters/keyv.ts',
    'adapters/unstorage': 'src/adapters/unstorage.ts',
    // Not exported: the crash tests' children reach the store's file-system seam through it.
    anystore: 'src/anystore.ts',
  },
  outdir: 'dist',
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20.19',
  external,
  // @msgpack/msgpack's ES build: its CommonJS one would be wrapped in a function per module.
  mainFields: ['module', 'main'],
  // The CLI's entry keeps its `#!/usr/bin/env node` line (esbuild keeps an entry's hashbang).
  metafile: true,
  logLevel: 'warning',
})

// The licence of each package bundled, which travels with its code.
const bundled = new Set(
  Object.keys(metafile.inputs)
    // Relative to the checkout; through `../` when node_modules is a link to somewhere else.
    .map((path) => /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path)?.[1])
    .filter((name) => name !== undefined),
)
if (bundled.size === 0) {
  throw new Error('no bundled package found in the build, so no licence to ship: check the pattern above')
}
for (const name of bundled) {
  const licence = new URL(`node_modules/${name}/LICENSE`, root)
  if (!existsSync(licence)) throw new Error(`${name} is bundled but has no LICENSE file to ship with it`)
  mkdirSync(new URL('dist/licenses', root), { recursive: true })
  copyFileSync(licence, new URL(`dist/licenses/${name.replace('/', '__')}.LICENSE`, root))
}
