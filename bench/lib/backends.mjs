import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { removeDirs } from './data.mjs'

/**
 * The anystore build the suite measures: this checkout's dist/, or the dist/index.js named by
 * BENCH_BUILD (the suite's --build sets it, and child processes inherit it), so that two builds
 * can be measured in alternating runs. Loaded on first use, after the suite has read its options.
 */
let defaultBuild
export function loadBuild() {
  const path = process.env.BENCH_BUILD
  defaultBuild ??= import(path ? pathToFileURL(resolve(path)).href : '../../dist/index.js')
  return defaultBuild
}

/**
 * The backends the suite can measure, and what each offers. The suite skips (and says so) every
 * scenario a backend lacks something for:
 * - `file`: the store is one file the suite can stat, read, replace and cold-open; the limits
 *   (statSync, raw durable write, read + decrypt) and the floors are measured on that file.
 * - `crossProcess`: processes other than this one can open the same store.
 * - `coldOpen`: opening a new instance has work of its own to measure (reading and decrypting
 *   a file, connecting to a server); a new instance on an in-process Map has none.
 * - `durable`: an awaited commit survives a crash, so comparing it with lmdb-js's durable
 *   commits measures the same promise.
 * - `sync`, `compress`: whether those options mean anything for it; the operation matrix
 *   varies only the ones that do.
 */
export const BACKENDS = {
  file: {
    file: true,
    crossProcess: true,
    coldOpen: true,
    durable: true,
    sync: true,
    compress: true,
  },
  memory: {
    file: false,
    crossProcess: false,
    coldOpen: false,
    durable: false,
    sync: false,
    compress: false,
  },
  // Not durable for the comparison: when an acknowledged write reaches the server's disk depends
  // on its persistence settings, which the suite does not control. `sync` and `compress` are the
  // file's options.
  redis: {
    file: false,
    crossProcess: true,
    coldOpen: true,
    durable: false,
    sync: false,
    compress: false,
  },
}

export const BACKEND_NAMES = Object.keys(BACKENDS)

/** What `name` offers (BACKENDS); throws on a name the suite does not know. */
export function backendInfo(name) {
  const info = BACKENDS[name]
  if (info === undefined) {
    throw new Error(`unknown backend '${name}': expected one of ${BACKEND_NAMES.join(', ')}`)
  }
  return info
}

/**
 * One in-memory store per location per build, so that two openStore() calls on one location
 * share their entries, as two instances on one file do ("get after a commit by another
 * instance", the group commit's fresh reader, the final checks of every configuration).
 */
const memoryStores = new Map()

function memoryBackendAt(location, build) {
  let byBuild = memoryStores.get(location)
  if (byBuild === undefined) memoryStores.set(location, (byBuild = new Map()))
  let backend = byBuild.get(build)
  if (backend === undefined) byBuild.set(build, (backend = new build.MemoryBackend()))
  return backend
}


/** The Redis server the redis backend uses; child processes inherit it through the env. */
export function redisUrl() {
  return process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
}

/**
 * Opens an AnyStore on `backendName` at `location`: every scenario, fixture and check of the
 * suite (and the bench/ab-*.mjs and durability scripts) opens its stores here, so that a
 * backend is added in this one place.
 *
 * `location` is a path made by freshDir(): the file itself for `file`, a name for the others
 * (the same location opens the same store). `sync` and `compress` are passed only to backends
 * they mean something to (BACKENDS); the suite records them as n/a for the others;
 * `encryptionKey` to every backend. `build` is the module of an anystore build (default: see
 * defaultBuild), for A/B runs of two builds.
 */
export async function openStore(backendName, { location, sync, compress, encryptionKey, build }) {
  const info = backendInfo(backendName)
  build ??= await loadBuild()
  const tuning = {
    ...(info.sync && sync !== undefined ? { sync } : {}),
    ...(info.compress && compress !== undefined ? { compress } : {}),
    ...(encryptionKey !== undefined ? { encryptionKey } : {}),
  }
  switch (backendName) {
    case 'file':
      return build.AnyStore.open({ file: location, ...tuning })
    case 'memory':
      return build.AnyStore.open({ backend: memoryBackendAt(location, build), ...tuning })
    case 'redis':
      return openRedis(location, tuning, build)
  }
  throw new Error(`backend '${backendName}' is listed in BACKENDS but openStore cannot open it`)
}

/**
 * A store on the Redis server of redisUrl(). A build older than the Redis backend refuses the
 * option (an A/B run with --build), and the suite stops with this message instead of
 * anystore's "unknown option". Each location is its own store name, so runs do not share data;
 * the stores stay on the server after the run: point BENCH_REDIS_URL at a scratch server.
 */
async function openRedis(location, tuning, build) {
  const redis = { url: redisUrl(), name: `anystore-bench:${location}` }
  try {
    return await build.AnyStore.open({ redis, ...tuning })
  } catch (error) {
    if (error?.code === 'ERR_ANYSTORE_INVALID_OPTION' && /\bredis\b/.test(error.message)) {
      throw new Error(
        "backend 'redis': this build of anystore has no `redis: { url, name }` option " +
          `(AnyStore.open said: ${error.message}). Measure file or memory, or build a ` +
          'checkout whose src/ has the Redis backend.',
        { cause: error },
      )
    }
    throw error
  }
}

/** Removes the stores of the scenarios run so far: their directories and in-memory stores. */
export function removeStores() {
  removeDirs()
  // Otherwise a run keeps every configuration's in-memory store, up to 100,000 entries each.
  memoryStores.clear()
}
