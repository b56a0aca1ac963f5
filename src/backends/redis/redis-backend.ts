import { fillRandom } from '../../crypto.js'
import { newStoreId, parseKdfBlock } from '../../format/header.js'
import type { Entry } from '../../format/payload.js'
import {
  CorruptFileError,
  ForeignDataError,
  ReadOnlyError,
  StoreClosedError,
  StoreReplacedError,
  UnsupportedFormatError,
} from '../../store/errors.js'
import type { KeyRing } from '../../store/keyring.js'
import type { StoreKey } from '../../store/types.js'
import {
  type Backend,
  type BackendTransaction,
  type BackendWatcher,
  type Change,
  type ChangeResult,
  type CommitOutcome,
  type EntryChange,
  isExpired,
  type KeyQuery,
  matches,
} from '../backend.js'
import { ChangeFeed } from '../change-feed.js'
import { type CallKind, displayUrl, RedisConnection } from './connection.js'
import { allKeys, ENTRIES_ID_FIELD, type Layout, layoutOf } from './layout.js'
import {
  fieldOf,
  keyCheck,
  keyCheckEquals,
  LAYOUT_VERSION,
  MAGIC,
  normalizeKey,
  markOf,
  openEntry,
  type RedisKeys,
  redisKeys,
  SealError,
  sealEntry,
  STORE_ID_SIZE,
} from './sealing.js'
import { COMMIT, INIT, pack, PAGE, type Script, SIZE, UNPACKED_CHANGES } from './scripts.js'
import type { RedisArgument, RedisCommands, ResolvedRedisOptions } from './types.js'
import { RecentEntries } from './recent-entries.js'
import { type CommitSource, CommitWatcher, watchesStarting } from './watcher.js'

/** Entries per page of a listing: one script call each, a bounded reply. */
const PAGE_SIZE = 128

/** The store the meta describes, once its key check passed. */
interface Opened {
  readonly id: Buffer
  readonly idHex: string
  readonly keys: RedisKeys
  /** The fields of keys used lately (see fieldFor). */
  readonly fields: Map<StoreKey, Buffer>
  /** Entries opened or sealed lately, to open again without decrypting. */
  readonly recent: RecentEntries
}

/**
 * How many key names' fields a store keeps: a field is the same keyed hash every time, and the
 * keys an application uses again and again then cost no HMAC. The oldest goes first.
 */
const FIELDS_KEPT = 4096

/** The field of `key` in `store`: fieldOf, kept for the next call. */
function fieldFor(store: Opened, key: StoreKey): Buffer {
  // A Map compares keys as fieldOf normalizes them: -0 as 0, NaN as NaN.
  let field = store.fields.get(key)
  if (field === undefined) {
    field = fieldOf(store.keys, store.id, key)
    if (store.fields.size >= FIELDS_KEPT) store.fields.delete(store.fields.keys().next().value!)
    store.fields.set(key, field)
  }
  return field
}

/**
 * What a transaction read: each field with the mark of the entry read (see markOf; '' for
 * none) and whether it was there (an entry seen that has expired by the commit is a change),
 * and the commit number and time of the first listing or count.
 */
interface ReadSet {
  readonly keys: Map<string, { field: Buffer; mark: Buffer | '' | typeof CHANGED; key: StoreKey; present: boolean }>
  listed: { seq: string; now: number } | undefined
}

/**
 * The mark of a key read twice with two different entries: a byte, which no entry's mark (16
 * bytes) or an absent key's ('') equals, so the commit conflicts.
 */
const CHANGED = '-'

function sameMark(a: Buffer | '' | typeof CHANGED, b: Buffer | ''): boolean {
  if (typeof a === 'string' || typeof b === 'string') return a === b
  return a.equals(b)
}

/** The read set of a commit that read nothing. */
const NO_READS: ReadSet = { keys: new Map(), listed: undefined }

/** One entry of a listing, with its field. */
type Listed = [field: Buffer, key: StoreKey, entry: Entry]

function text(value: unknown): string {
  return Buffer.isBuffer(value) ? value.toString('utf8') : String(value)
}

function reply(value: unknown, location: string): unknown[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new CorruptFileError(location, 'a script answered with something it never sends')
  }
  return value
}

/**
 * A store kept in Redis (docs/DESIGN.md, "The Redis backend"): one entry per hash field, read
 * one at a time, and commits as one server-side script that checks what the transaction read
 * and applies its changes atomically, or reports a conflict. Optimistic: many processes and
 * instances share a store without a lock.
 */
export class RedisBackend implements Backend {
  readonly kind = 'redis'
  readonly location: string
  readonly concurrency = 'optimistic'
  // Nothing is held during a transaction: no call inside one can wait for itself.
  readonly exclusiveScope = undefined
  readonly readOnly: boolean
  readonly #connection: RedisConnection
  readonly #layout: Layout
  /** allKeys(layout), made once: every commit sends them. */
  readonly #keys: string[]
  readonly #keyring: KeyRing
  readonly #timeoutMs: number
  /** Undefined only for a read-only instance opened before the store was created. */
  #opened: Opened | undefined
  #closed = false
  /**
   * This instance's watchers. While one is open, #watcher follows the store's commits (its
   * own included) through the channel the commit script announces them on.
   */
  readonly #feed: ChangeFeed = new ChangeFeed({
    start: () => {
      this.#watcher = new CommitWatcher(this.#commitSource(), this.#feed, this.#opened?.idHex, this.#timeoutMs)
    },
    stop: () => {
      this.#watcher?.close()
      this.#watcher = undefined
    },
  })
  #watcher: CommitWatcher | undefined

  private constructor(
    connection: RedisConnection,
    location: string,
    name: string,
    keyring: KeyRing,
    readOnly: boolean,
    timeoutMs: number,
  ) {
    this.#connection = connection
    this.location = location
    this.#layout = layoutOf(name)
    this.#keys = allKeys(this.#layout)
    this.#keyring = keyring
    this.readOnly = readOnly
    this.#timeoutMs = timeoutMs
  }

  /**
   * Connects, then opens the store under `options.name`, creating it unless `readOnly`: a wrong
   * key is WrongKeyError, data not of ours ForeignDataError, a server out of reach
   * BackendUnavailableError. Nothing under the name is changed unless the name was free.
   */
  static async open(
    options: ResolvedRedisOptions,
    keyring: KeyRing,
    readOnly: boolean,
  ): Promise<RedisBackend> {
    const where = options.url === undefined ? '' : ` at ${displayUrl(options.url)}`
    const location = `the Redis store "${options.name}"${where}`
    const connection = await RedisConnection.open(options, location)
    const backend = new RedisBackend(connection, location, options.name, keyring, readOnly, options.timeoutMs)
    try {
      backend.#opened = await backend.#load(!readOnly)
    } catch (error) {
      connection.close()
      throw error
    }
    return backend
  }

  /** The store under the name: opened from its meta, created if `create` and there is none. */
  async #load(create: boolean): Promise<Opened | undefined> {
    const found = await this.#init(create)
    if (found !== undefined || !create) return found
    const sealing = this.#keyring.sealing()
    const id = newStoreId()
    const keyLength = sealing.keys.keyLength
    const check = keyCheck(sealing.keys, { storeId: id, keyLength, kdf: sealing.kdf })
    const fields: string[] = [
      'magic', MAGIC,
      'format', String(LAYOUT_VERSION),
      'id', id.toString('hex'),
      'check', check.toString('hex'),
      'keylen', String(keyLength),
    ]
    if (sealing.kdf !== undefined) fields.push('kdf', sealing.kdf.toString('hex'))
    // Another process may have created it meanwhile: then its meta comes back, and is checked.
    return (await this.#init(true, fields)) ?? {
      id,
      idHex: id.toString('hex'),
      keys: redisKeys(sealing.keys),
      fields: new Map(),
      recent: new RecentEntries(),
    }
  }

  /**
   * Runs the init script, `writable` if this instance may write (see INIT): the opened store, or
   * undefined when it is absent or was just created.
   */
  async #init(writable: boolean, fields: string[] = []): Promise<Opened | undefined> {
    const answer = reply(
      await this.#connection.runScript('write', INIT, allKeys(this.#layout), [writable ? '1' : '0', ...fields]),
      this.location,
    ).map(text)
    switch (answer[0]) {
      case 'meta':
        return this.#checkMeta(answer.slice(1))
      case 'created':
      case 'absent':
        return undefined
      case 'foreign':
        throw new ForeignDataError(this.location, `${answer[1]} is a ${answer[2]}`)
      case 'orphan':
        throw new ForeignDataError(this.location, `${answer[1]} exists without the store's meta`)
      default:
        throw new CorruptFileError(this.location, `the init script answered ${answer[0]}`)
    }
  }

  #checkMeta(pairs: string[]): Opened {
    const meta = new Map<string, string>()
    for (let i = 0; i + 1 < pairs.length; i += 2) meta.set(pairs[i]!, pairs[i + 1]!)
    if (meta.get('magic') !== MAGIC) {
      throw new ForeignDataError(this.location, `${this.#layout.meta} is a hash of another program`)
    }
    const format = Number(meta.get('format'))
    if (!Number.isSafeInteger(format) || format < 1) {
      throw new CorruptFileError(this.location, 'the meta has no valid layout version')
    }
    if (format > LAYOUT_VERSION) {
      throw new UnsupportedFormatError(this.location, `Redis layout version ${format}`)
    }
    const hex = (name: string, bytes: number): Buffer => {
      const value = meta.get(name) ?? ''
      if (!new RegExp(`^[0-9a-f]{${2 * bytes}}$`).test(value)) {
        throw new CorruptFileError(this.location, `the meta's ${name} is not ${bytes} bytes of hex`)
      }
      return Buffer.from(value, 'hex')
    }
    const id = hex('id', STORE_ID_SIZE)
    const check = hex('check', 16)
    const keyLength = Number(meta.get('keylen'))
    if (![16, 24, 32].includes(keyLength)) {
      throw new CorruptFileError(this.location, 'the meta has no valid key length')
    }
    const kdf = meta.has('kdf') ? hex('kdf', 32) : undefined
    if (kdf !== undefined) parseKdfBlock(this.location, kdf)
    const fields = { storeId: id, keyLength, kdf }
    const derived = this.#keyring.keysMatching(
      this.location,
      kdf,
      keyLength,
      (keys) => keyCheckEquals(keys, fields, check),
      'store',
    )
    return { id, idHex: id.toString('hex'), keys: redisKeys(derived), fields: new Map(), recent: new RecentEntries() }
  }

  /**
   * Whether a store was found under the name: false only on a read-only instance that has found
   * none yet (the CLI tells a mistyped name from an empty store by it).
   */
  get exists(): boolean {
    return this.#opened !== undefined
  }

  /** The store, or undefined while a read-only instance finds none (it may be created later). */
  async #store(): Promise<Opened | undefined> {
    this.#assertOpen()
    this.#opened ??= await this.#load(false)
    return this.#opened
  }

  #script(
    kind: CallKind,
    script: Script,
    keys: string[],
    args: RedisArgument[] | ((sentBefore: boolean) => RedisArgument[]),
  ): Promise<unknown[]> {
    return this.#connection
      .runScript(kind, script, keys, args)
      .then((answer) => reply(answer, this.location))
  }

  /** A script's answer that is not 'ok': the store under the name is no longer the one opened. */
  #notOk(store: Opened, answer: unknown[]): Error {
    const what = text(answer[0])
    if (what === 'replaced') {
      const found = text(answer[1])
      return new StoreReplacedError(this.location, store.idHex, found === '' ? '(none: the store was deleted)' : found)
    }
    if (what === 'damaged') {
      return new CorruptFileError(this.location, "the entries hash lacks the store's id or counters (changed on the server)")
    }
    return new CorruptFileError(this.location, `a script answered ${what}`)
  }

  #open(store: Opened, field: Buffer, sealed: unknown): [StoreKey, Entry] {
    if (!Buffer.isBuffer(sealed)) throw new CorruptFileError(this.location, 'an entry is not a string')
    const recent = store.recent.get(field, sealed)
    if (recent !== undefined) return recent
    try {
      const item = openEntry(store.keys, store.id, field, sealed)
      store.recent.remember(field, sealed, item)
      return item
    } catch (error) {
      if (error instanceof SealError) throw new CorruptFileError(this.location, error.message)
      throw error
    }
  }

  /**
   * The entry sealed in `sealed` (null or undefined: none), unless it has expired at `now` by
   * the time sealed in it. That time is authenticated, while the expiry index is not: a server
   * that moved an entry's time in the index later still cannot make it readable past its time.
   */
  #live(store: Opened, field: Buffer, sealed: unknown, now: number): [StoreKey, Entry] | undefined {
    if (sealed === null || sealed === undefined) return undefined
    const item = this.#open(store, field, sealed)
    return isExpired(item[1], now) ? undefined : item
  }

  /**
   * One read command, sent together with a read of the store id (one round trip): a store put
   * in this one's place is StoreReplacedError, as the scripts report it, not an empty store.
   */
  async #read(store: Opened, command: (c: RedisCommands) => Promise<unknown>): Promise<unknown> {
    const [id, value] = await this.#connection.call('read', (c) =>
      Promise.all([c.hGet(this.#layout.meta, 'id'), command(c)]),
    )
    if (id === null || text(id) !== store.idHex) {
      throw this.#notOk(store, ['replaced', id === null ? '' : text(id)])
    }
    return value
  }

  async get(key: StoreKey): Promise<Entry | undefined> {
    const store = await this.#store()
    if (store === undefined) return undefined
    const field = fieldFor(store, key)
    // The time the call began: a read that began before the entry expired may still see it.
    const now = Date.now()
    return this.#live(store, field, await this.#sealed(store, field), now)?.[1]
  }

  /** The sealed entry under `field` (null: none), read with the store id in one HMGET. */
  async #sealed(store: Opened, field: Buffer): Promise<unknown> {
    const { entries } = this.#layout
    const found = await this.#connection.call('read', (c) => c.hmGet(entries, [ENTRIES_ID_FIELD, field]))
    const [id, sealed] = Array.isArray(found) ? found : []
    if (id !== null && id !== undefined && text(id) === store.idHex) return sealed
    // The entries hash does not say it is this store's (it lacks the id, or holds another
    // store's): the meta decides, as the scripts read it.
    return this.#read(store, (c) => c.hGet(entries, field))
  }

  /** As get(): whether an entry has expired is known only once it is opened (see #live). */
  async has(key: StoreKey): Promise<boolean> {
    return (await this.get(key)) !== undefined
  }

  async size(): Promise<number> {
    const store = await this.#store()
    if (store === undefined) return 0
    return (await this.#count(store, Date.now()))[1]
  }

  /** The SIZE script: the commit number and the number of entries not expired at `now`. */
  async #count(store: Opened, now: number): Promise<[seq: string, count: number]> {
    const { meta, entries, order, expiry } = this.#layout
    const answer = await this.#script('read', SIZE, [meta, entries, order, expiry], [store.idHex, String(now)])
    if (text(answer[0]) !== 'ok') throw this.#notOk(store, answer)
    return [text(answer[1]), Number(answer[2])]
  }

  keys(query?: KeyQuery): AsyncIterable<StoreKey> {
    return keysOf(this.entries(query))
  }

  async *entries(query?: KeyQuery): AsyncGenerator<[StoreKey, Entry]> {
    const store = await this.#store()
    if (store === undefined) return
    yield* this.#matching(store, query, () => {})
  }

  /** The entries under `query`, as of the clock now; `onPage` as #list's, with that time. */
  async *#matching(
    store: Opened,
    query: KeyQuery | undefined,
    onPage: (seq: string, now: number) => void,
  ): AsyncGenerator<[StoreKey, Entry]> {
    const now = Date.now()
    for await (const [, key, entry] of this.#list(store, now, (seq) => onPage(seq, now))) {
      if (matches(key, query)) yield [key, entry]
    }
  }

  /**
   * Every entry not expired at `now`, in insertion order, a page per script call; `onPage`
   * gets each page's commit number. Within a page the entries are one state; across pages, a
   * key present throughout is listed exactly once (paging by score).
   */
  async *#list(store: Opened, now: number, onPage: (seq: string) => void): AsyncGenerator<Listed> {
    const { meta, entries, order, expiry } = this.#layout
    let after = '-inf'
    for (;;) {
      this.#assertOpen()
      const answer = await this.#script('read', PAGE, [meta, entries, order, expiry], [
        store.idHex,
        after,
        String(PAGE_SIZE),
        String(now),
      ])
      if (text(answer[0]) !== 'ok') throw this.#notOk(store, answer)
      onPage(text(answer[1]))
      const scanned = Number(answer[2])
      const items: Listed[] = []
      for (let i = 4; i + 1 < answer.length; i += 2) {
        const field = answer[i]
        const sealed = answer[i + 1]
        if (!Buffer.isBuffer(field)) throw new CorruptFileError(this.location, 'a field is not a string')
        // Listed in the order set but gone from the entries hash: only a foreign write does that.
        if (sealed === null || sealed === undefined) {
          throw new CorruptFileError(this.location, 'the order lists a key that has no entry')
        }
        const item = this.#live(store, field, sealed, now)
        if (item !== undefined) items.push([field, item[0], item[1]])
      }
      yield* items
      if (scanned < PAGE_SIZE) return
      after = `(${text(answer[3])}`
    }
  }

  async transaction<T>(fn: (tx: BackendTransaction) => Promise<T>): Promise<T> {
    const store = await this.#store()
    const reads: ReadSet = { keys: new Map(), listed: undefined }
    let ended = false
    let committed = false
    const use = () => {
      if (ended) throw new StoreClosedError('transaction')
      this.#assertOpen()
    }
    const read = async (key: StoreKey): Promise<Entry | undefined> => {
      use()
      if (store === undefined) return undefined
      const field = fieldFor(store, key)
      const now = Date.now()
      const sealed = await this.#sealed(store, field)
      const entry = this.#live(store, field, sealed, now)?.[1]
      const hex = field.toString('hex')
      const mark = Buffer.isBuffer(sealed) ? markOf(sealed) : ''
      const seen = reads.keys.get(hex)
      if (seen === undefined) {
        reads.keys.set(hex, { field, mark, key, present: entry !== undefined })
      } else {
        // Read again and found another entry: the transaction saw two states of the key, and
        // no commit can make both hold.
        if (!sameMark(seen.mark, mark)) seen.mark = CHANGED
        if (entry !== undefined) seen.present = true
      }
      return entry
    }
    const listed = (seq: string, now: number) => {
      reads.listed ??= { seq, now }
    }
    const list = (query: KeyQuery | undefined): AsyncIterable<[StoreKey, Entry]> => {
      use()
      return store === undefined ? nothing() : this.#matching(store, query, listed)
    }
    const tx: BackendTransaction = {
      get: (key) => read(key),
      has: (key) => read(key).then((entry) => entry !== undefined),
      size: async () => {
        use()
        if (store === undefined) return 0
        const now = Date.now()
        const [seq, count] = await this.#count(store, now)
        listed(seq, now)
        return count
      },
      keys: (query) => keysOf(list(query)),
      entries: list,
      commit: async (changes) => {
        use()
        if (committed) throw new Error('commit() twice in one transaction')
        committed = true
        if (changes.length > 0 && this.readOnly) throw new ReadOnlyError(this.location, 'commit')
        if (store === undefined) {
          // Read-only, on a store not created yet: what it read (nothing) holds while there is none.
          const now = await this.#load(false)
          return now === undefined
            ? { committed: true, results: [] }
            : { committed: false, conflict: 'the store was created since it was read' }
        }
        return this.#commit(store, reads, changes)
      },
    }
    try {
      return await fn(tx)
    } finally {
      ended = true
    }
  }

  /** Writes that read nothing: one commit script call, which cannot conflict. */
  async commitWrites(changes: readonly Change[]): Promise<readonly ChangeResult[]> {
    this.#assertOpen()
    if (this.readOnly) throw new ReadOnlyError(this.location, 'commit')
    const store = this.#opened ?? (await this.#store())
    // A writable instance creates the store as it opens: it is there from then on.
    if (store === undefined) throw new Error('a writable Redis store without its store')
    const outcome = await this.#commit(store, NO_READS, changes)
    if (!outcome.committed) throw new Error(`a commit that read nothing conflicted: ${outcome.conflict}`)
    return outcome.results
  }

  /** One script call: the read set is checked and the changes applied, or nothing happens. */
  async #commit(store: Opened, reads: ReadSet, changes: readonly Change[]): Promise<CommitOutcome> {
    if (changes.length === 0 && reads.keys.size === 0 && reads.listed === undefined) {
      return { committed: true, results: [] }
    }
    // A watcher of this process starting up: it must see this commit as news, not as its start.
    const starting = watchesStarting(store.idHex)
    if (starting !== undefined) await starting
    const id = changes.length === 0 ? '' : commitId()
    const now = String(Date.now())
    const readFields: RedisArgument[] = []
    for (const { field, mark, present } of reads.keys.values()) readFields.push(field, mark, present ? '1' : '0')
    const conditions = (sentBefore: boolean): RedisArgument => {
      if (!sentBefore && readFields.length === 0 && reads.listed === undefined) return ''
      const listing = reads.listed === undefined ? ['', ''] : [reads.listed.seq, String(reads.listed.now)]
      return pack([sentBefore ? '1' : '0', ...listing, ...readFields])
    }
    const written: RedisArgument[] = []
    const sealedEntries: { field: Buffer; sealed: Buffer; item: [StoreKey, Entry] }[] = []
    for (const change of changes) {
      switch (change.kind) {
        case 'set': {
          const key = normalizeKey(change.key)
          const field = fieldFor(store, key)
          const sealed = sealEntry(store.keys, store.id, field, key, change.entry)
          sealedEntries.push({ field, sealed, item: [key, change.entry] })
          const at = change.entry.expiresAt
          if (at === undefined) written.push('s', field, sealed)
          else written.push('e', field, sealed, String(at))
          break
        }
        case 'delete':
          written.push('d', fieldFor(store, change.key))
          break
        case 'clear':
          written.push('c')
          break
      }
    }
    const unpacked = written.length <= UNPACKED_CHANGES
    // Empty strings, not empty Buffers: a Buffer argument costs node-redis two socket writes.
    const packedChanges = unpacked ? '' : pack(written)
    const sent = this.#script('write', COMMIT, this.#keys, (sentBefore) => {
      const args = [store.idHex, id, now, conditions(sentBefore), packedChanges]
      if (unpacked) args.push(...written)
      return args
    })
    // What can wait is done once the command is written, while the server works on it
    // (node-redis writes on setImmediate, queued before this): the ciphers of the next sets
    // are made, and the entries sealed are kept, whether or not the commit lands, since one is
    // found only if the server holds its bytes.
    if (sealedEntries.length > 0) {
      store.keys.ciphers.prepareSoon()
      setImmediate(() => {
        for (const { field, sealed, item } of sealedEntries) store.recent.remember(field, sealed, item)
      })
    }
    const answer = await sent
    const what = text(answer[0])
    if (what === 'conflict') {
      const field = Buffer.isBuffer(answer[1]) ? answer[1].toString('hex') : ''
      const read = reads.keys.get(field)
      return {
        committed: false,
        conflict:
          read === undefined
            ? 'the store changed since it was listed'
            : `${JSON.stringify(read.key)} changed since it was read`,
      }
    }
    if (what !== 'ok' && what !== 'done') throw this.#notOk(store, answer)
    const deletes = text(answer[1])
    let next = 0
    const results: ChangeResult[] = changes.map((change) =>
      change.kind === 'delete' ? deletes[next++] === '1' : undefined,
    )
    if (next !== deletes.length) {
      throw new CorruptFileError(this.location, 'a commit answered with results for other changes')
    }
    return { committed: true, results }
  }

  /**
   * Reports every commit to the store that changed something, this instance's and everyone
   * else's alike: the commit script announces each on the store's channel, and a connection of
   * this instance's own, subscribed to it, hears them (docs/DESIGN.md, "Change events").
   */
  watch(
    listener: (changes: readonly EntryChange[]) => void,
    onError?: (error: unknown) => void,
  ): BackendWatcher {
    this.#assertOpen()
    return this.#feed.add(listener, onError)
  }

  /** What the watcher reads the store through. */
  #commitSource(): CommitSource {
    return {
      storeId: async () => (await this.#store())?.idHex,
      snapshot: async (now) => {
        const store = await this.#store()
        const entries = new Map<string, [StoreKey, Entry]>()
        if (store === undefined) return { seq: 0, last: 0, entries }
        let first: string | undefined
        let last = '0'
        for await (const [field, key, entry] of this.#list(store, now, (seq) => {
          first ??= seq
          last = seq
        })) {
          entries.set(field.toString('hex'), [key, entry])
        }
        return { seq: Number(first ?? 0), last: Number(last), entries }
      },
      open: (field, sealed) => {
        const store = this.#opened
        if (store === undefined) throw new Error('a commit announced before the store was opened')
        return this.#open(store, field, sealed)
      },
      seq: async () => {
        const store = await this.#store()
        return store === undefined ? 0 : Number((await this.#count(store, Date.now()))[0])
      },
      subscribe: (handlers) => this.#connection.subscribe(this.#layout.channel, handlers),
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreClosedError()
  }

  /** Ends the watchers, and closes the client if the store created it. Never deletes the store. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#feed.close()
    this.#connection.close()
  }
}

async function* nothing(): AsyncGenerator<never> {}

async function* keysOf(entries: AsyncIterable<[StoreKey, Entry]>): AsyncGenerator<StoreKey> {
  for await (const [key] of entries) yield key
}

/** The random bytes of the commit id being drawn: made a string at once, so one buffer serves. */
const commitIdBytes = Buffer.alloc(16)

/** A commit's id: random, so that a retry after a lost reply is recognized and nothing else is. */
function commitId(): string {
  fillRandom(commitIdBytes, 0, commitIdBytes.length)
  return commitIdBytes.toString('base64url')
}
