import { displayUrl } from '../backends/redis/connection.js'
import { expandPath } from '../store/options.js'

/**
 * Where a command's store lives: a file, or a store in Redis given as
 * `redis://[[user]:password@]host[:port][/db]#NAME` (or `rediss://` for TLS).
 *
 * The name is everything after the first `#`, taken literally. A fragment never reaches the
 * server in any URL scheme, and nothing else in a Redis URL may contain a bare `#` (a password
 * with one writes it `%23`), so the split is unambiguous and a name keeps its `:`s and `/`s
 * with no escaping. A name may not hold `@`, so that a password with a bare `#` is refused
 * rather than split, and never shown. See docs/DESIGN.md, "The CLI on Redis".
 */
export type StoreLocation =
  | { readonly kind: 'file'; readonly file: string; readonly display: string }
  | {
      readonly kind: 'redis'
      /** The URL without the `#NAME`: what node-redis connects to. */
      readonly url: string
      readonly name: string
      /** The location without credentials, for messages and output. */
      readonly display: string
    }

/** The location could not be understood: the command's usage error. */
export class LocationError extends Error {}

const REDIS_URL = /^rediss?:\/\//i

export function isRedisUrl(text: string): boolean {
  return REDIS_URL.test(text)
}

/** A FILE argument as a location: a Redis URL with `#NAME`, else a path (`~/` expanded). */
export function parseLocation(text: string): StoreLocation {
  if (!isRedisUrl(text)) {
    const file = expandPath(text)
    return { kind: 'file', file, display: file }
  }
  const hash = text.indexOf('#')
  const url = hash === -1 ? text : text.slice(0, hash)
  const name = hash === -1 ? '' : text.slice(hash + 1)
  const shown = displayUrl(url)
  if (name === '') {
    throw new LocationError(
      `${shown} names no store: put its name after '#', as in ${shown}#app:sessions`,
    )
  }
  // A password with a bare '#' splits there: the rest of the password and the host would be
  // taken for the name, and echoed in messages. A name cannot hold '@', so refuse without
  // showing any of it.
  if (name.includes('@') && !url.slice(url.indexOf('//') + 2).includes('@')) {
    throw new LocationError(
      "A Redis store's name cannot contain '@'. If the URL's password has a '#', write it as %23",
    )
  }
  // Braces would end the hash tag that keeps a store's keys in one Redis Cluster slot.
  if (/[{}]/.test(name)) {
    throw new LocationError(`The store name ${JSON.stringify(name)} contains '{' or '}', which a name may not`)
  }
  let host: string
  try {
    host = new URL(url).hostname
  } catch {
    throw new LocationError(`${shown} is not a valid URL: redis://[[user]:password@]host[:port][/db]#NAME`)
  }
  if (host === '') {
    throw new LocationError(`${shown} names no host: redis://[[user]:password@]host[:port][/db]#NAME`)
  }
  return { kind: 'redis', url, name, display: `${shown}#${name}` }
}
