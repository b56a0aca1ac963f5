/**
 * A one-line progress bar for long CLI operations. It draws only when the stream is a
 * terminal and the job is large, at most every `intervalMs`, so piping the CLI's output or
 * running it on small stores prints nothing extra. Small enough (one counter, one line) that a
 * dependency would bring more than it saves.
 */
export interface ProgressStream {
  isTTY?: boolean
  columns?: number
  write(chunk: string): boolean
}

/** Jobs smaller than this finish too fast for a bar to help. */
export const PROGRESS_MIN_TOTAL = 2000

export class ProgressBar {
  readonly #label: string
  readonly #total: number
  readonly #stream: ProgressStream
  readonly #intervalMs: number
  readonly #enabled: boolean
  #lastDraw = 0
  #done = 0

  constructor(
    label: string,
    total: number,
    stream: ProgressStream = process.stderr,
    options: { minTotal?: number; intervalMs?: number } = {},
  ) {
    this.#label = label
    this.#total = total
    this.#stream = stream
    this.#intervalMs = options.intervalMs ?? 100
    this.#enabled = stream.isTTY === true && total >= (options.minTotal ?? PROGRESS_MIN_TOTAL)
  }

  get enabled(): boolean {
    return this.#enabled
  }

  update(done: number): void {
    this.#done = done
    if (!this.#enabled) return
    const now = Date.now()
    if (now - this.#lastDraw < this.#intervalMs) return
    this.#lastDraw = now
    this.#draw()
  }

  /** Draws the final state and ends the line. */
  finish(): void {
    if (!this.#enabled) return
    this.#draw()
    this.#stream.write('\n')
  }

  #draw(): void {
    const total = Math.max(this.#total, 1)
    const ratio = Math.min(this.#done / total, 1)
    const counts = `${this.#done}/${this.#total}`
    const percent = `${Math.floor(ratio * 100)}%`.padStart(4)
    const width = Math.max(
      10,
      Math.min(40, (this.#stream.columns ?? 80) - this.#label.length - counts.length - 12),
    )
    const filled = Math.round(ratio * width)
    const bar = `${'#'.repeat(filled)}${'-'.repeat(width - filled)}`
    this.#stream.write(`\r${this.#label} [${bar}] ${percent} ${counts}`)
  }
}
