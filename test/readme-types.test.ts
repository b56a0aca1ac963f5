import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'

const ROOT = new URL('..', import.meta.url).pathname
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
const distTypes = join(ROOT, 'dist/index.d.ts')

/**
 * What a fragment leaves undeclared, declared on one line (so each file's line numbers stay
 * those of the README). A block is picked by a piece of its text; every entry must match.
 */
const PRELUDES: { block: string; prelude: string }[] = [
  {
    // The transaction example: a store of numbers.
    block: 'const total = await store.run(',
    prelude: `import type { AnyStore } from 'anystore-kv'; declare const store: AnyStore<number>`,
  },
  {
    block: 'schema: SettingsSchema,',
    prelude: `import type { StandardSchemaV1 } from 'anystore-kv'; declare const SettingsSchema: StandardSchemaV1<unknown, { port: number; token: string }>`,
  },
  {
    block: `from 'zod'`,
    prelude: `import { unstash } from 'anystore-kv'`,
  },
  {
    block: 'encryptionKey: oldKey,',
    prelude: 'declare const oldKey: string',
  },
]

/**
 * zod is not installed: the part of its API the README uses, typed as the Standard Schema it
 * implements, so the block is still checked against anystore's `schema` parameter.
 */
const ZOD_SHIM = `declare module 'zod' {
  import type { StandardSchemaV1 } from 'anystore-kv'
  type Schema<T> = StandardSchemaV1<unknown, T>
  interface NumberSchema extends Schema<number> {
    int(): NumberSchema
    min(value: number): NumberSchema
    max(value: number): NumberSchema
  }
  export const z: {
    object<S extends Record<string, Schema<unknown>>>(
      shape: S,
    ): Schema<{ [K in keyof S]: StandardSchemaV1.InferOutput<S[K]> }>
    number(): NumberSchema
    string(): Schema<string>
  }
}
`

interface Block {
  /** The README line of the opening fence: line 1 of the file written for the block. */
  line: number
  code: string
}

/** Every ```js and ```ts block; console transcripts, JSON and plain fences are not code. */
function codeBlocks(): Block[] {
  return [...readme.matchAll(/^```(?:js|ts)\n([\s\S]*?)^```$/gm)].map((match) => ({
    line: readme.slice(0, match.index).split('\n').length,
    code: match[1]!,
  }))
}

let dir: string | undefined
afterEach(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  dir = undefined
})

describe('README', () => {
  it('code blocks type-check as TypeScript (strict) against the built types', () => {
    expect(existsSync(distTypes), 'dist/index.d.ts is missing: run `npm run build`').toBe(true)
    const blocks = codeBlocks()
    expect(blocks.length).toBeGreaterThanOrEqual(5)
    expect(blocks.filter((b) => b.code.includes(`from 'anystore-kv'`)).length).toBeGreaterThan(3)

    // Inside the project, so that node_modules (@types/node) resolves; the package.json there
    // makes the files ES modules, which top-level await needs.
    dir = mkdtempSync(join(ROOT, '.readme-types-'))
    const files: string[] = []
    const used = new Set<string>()
    for (const { line, code } of blocks) {
      const preludes = PRELUDES.filter((p) => code.includes(p.block))
      for (const p of preludes) used.add(p.block)
      const file = `readme-line-${line}.ts`
      writeFileSync(join(dir, file), `${preludes.map((p) => p.prelude).join('; ')}\n${code}`)
      files.push(file)
    }
    expect([...used].sort(), 'every prelude matches a block').toEqual(
      PRELUDES.map((p) => p.block).sort(),
    )
    writeFileSync(join(dir, 'zod-shim.d.ts'), ZOD_SHIM)
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          types: ['node'],
          skipLibCheck: true,
          paths: { 'anystore-kv': [distTypes] },
        },
        files: [...files, 'zod-shim.d.ts'],
      }),
    )
    const tsc = spawnSync(
      join(ROOT, 'node_modules/.bin/tsc'),
      ['-p', join(dir, 'tsconfig.json'), '--noEmit', '--strict', '--pretty', 'false'],
      { encoding: 'utf8' },
    )
    // readme-line-N.ts(L,C) is README line N + L - 1.
    expect(tsc.status, `${tsc.stdout}${tsc.stderr}`).toBe(0)
  })
})
