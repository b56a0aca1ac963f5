import { Decoder, Encoder, ExtData, ExtensionCodec } from '@msgpack/msgpack'
import { CorruptFileError, UnsupportedValueError } from './errors.js'

/**
 * Values are MessagePack with extension types for what plain MessagePack loses or mangles
 * (see docs/FORMAT.md). Before encoding, `toWire` walks the value once: it rejects what cannot
 * be restored exactly, and turns the special cases into `ExtData`. That walk is also what makes
 * `set()` copy its input: the store keeps only the encoded bytes.
 */
export const EXT = {
  undefined: 1,
  negativeZero: 2,
  bigint: 3,
  date: 4,
  map: 5,
  set: 6,
  bytes: 7,
  buffer: 8,
} as const

/** Deeper values are refused rather than risking a stack overflow on decode. */
export const MAX_DEPTH = 100

const EMPTY = new Uint8Array(0)
const encoder = new Encoder({ maxDepth: MAX_DEPTH * 2 + 2 })

function encodeWire(wire: unknown): Uint8Array {
  return encoder.encode(wire)
}

function bigintToBytes(value: bigint): Uint8Array {
  const negative = value < 0n
  let magnitude = negative ? -value : value
  const digits: number[] = []
  while (magnitude > 0n) {
    digits.push(Number(magnitude & 0xffn))
    magnitude >>= 8n
  }
  digits.push(negative ? 1 : 0)
  return Uint8Array.from(digits.reverse())
}

function bytesToBigint(bytes: Uint8Array): bigint {
  let value = 0n
  for (let i = 1; i < bytes.length; i++) value = (value << 8n) | BigInt(bytes[i]!)
  return bytes[0] === 1 ? -value : value
}

function describe(value: unknown): string {
  if (typeof value === 'function') return 'a function'
  if (typeof value === 'symbol') return 'a symbol'
  const proto = Object.getPrototypeOf(value)
  const name = proto?.constructor?.name
  return name ? `an instance of ${name}` : 'an object with a custom prototype'
}

function toWire(value: unknown, path: string, depth: number, seen: Set<object>): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value
    case 'number':
      return Object.is(value, -0) ? new ExtData(EXT.negativeZero, EMPTY) : value
    case 'undefined':
      return new ExtData(EXT.undefined, EMPTY)
    case 'bigint':
      return new ExtData(EXT.bigint, bigintToBytes(value))
    case 'function':
    case 'symbol':
      throw new UnsupportedValueError(path, `${describe(value)} cannot be stored`)
  }
  if (value === null) return null
  const object = value as object
  if (depth >= MAX_DEPTH) {
    throw new UnsupportedValueError(path, `values nested deeper than ${MAX_DEPTH} levels`)
  }
  if (seen.has(object)) throw new UnsupportedValueError(path, 'a circular reference')
  seen.add(object)
  try {
    return objectToWire(object, path, depth + 1, seen)
  } finally {
    seen.delete(object)
  }
}

function objectToWire(object: object, path: string, depth: number, seen: Set<object>): unknown {
  if (Array.isArray(object)) {
    const out = new Array<unknown>(object.length)
    for (let i = 0; i < object.length; i++) out[i] = toWire(object[i], `${path}[${i}]`, depth, seen)
    return out
  }
  if (object instanceof Date) {
    const bytes = new Uint8Array(8)
    new DataView(bytes.buffer).setFloat64(0, object.getTime())
    return new ExtData(EXT.date, bytes)
  }
  if (object instanceof Map) {
    const flat: unknown[] = []
    let i = 0
    for (const [k, v] of object) {
      flat.push(
        toWire(k, `${path}<key ${i}>`, depth, seen),
        toWire(v, `${path}<value ${i}>`, depth, seen),
      )
      i++
    }
    return new ExtData(EXT.map, encodeWire(flat))
  }
  if (object instanceof Set) {
    const items: unknown[] = []
    let i = 0
    for (const item of object) items.push(toWire(item, `${path}<item ${i++}>`, depth, seen))
    return new ExtData(EXT.set, encodeWire(items))
  }
  if (
    object instanceof Uint8Array &&
    (object.constructor === Uint8Array || Buffer.isBuffer(object))
  ) {
    return new ExtData(Buffer.isBuffer(object) ? EXT.buffer : EXT.bytes, Uint8Array.from(object))
  }
  const proto = Object.getPrototypeOf(object)
  if (proto !== Object.prototype && proto !== null) {
    throw new UnsupportedValueError(
      path,
      `${describe(object)} cannot be restored; store a plain object, array, Map, Set, Date, Uint8Array or Buffer`,
    )
  }
  if (Object.getOwnPropertySymbols(object).length > 0) {
    throw new UnsupportedValueError(path, 'symbol-keyed properties cannot be stored')
  }
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(object)) {
    if (key === '__proto__') {
      throw new UnsupportedValueError(path, 'a property named __proto__ cannot be stored safely')
    }
    out[key] = toWire((object as Record<string, unknown>)[key], `${path}.${key}`, depth, seen)
  }
  return out
}

/** Encodes a value to bytes the store owns; throws UnsupportedValueError before anything is written. */
export function encodeValue(value: unknown): Uint8Array {
  const wire = toWire(value, 'value', 0, new Set())
  try {
    return encodeWire(wire)
  } catch (cause) {
    throw new UnsupportedValueError('value', `MessagePack could not encode it (${String(cause)})`)
  }
}

const extensions = new ExtensionCodec()
const decoder = new Decoder({ extensionCodec: extensions })

extensions.register({
  type: EXT.undefined,
  encode: () => null,
  decode: () => undefined,
})
extensions.register({ type: EXT.negativeZero, encode: () => null, decode: () => -0 })
extensions.register({ type: EXT.bigint, encode: () => null, decode: bytesToBigint })
extensions.register({
  type: EXT.date,
  encode: () => null,
  decode: (data) => new Date(new DataView(data.buffer, data.byteOffset, 8).getFloat64(0)),
})
extensions.register({
  type: EXT.map,
  encode: () => null,
  decode: (data) => {
    const flat = decoder.decode(data) as unknown[]
    const map = new Map<unknown, unknown>()
    for (let i = 0; i < flat.length; i += 2) map.set(flat[i], flat[i + 1])
    return map
  },
})
extensions.register({
  type: EXT.set,
  encode: () => null,
  decode: (data) => new Set(decoder.decode(data) as unknown[]),
})
// Copies: decoded slices would otherwise be views into the store's own bytes.
extensions.register({
  type: EXT.bytes,
  encode: () => null,
  decode: (data) => Uint8Array.from(data),
})
extensions.register({ type: EXT.buffer, encode: () => null, decode: (data) => Buffer.from(data) })

/**
 * Decodes bytes made by `encodeValue` into a fresh value the caller may mutate. Bytes that do
 * not decode can only come from a file (they authenticated, so a writer with the key made
 * them): that is a CorruptFileError naming `source`.
 */
export function decodeValue(bytes: Uint8Array, source = 'the store'): unknown {
  try {
    return decoder.decode(bytes)
  } catch (cause) {
    throw new CorruptFileError(source, `a value does not decode: ${String(cause)}`, { cause })
  }
}
