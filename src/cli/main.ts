#!/usr/bin/env node
import { readFileSync } from 'node:fs'
import { type ParseArgsConfig, parseArgs } from 'node:util'
import { type CommandContext, RUN, UsageError } from './commands.js'
import { cliMessage } from './messages.js'
import { COMMANDS, commandHelp, generalHelp } from './spec.js'
import { AnyStoreError } from '../store/errors.js'
import { EXIT_CODES, exitCodeFor } from './exit-codes.js'

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'))
  return String(pkg.version)
}

/**
 * The message for the first unknown option in `args`, or undefined when all are known.
 * Node's own message for this leaves a quote unclosed (`as in '-- "--bogus"`), so it is
 * rebuilt here from the parser's tokens rather than patched by matching its text.
 */
function unknownOption(
  args: string[],
  options: NonNullable<ParseArgsConfig['options']>,
): string | undefined {
  const { tokens } = parseArgs({
    args,
    options,
    allowPositionals: true,
    strict: false,
    tokens: true,
  })
  const token = tokens.find((t) => t.kind === 'option' && !Object.hasOwn(options, t.name))
  if (token === undefined || token.kind !== 'option') return undefined
  return `Unknown option '${token.rawName}'. To pass an argument that starts with '-', put it after '--' and any options (as in: -- ${args[token.index]})`
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined) {
    process.stderr.write(generalHelp(EXIT_CODES))
    return EXIT_CODES.USAGE
  }
  if (name === '--help' || name === '-h' || (name === 'help' && rest.length === 0)) {
    process.stdout.write(generalHelp(EXIT_CODES))
    return EXIT_CODES.OK
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(`${version()}\n`)
    return EXIT_CODES.OK
  }
  if (name === 'help') {
    const spec = COMMANDS[rest[0]!]
    if (spec === undefined) throw new UsageError(`Unknown command ${JSON.stringify(rest[0])}`)
    process.stdout.write(commandHelp(rest[0]!, spec))
    return EXIT_CODES.OK
  }
  const spec = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined
  const run = Object.hasOwn(RUN, name) ? RUN[name] : undefined
  if (spec === undefined || run === undefined) {
    throw new UsageError(`Unknown command ${JSON.stringify(name)}: see \`anystore --help\``)
  }
  const options = { ...spec.options, help: { type: 'boolean', short: 'h' } } as const
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true })
  } catch (cause) {
    const unknown = unknownOption(rest, options)
    const message = unknown ?? (cause as Error).message
    throw new UsageError(`${message}\n\n${commandHelp(name, spec)}`)
  }
  if (parsed.values.help) {
    process.stdout.write(commandHelp(name, spec))
    return EXIT_CODES.OK
  }
  const [min, max] = spec.args
  if (parsed.positionals.length < min || parsed.positionals.length > max) {
    throw new UsageError(`Wrong number of arguments\n\n${commandHelp(name, spec)}`)
  }
  const ctx: CommandContext = {
    args: parsed.positionals,
    options: parsed.values as CommandContext['options'],
    env: process.env,
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    stdinIsTTY: process.stdin.isTTY === true,
  }
  await run(ctx)
  return EXIT_CODES.OK
}

function report(error: unknown): number {
  const code = exitCodeFor(error)
  if (error instanceof UsageError) {
    process.stderr.write(`anystore: ${error.message}\n`)
  } else if (error instanceof AnyStoreError) {
    process.stderr.write(`anystore: ${error.code}: ${cliMessage(error)}\n`)
  } else {
    const e = error as { code?: unknown; message?: unknown }
    const prefix = typeof e?.code === 'string' ? `${e.code}: ` : ''
    process.stderr.write(`anystore: ${prefix}${String(e?.message ?? error)}\n`)
  }
  return code
}

// A closed pipe (`anystore dump f | head`) is not an error worth a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(EXIT_CODES.OK)
  throw error
})

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (error) => {
    process.exitCode = report(error)
  },
)
