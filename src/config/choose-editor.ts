import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'
import { InvalidOptionError } from '../store/errors.js'

const FALLBACK_EDITORS = ['vim', 'vi', 'nano']

function onPath(command: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue
    try {
      accessSync(join(dir, command), constants.X_OK)
      return true
    } catch {
      // Not there, or not executable: try the next directory.
    }
  }
  return false
}

/** `$VISUAL`, `$EDITOR`, the given editor, or the first of vim, vi and nano on the PATH. */
export function chooseEditor(given?: string): string {
  for (const candidate of [process.env.VISUAL, process.env.EDITOR, given]) {
    if (candidate !== undefined && candidate.trim() !== '') return candidate
  }
  const found = FALLBACK_EDITORS.find(onPath)
  if (found === undefined) {
    throw new InvalidOptionError(
      'No editor found: set $EDITOR (or $VISUAL), or pass `editor`',
      'editor',
    )
  }
  return found
}
