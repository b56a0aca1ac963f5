import type { Stats } from 'node:fs'

/** What identifies one version of the file: the inode (pinned open, so never reused) plus size and mtime. */
export interface Identity {
  dev: number
  ino: number
  size: number
  mtimeMs: number
  /** For the link-count check: rename over the file, link(2) and unlink(2) all change both. */
  nlink: number
  ctimeMs: number
  /** Where the status byte of this version is (format version 2), else undefined. */
  statusAt: number | undefined
  /** Whether its status byte was seen set: from then on only the fstat check is used. */
  superseded: boolean
}

export function sameIdentity(stats: Stats, known: Identity): boolean {
  return (
    stats.ino === known.ino &&
    stats.dev === known.dev &&
    stats.size === known.size &&
    stats.mtimeMs === known.mtimeMs
  )
}

export function identityOf(stats: Stats, statusAt: number | undefined): Identity {
  return {
    dev: stats.dev,
    ino: stats.ino,
    size: stats.size,
    mtimeMs: stats.mtimeMs,
    nlink: stats.nlink,
    ctimeMs: stats.ctimeMs,
    statusAt,
    superseded: false,
  }
}

/**
 * How long the status byte alone may vouch for a version. It tells of every anystore commit at
 * once; this bounds how long a file replaced or rewritten by some other program goes unnoticed
 * (a timer marks when the next read must check fully, so reads never read the clock).
 */
export const FULL_CHECK_EVERY_MS = 100

/**
 * The fast read check (docs/DESIGN.md, "The read check in detail"): the loaded version, seen through its kept
 * descriptor, still has its one link and is otherwise untouched. A commit renames a new file
 * over it, which drops its link count to 0 and changes its ctime.
 */
export function stillTheOnlyLink(pinned: Stats, known: Identity): boolean {
  return (
    pinned.nlink === 1 &&
    known.nlink === 1 &&
    pinned.ctimeMs === known.ctimeMs &&
    sameIdentity(pinned, known)
  )
}
