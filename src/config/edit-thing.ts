import type { EditThingOptions } from './editor.js'

export type { EditThingOptions }

/**
 * Opens the thing stored under `key` (or `defaults`) in the user's editor as JSON (tagged
 * form for non-JSON types), validates the result with `schema` when given, and stores it
 * back to the file and/or `writer`. Resolves to the saved thing.
 */
export async function editThing<T>(options: EditThingOptions<T>): Promise<T> {
  // The editor's code (with child_process and readline) loads on the first edit, not with
  // the package.
  const editor = await import('./editor.js')
  return editor.editThing(options)
}
