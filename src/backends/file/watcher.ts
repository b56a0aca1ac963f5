import { basename, dirname } from 'node:path'
import type { FileSystem } from './fsio.js'
import { onTrustedLocalFileSystem } from './link-count.js'

/** How often a watcher without directory events checks for a new version: half the 100 ms promised. */
export const POLL_EVERY_MS = 50

/**
 * With directory events, a check all the same this often: for what events cannot report (the
 * directory itself removed or replaced, an overflowed event queue).
 */
export const BACKSTOP_EVERY_MS = 1000

export type WatchMode = 'events' | 'poll'

export interface CommitWatcherOptions {
  io: FileSystem
  /** The store file, its path already prepared. */
  file: string
  /** The read path's check, run whenever the file may have changed; must not throw. */
  check: () => void
}

/**
 * Tells the file backend when to look for commits by other processes (docs/DESIGN.md, "Change
 * events"). A commit renames a new file over the store's name, so the store's directory gets
 * an event (the file itself is a new inode each time: watching it would lose track after the
 * first commit). The event only says "look": the check is the read path's, which decides
 * whether a new version is there.
 *
 * Directory events are trusted on Linux's local file systems (the list of link-count.ts), where
 * every change is made through this kernel. Elsewhere, where the watch cannot be set up, where
 * it fails later, and with ANYSTORE_WATCH=poll, the watcher polls every POLL_EVERY_MS instead.
 */
export class CommitWatcher {
  readonly #name: string
  readonly #check: () => void
  #events: { close(): void } | undefined
  #timer: NodeJS.Timeout | undefined
  #closed = false

  constructor(options: CommitWatcherOptions) {
    const { io, file } = options
    this.#name = basename(file)
    this.#check = options.check
    const directory = dirname(file)
    if (
      io.watchDirectory !== undefined &&
      process.env.ANYSTORE_WATCH !== 'poll' &&
      onTrustedLocalFileSystem(directory)
    ) {
      try {
        this.#events = io.watchDirectory(
          directory,
          (name) => this.#onEvent(name),
          () => this.#fallBack(),
        )
      } catch {
        // No watch (the inotify limit, a directory that does not exist yet): poll.
        this.#events = undefined
      }
    }
    this.#schedule()
  }

  get mode(): WatchMode {
    return this.#events === undefined ? 'poll' : 'events'
  }

  #onEvent(name: string | null): void {
    // Temp files and the lockfile come and go with every commit: only the store's name counts.
    if (name === null || name === this.#name) this.#run()
  }

  /** The watch broke (its directory went away, ...): poll from now on, and look at once. */
  #fallBack(): void {
    if (this.#closed || this.#events === undefined) return
    this.#events.close()
    this.#events = undefined
    this.#schedule()
    this.#run()
  }

  #schedule(): void {
    clearInterval(this.#timer)
    const polling = this.#events === undefined
    this.#timer = setInterval(() => this.#run(), polling ? POLL_EVERY_MS : BACKSTOP_EVERY_MS)
    // The directory watch keeps the process running; while it does, the backstop need not.
    if (!polling) this.#timer.unref()
  }

  #run(): void {
    if (!this.#closed) this.#check()
  }

  close(): void {
    this.#closed = true
    this.#events?.close()
    this.#events = undefined
    clearInterval(this.#timer)
    this.#timer = undefined
  }
}
