import type { Overlay } from './overlay.js'
import { type Entry, recordSize, StoredEntry, writeEntry } from './payload.js'
import type { StoreKey } from './types.js'

/**
 * How a map loaded from `payload` differs from it now, in terms of records: which of the
 * payload's records were overwritten in place or dropped, and which keys now follow the
 * payload's records, in order. With it a commit copies the payload around its few changed
 * records instead of visiting every entry (see `encodeOverImage`).
 */
export class PayloadImage {
  readonly payload: Buffer
  /** The payload's own record of every key touched since it was loaded. */
  readonly origin: Map<StoreKey, StoredEntry>
  /** Keys whose record in the payload no longer counts (deleted, maybe set again at the end). */
  readonly displaced: Set<StoreKey>
  /** Keys after the payload's records, in map order: new keys and displaced keys set again. */
  readonly tail: Set<StoreKey>
  /** Past this many touched keys the image costs more than it saves, and is dropped. */
  readonly limit: number

  constructor(
    payload: Buffer,
    limit: number,
    origin = new Map<StoreKey, StoredEntry>(),
    displaced = new Set<StoreKey>(),
    tail = new Set<StoreKey>(),
  ) {
    this.payload = payload
    this.limit = limit
    this.origin = origin
    this.displaced = displaced
    this.tail = tail
  }

  clone(): PayloadImage {
    return new PayloadImage(
      this.payload,
      this.limit,
      new Map(this.origin),
      new Set(this.displaced),
      new Set(this.tail),
    )
  }

  get full(): boolean {
    return this.origin.size + this.tail.size > this.limit
  }

  /** Whether `key` has a record in the payload; `current` is its entry before this change. */
  #inPayload(key: StoreKey, current: Entry | undefined): boolean {
    if (this.origin.has(key)) return true
    // An untouched key still holds the entry parsed from the payload.
    if (current instanceof StoredEntry && current.payload === this.payload) {
      this.origin.set(key, current)
      return true
    }
    return false
  }

  /** Mirrors `map.set(key, ...)`: an existing key keeps its place, a new one goes last. */
  set(key: StoreKey, current: Entry | undefined): void {
    const atRecord = this.#inPayload(key, current) && !this.displaced.has(key)
    if (!atRecord) this.tail.add(key)
  }

  /** Mirrors `map.delete(key)`. */
  delete(key: StoreKey, current: Entry | undefined): void {
    if (this.#inPayload(key, current)) this.displaced.add(key)
    this.tail.delete(key)
  }
}

/** A map that keeps its PayloadImage up to date through every change, or drops it. */
export class ImagedMap extends Map<StoreKey, Entry> {
  image: PayloadImage | undefined

  /** Parses nothing itself: fill it (decodePayload) first, then attach the image of `payload`. */
  attach(payload: Buffer, limit = Math.max(1024, this.size >> 4)): this {
    this.image = new PayloadImage(payload, limit)
    return this
  }

  override set(key: StoreKey, entry: Entry): this {
    const image = this.image
    if (image !== undefined) {
      image.set(key, super.get(key))
      if (image.full) this.image = undefined
    }
    return super.set(key, entry)
  }

  override delete(key: StoreKey): boolean {
    const image = this.image
    if (image !== undefined) {
      image.delete(key, super.get(key))
      if (image.full) this.image = undefined
    }
    return super.delete(key)
  }

  override clear(): void {
    this.image = undefined
    super.clear()
  }
}

/**
 * The payload for what `overlay` would make of its base, built from the base's image: the
 * loaded payload copied around the records that change, then the keys that follow it. Byte for
 * byte what `encodePayload(overlay.entries())` produces; undefined when the base has no image.
 */
export function encodeOverImage(overlay: Overlay): Buffer | undefined {
  const base = overlay.base
  if (!(base instanceof ImagedMap) || base.image === undefined) return undefined
  const pending = overlay.pendingChanges()
  if (pending.cleared) return undefined
  // What the image will be once the overlay is applied, the same way applyTo applies it.
  const image = base.image.clone()
  for (const [key, change] of pending.changes) {
    const current = base.get(key)
    if (change === undefined || pending.moved.has(key)) image.delete(key, current)
    if (change !== undefined) image.set(key, current)
  }
  if (image.full) return undefined

  const payload = image.payload
  const edited = [...image.origin].sort((a, b) => a[1].recordStart - b[1].recordStart)
  let size = payload.length
  for (const [key, record] of edited) {
    size -= record.valueEnd - record.recordStart
    if (!image.displaced.has(key)) size += recordSize(key, overlay.get(key) as Entry)
  }
  for (const key of image.tail) size += recordSize(key, overlay.get(key) as Entry)

  const out = Buffer.allocUnsafe(size)
  out.writeUInt32BE(overlay.size, 0)
  let at = 4
  let copied = 4
  for (const [key, record] of edited) {
    at += payload.copy(out, at, copied, record.recordStart)
    copied = record.valueEnd
    if (!image.displaced.has(key)) at = writeEntry(out, at, key, overlay.get(key) as Entry)
  }
  at += payload.copy(out, at, copied, payload.length)
  for (const key of image.tail) at = writeEntry(out, at, key, overlay.get(key) as Entry)
  if (at !== size) throw new Error(`payload image miscounted: wrote ${at} of ${size} bytes`)
  return out
}
