import { Decoder, Encoder, ExtData, ExtensionCodec } from '@msgpack/msgpack'
import { CorruptFileError, UnsupportedValueError } from '../store/errors.js'

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
    const flat = decoder.decode(data)
    if (!Array.isArray(flat)) throw new TypeError('a Map holds something other than an array')
    const map = new Map<unknown, unknown>()
    for (let i = 0; i < flat.length; i += 2) map.set(flat[i], flat[i + 1])
    return map
  },
})
extensions.register({
  type: EXT.set,
  encode: () => null,
  decode: (data) => {
    const items = decoder.decode(data)
    if (!Array.isArray(items)) throw new TypeError('a Set holds something other than an array')
    return new Set(items)
  },
})
// Copies: decoded slices would otherwise be views into the store's own bytes.
extensions.register({
  type: EXT.bytes,
  encode: () => null,
  decode: (data) => Uint8Array.from(data),
})
extensions.register({ type: EXT.buffer, encode: () => null, decode: (data) => Buffer.from(data) })

/** The ext types that toWire makes from an object, so that count as a level of nesting. */
const OBJECT_EXTS = new Set<number>([EXT.date, EXT.map, EXT.set, EXT.bytes, EXT.buffer])

/** Bytes after a MessagePack str, bin or ext type byte that hold its length (0 for other types). */
function lengthBytes(type: number): number {
  if (type === 0xc4 || type === 0xc7 || type === 0xd9) return 1
  if (type === 0xc5 || type === 0xc8 || type === 0xda) return 2
  if (type === 0xc6 || type === 0xc9 || type === 0xdb) return 4
  return 0
}

/** Sizes of the fixed-size MessagePack types after their type byte: floats, ints, fixext. */
function fixedSize(type: number): number {
  switch (type) {
    case 0xca:
      return 4
    case 0xcb:
      return 8
    case 0xcc:
    case 0xd0:
      return 1
    case 0xcd:
    case 0xd1:
      return 2
    case 0xce:
    case 0xd2:
      return 4
    case 0xcf:
    case 0xd3:
      return 8
    default:
      return 0
  }
}

/**
 * Whether encoded `bytes` nest objects deeper than MAX_DEPTH, counted as toWire counts them:
 * arrays, plain objects and the ext types made from objects are a level each; a Map's or Set's
 * inner array is not a level of its own. The decoder keeps its own stack, so it would rebuild
 * a value a million levels deep (seconds, and a stack overflow in whoever walks it next); this
 * walks the bytes first, without building anything, and stops at the first level too many.
 * It only counts: bytes that are not well-formed are left for the decoder to refuse, except a
 * Map or Set whose items are not one array. That is refused here, as the decoder would build
 * whatever the ext holds before it could look at it, however deep.
 */
function unreadableDepth(bytes: Uint8Array): string | undefined {
  // Every level takes at least one byte.
  if (bytes.length <= MAX_DEPTH) return undefined
  // Items still to read in each open container, innermost last.
  const open: number[] = []
  let at = 0
  while (at < bytes.length) {
    // Close the containers whose items are all read; the item at `at` belongs to the innermost left.
    while (open.length > 0 && open[open.length - 1] === 0) open.pop()
    if (open.length > 0) open[open.length - 1]!--
    else if (at > 0) return undefined
    const type = bytes[at++]!
    let items = -1
    if ((type >= 0x80 && type <= 0x8f) || (type >= 0x90 && type <= 0x9f)) {
      items = type <= 0x8f ? (type & 0x0f) * 2 : type & 0x0f
    } else if (type >= 0xdc && type <= 0xdf) {
      const wide = type === 0xdd || type === 0xdf
      const count = wide ? readU32(bytes, at) : ((bytes[at]! << 8) | bytes[at + 1]!) >>> 0
      at += wide ? 4 : 2
      items = type >= 0xde ? count * 2 : count
    } else if (type >= 0xa0 && type <= 0xbf) {
      at += type & 0x1f
    } else if ((type >= 0xc4 && type <= 0xc9) || (type >= 0xd4 && type <= 0xdb)) {
      const size = lengthBytes(type)
      let length: number
      if (type >= 0xd4 && type <= 0xd8) length = 1 << (type - 0xd4)
      else if (size === 1) length = bytes[at]!
      else if (size === 2) length = (bytes[at]! << 8) | bytes[at + 1]!
      else length = readU32(bytes, at)
      at += size
      const isExt = type === 0xc7 || type === 0xc8 || type === 0xc9 || (type >= 0xd4 && type <= 0xd8)
      if (!isExt) {
        at += length
      } else {
        const extType = bytes[at++]!
        if (OBJECT_EXTS.has(extType) && open.length + 1 > MAX_DEPTH) return TOO_DEEP
        if ((extType === EXT.map || extType === EXT.set) && length > 0) {
          // The Map's or Set's items follow as one array: read on as its items, one level in.
          const header = bytes[at]!
          if (header >= 0x90 && header <= 0x9f) {
            open.push(header & 0x0f)
            at += 1
          } else if (header === 0xdc) {
            open.push((bytes[at + 1]! << 8) | bytes[at + 2]!)
            at += 3
          } else if (header === 0xdd) {
            open.push(readU32(bytes, at + 1))
            at += 5
          } else {
            return 'a Map or Set holds something other than one array'
          }
        } else {
          at += length
        }
      }
    } else {
      at += fixedSize(type)
    }
    if (items >= 0) {
      if (open.length + 1 > MAX_DEPTH) return TOO_DEEP
      open.push(items)
    }
  }
  return undefined
}

const TOO_DEEP = `a value is nested deeper than ${MAX_DEPTH} levels, which anystore never writes`

function readU32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0
}

/**
 * Decodes bytes made by `encodeValue` into a fresh value the caller may mutate. Bytes that do
 * not decode can only come from a file (they authenticated, so a writer with the key made
 * them): that is a CorruptFileError naming `source`. So is a value nested deeper than
 * encodeValue ever writes: refused here, before the decoder builds it.
 */
export function decodeValue(bytes: Uint8Array, source = 'the store'): unknown {
  const unreadable = unreadableDepth(bytes)
  if (unreadable !== undefined) throw new CorruptFileError(source, unreadable)
  try {
    return decoder.decode(bytes)
  } catch (cause) {
    throw new CorruptFileError(source, `a value does not decode: ${String(cause)}`, { cause })
  }
}
