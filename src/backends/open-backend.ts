import type { Backend } from './backend.js'
import { FileBackend, type FileBackendOptions } from './file/file-backend.js'
import type { ResolvedOptions } from '../store/options.js'
import type { RedisBackend } from './redis/redis-backend.js'

/**
 * The one place resolved options become a file backend: the store, rekey and restore all open
 * their file through it, so an option reaches the backend the same way from each. Loads the
 * file (a wrong key or a damaged file throws here).
 */
export function openFileBackend(
  file: string,
  options: ResolvedOptions,
  extra: Pick<FileBackendOptions, 'sealWith'> & { compress?: boolean } = {},
): FileBackend {
  return FileBackend.open(file, {
    keyring: options.keyring,
    sealWith: extra.sealWith,
    compress: extra.compress ?? options.compress,
    sync: options.sync,
    lock: options.lock,
    lockTimeoutMs: options.lockTimeoutMs,
    maxFileSize: options.maxFileSize,
    staleMs: options.staleMs,
    io: options.fs,
    formatVersion: options.formatVersion,
    readOnly: options.readOnly,
  })
}

export type { Backend }

/**
 * Connects to Redis and opens the store the `redis` option names (a wrong key, foreign data or
 * a server out of reach throws here). node-redis and the Redis backend are loaded only now: a
 * store that does not use Redis never loads them.
 */
export async function openRedisBackend(options: ResolvedOptions): Promise<RedisBackend> {
  const redis = options.redis
  if (redis === undefined) throw new TypeError('openRedisBackend() without the `redis` option')
  const { RedisBackend } = await import('./redis/redis-backend.js')
  return RedisBackend.open(redis, options.keyring, options.readOnly)
}
