import { InvalidJsonError, UnsupportedValueError } from '../store/errors.js'

/**
 * JSON for values JSON cannot hold: the CLI's dump/import/get/set and the editor all use it,
 * so what one prints the other reads back exactly. A value JSON lacks becomes a tag object
 * `{"$anystore": "<type>", "value": ...}` (the README has the table). A plain object
 * that itself has a `$anystore` property is wrapped in an `object` tag so it is never
 * mistaken for one.
 */
export const TAG = '$anystore'

/** Far deeper than the codec's limit: only a guard against overflowing the stack on hostile input. */
const MAX_NESTING = 1000

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

type Json = null | boolean | number | string | Json[] | { [key: string]: Json }

function tag(type: string, value?: Json): Json {
  const out: { [key: string]: Json } = Object.create(null)
  out[TAG] = type
  if (value !== undefined) out.value = value
  return out
}

/** Turns a stored value into JSON-safe data (tags for the rest). */
export function toTagged(value: unknown, path = 'value', depth = 0): Json {
  if (depth > MAX_NESTING) throw new UnsupportedValueError(path, 'it is nested too deeply')
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value
    case 'number':
      if (Number.isNaN(value)) return tag('number', 'NaN')
      if (value === Number.POSITIVE_INFINITY) return tag('number', 'Infinity')
      if (value === Number.NEGATIVE_INFINITY) return tag('number', '-Infinity')
      if (Object.is(value, -0)) return tag('number', '-0')
      return value
    case 'undefined':
      return tag('undefined')
    case 'bigint':
      return tag('bigint', value.toString())
    case 'function':
    case 'symbol':
      throw new UnsupportedValueError(path, `a ${typeof value} has no JSON form`)
  }
  if (value === null) return null
  const next = depth + 1
  if (Array.isArray(value)) {
    return Array.from(value, (item, i) => toTagged(item, `${path}[${i}]`, next))
  }
  if (value instanceof Date) {
    return tag('date', Number.isNaN(value.getTime()) ? null : value.toISOString())
  }
  if (value instanceof Map) {
    let i = 0
    return tag(
      'map',
      Array.from(value, ([k, v]) => {
        const pair = [
          toTagged(k, `${path}<key ${i}>`, next),
          toTagged(v, `${path}<value ${i}>`, next),
        ]
        i++
        return pair
      }),
    )
  }
  if (value instanceof Set) {
    return tag(
      'set',
      Array.from(value, (item, i) => toTagged(item, `${path}<item ${i}>`, next)),
    )
  }
  if (value instanceof Uint8Array) {
    const base64 = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')
    return tag(Buffer.isBuffer(value) ? 'buffer' : 'bytes', base64)
  }
  const source = value as Record<string, unknown>
  const object: { [key: string]: Json } = Object.create(null)
  for (const key of Object.keys(source)) {
    object[key] = toTagged(source[key], `${path}.${key}`, next)
  }
  return Object.hasOwn(source, TAG) ? tag('object', object) : object
}

function fail(path: string, detail: string): never {
  throw new InvalidJsonError(`${path}: ${detail}`)
}

function expectString(value: unknown, path: string, type: string): string {
  if (typeof value !== 'string') fail(path, `a "${type}" tag needs a string "value"`)
  return value
}

function expectArray(value: unknown, path: string, type: string): unknown[] {
  if (!Array.isArray(value)) fail(path, `a "${type}" tag needs an array "value"`)
  return value
}

function decodeBase64(text: string, path: string): Buffer {
  if (text.length % 4 !== 0 || !BASE64.test(text)) fail(path, 'the value is not padded base64')
  return Buffer.from(text, 'base64')
}

const SPECIAL_NUMBERS: Record<string, number> = {
  NaN: Number.NaN,
  Infinity: Number.POSITIVE_INFINITY,
  '-Infinity': Number.NEGATIVE_INFINITY,
  '-0': -0,
}

function fromTag(object: Record<string, unknown>, path: string, depth: number): unknown {
  const type = object[TAG]
  const extra = Object.keys(object).filter((key) => key !== TAG && key !== 'value')
  if (extra.length > 0) fail(path, `a tag object has only "${TAG}" and "value", got "${extra[0]}"`)
  const value = object.value
  switch (type) {
    case 'undefined':
      return undefined
    case 'number': {
      const text = expectString(value, path, type)
      if (!Object.hasOwn(SPECIAL_NUMBERS, text)) fail(path, `unknown special number "${text}"`)
      return SPECIAL_NUMBERS[text]
    }
    case 'bigint': {
      const text = expectString(value, path, type)
      if (!/^-?\d+$/.test(text)) fail(path, `"${text}" is not a decimal integer`)
      return BigInt(text)
    }
    case 'date': {
      if (value === null) return new Date(Number.NaN)
      const time = Date.parse(expectString(value, path, type))
      if (Number.isNaN(time)) fail(path, `"${String(value)}" is not a date`)
      return new Date(time)
    }
    case 'map':
      return new Map(
        expectArray(value, path, type).map((pair, i) => {
          if (!Array.isArray(pair) || pair.length !== 2)
            fail(`${path}<entry ${i}>`, 'expected a [key, value] pair')
          return [
            fromTagged(pair[0], `${path}<key ${i}>`, depth),
            fromTagged(pair[1], `${path}<value ${i}>`, depth),
          ]
        }),
      )
    case 'set':
      return new Set(
        expectArray(value, path, type).map((item, i) =>
          fromTagged(item, `${path}<item ${i}>`, depth),
        ),
      )
    case 'bytes':
      return new Uint8Array(decodeBase64(expectString(value, path, type), path))
    case 'buffer':
      return decodeBase64(expectString(value, path, type), path)
    case 'object':
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        fail(path, 'an "object" tag needs an object "value"')
      }
      return plainObject(value as Record<string, unknown>, path, depth)
    default:
      return fail(path, `unknown tag ${JSON.stringify(type)}`)
  }
}

function plainObject(source: Record<string, unknown>, path: string, depth: number): object {
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(source)) {
    // JSON.parse makes "__proto__" an own property; assigning it here would set the prototype.
    if (key === '__proto__') fail(path, 'a property named "__proto__" is refused')
    out[key] = fromTagged(source[key], `${path}.${key}`, depth)
  }
  return out
}

/** Turns parsed JSON in the tagged form back into the value it describes. */
export function fromTagged(json: unknown, path = 'value', depth = 0): unknown {
  if (depth > MAX_NESTING) fail(path, 'nested too deeply')
  if (json === null || typeof json !== 'object') return json
  const next = depth + 1
  if (Array.isArray(json)) return json.map((item, i) => fromTagged(item, `${path}[${i}]`, next))
  const object = json as Record<string, unknown>
  if (Object.hasOwn(object, TAG)) return fromTag(object, path, next)
  return plainObject(object, path, next)
}

/** JSON.parse, with syntax errors turned into InvalidJsonError. */
export function parseJson(text: string, what = 'input'): unknown {
  try {
    return JSON.parse(text)
  } catch (cause) {
    throw new InvalidJsonError(`${what} is not JSON (${(cause as Error).message})`, { cause })
  }
}

export function stringifyTagged(value: unknown, indent?: number): string {
  return JSON.stringify(toTagged(value), null, indent)
}

export function parseTagged(text: string, what = 'input'): unknown {
  return fromTagged(parseJson(text, what))
}
