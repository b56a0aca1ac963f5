import type { ParseArgsConfig } from 'node:util'

type OptionSpec = NonNullable<ParseArgsConfig['options']>

export interface CommandSpec {
  usage: string
  summary: string
  /** Positional arguments: minimum and maximum count. */
  args: [number, number]
  options: OptionSpec
  /** One line per option, for --help. */
  optionHelp: string[]
  /** Whether the command uses --key-file / ANYSTORE_KEY. */
  usesKey: boolean
  /** Examples for --help. */
  examples?: string[]
}

const KEY_OPTIONS: OptionSpec = {
  'key-file': { type: 'string' },
  'accepted-key-file': { type: 'string', multiple: true },
  'passphrase-file': { type: 'string' },
  passphrase: { type: 'boolean' },
  'lock-timeout': { type: 'string' },
  lock: { type: 'string' },
  'redis-timeout': { type: 'string' },
}

const KEY_HELP = [
  '--key-file FILE      read the encryption key (base64) from FILE; else $ANYSTORE_KEY; else the public default key',
  '--accepted-key-file F  also open a store written under the key in F (repeatable; key rotation)',
  '--passphrase-file F  derive the key from the passphrase in F (its last line break dropped), not --key-file',
  '--passphrase         ask for the passphrase on the terminal, without echo',
  '--lock-timeout MS    how long to wait for the store lock (default 10000)',
  '--lock MODE          flock, proper-lockfile or auto (default auto); every process sharing FILE must use the same',
  '--redis-timeout MS   Redis only: how long each call may wait for the server, connecting included (default 5000)',
]

const NUMBER_HELP = '--number             KEY is a number key (1 and "1" are different keys)'

export const COMMANDS: Record<string, CommandSpec> = {
  newkey: {
    usage: 'anystore newkey [FILE]',
    summary:
      'Print a new random 256-bit key (base64) for --key-file or ANYSTORE_KEY, or write it to FILE (created with mode 0600; an existing FILE is never overwritten).',
    args: [0, 1],
    options: {},
    optionHelp: [],
    usesKey: false,
    examples: ['anystore newkey app.key', 'export ANYSTORE_KEY="$(anystore newkey)"'],
  },
  get: {
    usage: 'anystore get FILE KEY',
    summary: 'Print the value stored under KEY as JSON (non-JSON types in the tagged form).',
    args: [2, 2],
    options: {
      ...KEY_OPTIONS,
      number: { type: 'boolean' },
      raw: { type: 'boolean' },
      pretty: { type: 'boolean' },
    },
    optionHelp: [
      NUMBER_HELP,
      '--raw                print a string value as it is, without JSON quotes',
      '--pretty             indent the JSON',
      ...KEY_HELP,
    ],
    usesKey: true,
    examples: ['anystore get app.store db.url --raw'],
  },
  set: {
    usage: 'anystore set FILE KEY VALUE',
    summary:
      'Store VALUE under KEY (as a string; --json parses it). VALUE "-" reads it from stdin.',
    args: [3, 3],
    options: {
      ...KEY_OPTIONS,
      number: { type: 'boolean' },
      json: { type: 'boolean' },
      compress: { type: 'boolean' },
    },
    optionHelp: [
      '--json               parse VALUE as JSON (tagged form accepted)',
      NUMBER_HELP,
      '--compress           deflate the file (default: keep what the file uses)',
      ...KEY_HELP,
    ],
    usesKey: true,
    examples: [
      'anystore set app.store greeting hello',
      `anystore set app.store limits --json '{"max": 10}'`,
      'cat cert.pem | anystore set app.store tls.cert -',
    ],
  },
  delete: {
    usage: 'anystore delete FILE KEY',
    summary: 'Delete KEY. Exits with status 3 when the key did not exist.',
    args: [2, 2],
    options: { ...KEY_OPTIONS, number: { type: 'boolean' } },
    optionHelp: [NUMBER_HELP, ...KEY_HELP],
    usesKey: true,
  },
  keys: {
    usage: 'anystore keys FILE',
    summary:
      'Print the keys, one per line (--json: as a JSON array, which tells numbers from strings).',
    args: [1, 1],
    options: { ...KEY_OPTIONS, json: { type: 'boolean' } },
    optionHelp: ['--json               print a JSON array', ...KEY_HELP],
    usesKey: true,
  },
  size: {
    usage: 'anystore size FILE',
    summary: 'Print the number of entries.',
    args: [1, 1],
    options: { ...KEY_OPTIONS },
    optionHelp: [...KEY_HELP],
    usesKey: true,
  },
  dump: {
    usage: 'anystore dump FILE',
    summary:
      'Print all entries as one JSON object, one entry per line; `import` reads it back exactly.',
    args: [1, 1],
    options: { ...KEY_OPTIONS, entries: { type: 'boolean' } },
    optionHelp: [
      '--entries            always use the entries form [[key, value], ...]',
      ...KEY_HELP,
    ],
    usesKey: true,
    examples: ['anystore dump app.store > backup.json'],
  },
  import: {
    usage: 'anystore import FILE [INPUT]',
    summary:
      'Merge entries (as printed by dump) in one transaction. INPUT is JSON text when it starts with "{", else a file to read; stdin when absent or "-".',
    args: [1, 2],
    options: { ...KEY_OPTIONS, replace: { type: 'boolean' }, compress: { type: 'boolean' } },
    optionHelp: [
      '--replace            delete every entry not in the input (same transaction)',
      '--compress           deflate the file (default: keep what the file uses)',
      ...KEY_HELP,
    ],
    usesKey: true,
    examples: [
      'anystore import app.store backup.json',
      'anystore import app.store < backup.json',
      `anystore import app.store '{"a": 1, "b": [2, 3]}'`,
    ],
  },
  edit: {
    usage: 'anystore edit FILE [KEY]',
    summary: 'Edit one value (or, without KEY, the whole store) as JSON in $VISUAL / $EDITOR.',
    args: [1, 2],
    options: {
      ...KEY_OPTIONS,
      number: { type: 'boolean' },
      editor: { type: 'string' },
      compress: { type: 'boolean' },
    },
    optionHelp: [
      NUMBER_HELP,
      '--editor CMD         editor when $VISUAL and $EDITOR are unset (default: vim, vi or nano)',
      '--compress           deflate the file (default: keep what the file uses)',
      ...KEY_HELP,
    ],
    usesKey: true,
    examples: ['EDITOR=nano anystore edit app.store settings'],
  },
  rekey: {
    usage: 'anystore rekey FILE --new-key-file NEWKEY',
    summary: 'Re-encrypt the store under a new key, in one commit, holding the store lock.',
    args: [1, 1],
    options: {
      ...KEY_OPTIONS,
      'new-key-file': { type: 'string' },
      'new-passphrase-file': { type: 'string' },
      'new-passphrase': { type: 'boolean' },
      compress: { type: 'boolean' },
    },
    optionHelp: [
      '--new-key-file FILE  the new key (base64); this or a new passphrase is required',
      '--new-passphrase-file F  re-encrypt under a key derived from the passphrase in F',
      '--new-passphrase     ask for the new passphrase on the terminal (twice), without echo',
      '--compress           deflate the file (default: keep what the file uses)',
      ...KEY_HELP,
    ],
    usesKey: true,
    examples: [
      'anystore newkey > new.key && anystore rekey app.store --key-file old.key --new-key-file new.key',
    ],
  },
  restore: {
    usage: 'anystore restore FILE BACKUP',
    summary:
      'Make the entries of BACKUP (a copy of a store file) the newest commit of FILE, holding the store lock; keys not in BACKUP are deleted. Open stores see an ordinary commit.',
    args: [2, 2],
    options: {
      ...KEY_OPTIONS,
      'backup-key-file': { type: 'string' },
      compress: { type: 'boolean' },
    },
    optionHelp: [
      "--backup-key-file F  BACKUP's key (base64), when it is not the store's",
      '--compress           deflate the file (default: keep what the file uses)',
      ...KEY_HELP,
    ],
    usesKey: true,
    examples: [
      'anystore restore app.store backup/app.store --key-file app.key',
      'anystore restore app.store other.store --key-file app.key --backup-key-file other.key',
    ],
  },
  copy: {
    usage: 'anystore copy SRC DST',
    summary:
      "Copy every entry of SRC into DST (files or Redis URLs), with their expiry times, re-sealed under DST's key, in one commit. DST must be empty or absent unless --force.",
    args: [2, 2],
    options: {
      ...KEY_OPTIONS,
      'to-key-file': { type: 'string' },
      'to-passphrase-file': { type: 'string' },
      'to-passphrase': { type: 'boolean' },
      force: { type: 'boolean' },
      compress: { type: 'boolean' },
    },
    optionHelp: [
      "--to-key-file FILE   DST's key (base64); default: SRC's key or passphrase",
      "--to-passphrase-file F  seal DST under a key derived from the passphrase in F",
      '--to-passphrase      ask for the passphrase of DST on the terminal (twice), without echo',
      "--force              replace DST's entries: the same commit deletes every entry DST holds",
      '--compress           deflate DST, a file (default: what DST uses, else what SRC uses)',
      "--key-file etc.      SRC's key, as for every command; --accepted-key-file only for a file SRC",
      ...KEY_HELP,
    ],
    usesKey: true,
    examples: [
      'anystore copy app.store redis://db.internal:6379/0#app:settings --key-file app.key',
      'anystore copy redis://db.internal:6379#app:settings backup.store --key-file app.key --to-key-file backup.key',
      'anystore copy backup.store redis://db.internal:6379#app:settings --force',
    ],
  },
  info: {
    usage: 'anystore info FILE',
    summary:
      'Print the header (format version, flags, key size, last commit, store id and commit number) without a key; with a key, the entry count too.',
    args: [1, 1],
    options: { ...KEY_OPTIONS, json: { type: 'boolean' } },
    optionHelp: ['--json               print a JSON object', ...KEY_HELP],
    usesKey: true,
  },
  verify: {
    usage: 'anystore verify FILE',
    summary: 'Authenticate and decode the whole file; the exit status tells which error was found.',
    args: [1, 1],
    options: { ...KEY_OPTIONS },
    optionHelp: [...KEY_HELP],
    usesKey: true,
  },
}

const REDIS_HELP =
  "A store in Redis is given as redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]#NAME (rediss:// for TLS):\n" +
  "NAME is everything after the first '#', as it is (it may contain ':')."

export function commandHelp(name: string, spec: CommandSpec): string {
  const lines = [`Usage: ${spec.usage} [options]`, '', spec.summary, '', 'Options:']
  for (const line of [...spec.optionHelp, '-h, --help           show this help']) {
    lines.push(`  ${line}`)
  }
  if (spec.usesKey) lines.push('', REDIS_HELP)
  if (spec.examples !== undefined) {
    lines.push('', 'Examples:', ...spec.examples.map((example) => `  ${example}`))
  }
  if (name !== 'newkey') lines.push('', 'Exit status: see `anystore --help`.')
  return `${lines.join('\n')}\n`
}

export function generalHelp(exitCodes: Readonly<Record<string, number>>): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => COMMANDS[name]!.usage.length))
  const lines = [
    'Usage: anystore COMMAND [options]',
    '',
    'An encrypted single-file key/value store, from the shell.',
    '',
    'Commands:',
    ...Object.values(COMMANDS).map((spec) => `  ${spec.usage.padEnd(width)}  ${spec.summary}`),
    '',
    'The key comes from --key-file FILE, else $ANYSTORE_KEY, else the public default key',
    '(a warning is printed: the default key only obfuscates). A store under a passphrase takes',
    '--passphrase-file FILE or --passphrase (asked on the terminal) instead.',
    'FILE, SRC and DST may also name a store in Redis: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]#NAME',
    "(rediss:// for TLS; NAME is everything after the first '#'). info, rekey and restore take files only.",
    '`anystore COMMAND --help` shows the options of one command.',
    '',
    'Exit status:',
    ...Object.entries(exitCodes).map(([name, code]) => `  ${String(code).padStart(3)}  ${name}`),
  ]
  return `${lines.join('\n')}\n`
}
