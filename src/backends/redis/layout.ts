/**
 * The Redis keys of one store (docs/DESIGN.md, "The Redis backend"). The name sits in braces,
 * a hash tag: Redis Cluster puts every key of the store in one slot, so one script may touch
 * them all.
 */
export interface Layout {
  /** Hash: magic, format, store id, key check, key length, KDF block; written once. */
  readonly meta: string
  /**
   * Hash: keyed hash of a key name (16 bytes) → the sealed entry; and, under short names no
   * field takes, the store's own: ENTRIES_ID_FIELD → the store id, so that a get reads the
   * entry and the id that tells the store is still this one in one HMGET; `seq` → the commit
   * number; `ins` → the number of inserts; `x` → '1' once an entry with an expiry was set since
   * the last clear. A commit reads them with one HMGET and updates them with its entries.
   */
  readonly entries: string
  /** Sorted set: keyed hash → insertion sequence number, for Map order and ZCARD. */
  readonly order: string
  /**
   * Hashes: commit id → the results of its deletes, for commits sent again after a lost reply.
   * Two generations, by the commit number: commits numbered in an even span of
   * RECORDED_COMMITS go to the first, in an odd one to the second, each emptied as its span
   * begins, so the record holds the last RECORDED_COMMITS to twice as many.
   */
  readonly commits: string
  /** The record's other generation (see commits). */
  readonly commitsOther: string
  /**
   * Sorted set: keyed hash of a key whose entry expires → its expiry time (ms since the epoch),
   * so that the scripts can hide and drop expired entries without opening them. The time
   * sealed in the entry is the one that counts; this is its copy in the clear.
   */
  readonly expiry: string
  /**
   * The pub/sub channel each commit that changed something is announced on (a channel, not a
   * key: it holds nothing). The meta's name with `changes` for `meta`: the commit script
   * derives it so, rather than receive it with every commit.
   */
  readonly channel: string
}

/**
 * The field of the entries hash that holds the store id (hex). Entry fields are 16 bytes long,
 * so this one, 2 bytes, is never an entry's. Written when the store is created and again by
 * each clear; an entries hash that lacks it (edited on the server) makes a get read the id from
 * the meta instead, in a second round trip, until the next commit that changes something puts
 * it back (the scripts too take the meta's word for it).
 */
export const ENTRIES_ID_FIELD = 'id'

export function layoutOf(name: string): Layout {
  const prefix = `anystore:{${name}}:`
  return {
    meta: `${prefix}meta`,
    entries: `${prefix}entries`,
    order: `${prefix}order`,
    commits: `${prefix}commits`,
    commitsOther: `${prefix}commits-2`,
    expiry: `${prefix}expiry`,
    channel: `${prefix}changes`,
  }
}

/** Every key of a store, meta first: the order the init script checks their types in. */
export function allKeys(layout: Layout): string[] {
  return [
    layout.meta,
    layout.entries,
    layout.order,
    layout.commits,
    layout.commitsOther,
    layout.expiry,
  ]
}
