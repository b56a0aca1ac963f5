/**
 * A FIFO async mutex. Inside one process (one thread), stores on the same file queue here
 * before they try the cross-process lock, so they never spin against each other on flock.
 */
export class Mutex {
  #tail: Promise<void> = Promise.resolve()
  #waiting = 0

  get idle(): boolean {
    return this.#waiting === 0
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    const previous = this.#tail
    let release!: () => void
    this.#tail = new Promise<void>((resolve) => {
      release = resolve
    })
    this.#waiting++
    try {
      await previous
      return await fn()
    } finally {
      this.#waiting--
      release()
    }
  }
}

const byPath = new Map<string, Mutex>()

/** Runs `fn` holding this thread's mutex for `path`; the entry is dropped once nobody waits. */
export async function withPathMutex<T>(path: string, fn: () => Promise<T>): Promise<T> {
  let mutex = byPath.get(path)
  if (mutex === undefined) {
    mutex = new Mutex()
    byPath.set(path, mutex)
  }
  try {
    return await mutex.run(fn)
  } finally {
    if (mutex.idle && byPath.get(path) === mutex) byPath.delete(path)
  }
}
