import { InvalidJsonError } from '../store/errors.js'
import { checkKey } from '../format/payload.js'
import { fromTagged, TAG, toTagged } from '../format/tagged-json.js'
import type { StoreKey } from '../store/types.js'

/**
 * The JSON form of a whole store, used by `dump`, `import` and `edit`. Normally an object
 * `{ "key": value, ... }` (values in the tagged form); when a key is a number, the string
 * "$anystore", or an integer-like string (which an object would move to the front), the
 * entries form
 * `{ "$anystore": "entries", "value": [[key, value], ...] }`.
 */
export const ENTRIES_TAG = 'entries'

/** Keys a JS object lists before all others (array indices), whatever order they were added in. */
function isArrayIndex(key: string): boolean {
  return /^(?:0|[1-9]\d*)$/.test(key) && Number(key) < 2 ** 32 - 1
}

export function needsEntriesForm(keys: Iterable<StoreKey>): boolean {
  for (const key of keys) {
    if (typeof key === 'number' || key === TAG || isArrayIndex(key)) return true
  }
  return false
}

/**
 * Yields the JSON text of a store piece by piece, one entry per line, so large stores stream
 * out. `onEntry` is called after each entry (for progress).
 */
export function* storeJsonChunks(
  entries: Iterable<[StoreKey, unknown]>,
  options: { entriesForm: boolean; indent?: number; onEntry?: () => void },
): Generator<string> {
  const { entriesForm, indent } = options
  yield entriesForm ? `{"${TAG}":"${ENTRIES_TAG}","value":[` : '{'
  let first = true
  for (const [key, value] of entries) {
    const json = JSON.stringify(toTagged(value, `value of ${JSON.stringify(key)}`), null, indent)
    const valueText = indent === undefined ? json : json.replaceAll('\n', '\n  ')
    const keyText = entriesForm ? JSON.stringify(toTagged(key)) : JSON.stringify(key)
    const line = entriesForm ? `[${keyText}, ${valueText}]` : `${keyText}: ${valueText}`
    yield `${first ? '' : ','}\n  ${line}`
    first = false
    options.onEntry?.()
  }
  yield first ? (entriesForm ? ']}\n' : '}\n') : entriesForm ? '\n]}\n' : '\n}\n'
}

export function storeToJson(entries: Iterable<[StoreKey, unknown]>, indent?: number): string {
  const list = [...entries]
  return [
    ...storeJsonChunks(list, { entriesForm: needsEntriesForm(list.map(([key]) => key)), indent }),
  ].join('')
}

/** Reads either JSON form of a store (already parsed) into its entries, values decoded. */
export function storeFromJson(json: unknown): [StoreKey, unknown][] {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new InvalidJsonError(
      `a store is a JSON object of key/value pairs, or {"${TAG}":"${ENTRIES_TAG}","value":[...]}`,
    )
  }
  const object = json as Record<string, unknown>
  if (!Object.hasOwn(object, TAG)) {
    // Top-level keys are store keys, not properties of a value: "__proto__" is a valid one.
    return Object.keys(object).map((key) => [
      key,
      fromTagged(object[key], `value of ${JSON.stringify(key)}`),
    ])
  }
  if (
    object[TAG] !== ENTRIES_TAG ||
    !Array.isArray(object.value) ||
    Object.keys(object).length !== 2
  ) {
    throw new InvalidJsonError(
      `a store object with a "${TAG}" property must be {"${TAG}":"${ENTRIES_TAG}","value":[[key, value], ...]}`,
    )
  }
  return object.value.map((pair: unknown, i: number): [StoreKey, unknown] => {
    if (!Array.isArray(pair) || pair.length !== 2) {
      throw new InvalidJsonError(`entry ${i} is not a [key, value] pair`)
    }
    const key = fromTagged(pair[0], `key of entry ${i}`)
    if (typeof key !== 'string' && typeof key !== 'number') {
      throw new InvalidJsonError(`the key of entry ${i} is neither a string nor a number`)
    }
    return [checkKey(key), fromTagged(pair[1], `value of ${JSON.stringify(key)}`)]
  })
}
