const EMPTY = Buffer.alloc(0)

/**
 * Bytes held as consecutive parts of one size (the last may be shorter): the plaintext of a
 * large store as its slices come out of the decipher. Node's decipher returns a new buffer for
 * every slice, so keeping the slices, instead of copying them into one buffer, is what lets a
 * cold open hold the plaintext once.
 */
export class Segments {
  readonly parts: readonly Buffer[]
  readonly length: number
  /** The length of every part but the last. */
  readonly #partSize: number

  /** Every part but the last must have the first part's length. */
  constructor(parts: readonly Buffer[]) {
    const partSize = parts[0]?.length ?? 0
    let length = 0
    parts.forEach((part, i) => {
      if (i < parts.length - 1 && part.length !== partSize) {
        throw new Error(`part ${i} holds ${part.length} bytes, not ${partSize}`)
      }
      length += part.length
    })
    this.parts = parts
    this.length = length
    this.#partSize = partSize
  }

  static of(buffer: Buffer): Segments {
    return new Segments([buffer])
  }

  /** The part that holds byte `at` (0 ≤ at < length). */
  partOf(at: number): number {
    return this.parts.length === 1 ? 0 : Math.floor(at / this.#partSize)
  }

  /** Where part number `part` starts in the whole. */
  partStart(part: number): number {
    return part * this.#partSize
  }

  /**
   * Bytes [start, end) in one buffer, as [buffer, offset of `start` in it]: the part itself when
   * they lie in one part, else a copy.
   */
  locate(start: number, end: number): [Buffer, number] {
    if (end <= start) return [EMPTY, 0]
    const part = this.partOf(start)
    const base = this.partStart(part)
    const buffer = this.parts[part] as Buffer
    if (end - base <= buffer.length) return [buffer, start - base]
    const joined = Buffer.allocUnsafe(end - start)
    this.copy(joined, 0, start, end)
    return [joined, 0]
  }

  /**
   * Whether bytes [start, start + length) equal those of `other` from `otherStart`: compared
   * part against part, so that nothing is copied, whatever part boundaries the ranges cross.
   */
  sameBytes(start: number, other: Segments, otherStart: number, length: number): boolean {
    let done = 0
    while (done < length) {
      const part = this.partOf(start + done)
      const otherPart = other.partOf(otherStart + done)
      const bytes = this.parts[part] as Buffer
      const otherBytes = other.parts[otherPart] as Buffer
      const at = start + done - this.partStart(part)
      const otherAt = otherStart + done - other.partStart(otherPart)
      const n = Math.min(length - done, bytes.length - at, otherBytes.length - otherAt)
      if (bytes.compare(otherBytes, otherAt, otherAt + n, at, at + n) !== 0) return false
      done += n
    }
    return true
  }

  /** Copies bytes [start, end) to `target` at `targetStart`, like Buffer#copy; returns the count. */
  copy(target: Uint8Array, targetStart: number, start: number, end: number): number {
    let at = targetStart
    let position = start
    while (position < end) {
      const part = this.partOf(position)
      const base = this.partStart(part)
      const buffer = this.parts[part] as Buffer
      const stop = Math.min(end, base + buffer.length)
      if (stop <= position) throw new RangeError(`bytes ${start}..${end} run past ${this.length}`)
      at += buffer.copy(target, at, position - base, stop - base)
      position = stop
    }
    return at - targetStart
  }

  /** The whole as one buffer (the part itself when there is one). */
  join(): Buffer {
    if (this.parts.length === 1) return this.parts[0] as Buffer
    return Buffer.concat(this.parts as Buffer[], this.length)
  }
}
