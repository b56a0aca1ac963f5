import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** Child fixtures import the built package; say so plainly when it has not been built. */
export function requireBuild(): void {
  const entry = fileURLToPath(new URL('../dist/index.js', import.meta.url))
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run \`npm run build\` first`)
}

export function fixture(name: string): string {
  return fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
}
