import { DEFAULT_ENCRYPTION_KEY, parseKey } from '../crypto.js'

/** The `code` of the warning, for `process.on('warning')` listeners that filter it. */
export const DEFAULT_KEY_WARNING_CODE = 'ANYSTORE_DEFAULT_KEY'

const DEFAULT_KEY_BYTES = Buffer.from(parseKey(DEFAULT_ENCRYPTION_KEY))

/** Once per process: the same reminder on every open would drown out everything else. */
let given = false

/**
 * Warns, once per process, when data is persisted under the public default key: the file
 * then only looks encrypted. Compared by bytes, so the key counts however it was spelt.
 * In-memory stores never call this: nothing leaves the process.
 */
export function warnIfDefaultKey(key: Uint8Array, where: string): void {
  if (given || !DEFAULT_KEY_BYTES.equals(key)) return
  given = true
  process.emitWarning(
    `${where} is encrypted with the public default key, which only obfuscates it: anyone with anystore-kv can decrypt it. Pass \`encryptionKey\` (newKey() makes one) for secrecy`,
    { type: 'AnyStoreWarning', code: DEFAULT_KEY_WARNING_CODE },
  )
}

/** For the CLI, which prints its own warning (or, for `info`, deliberately none). */
export function markDefaultKeyWarningGiven(): void {
  given = true
}
