import { createHash } from 'node:crypto'
import { ENTRIES_ID_FIELD } from './layout.js'
import { MARK_AT, MARK_SIZE } from './sealing.js'

/**
 * The server side of the Redis backend: Lua scripts, each atomic on the server, sent with
 * EVALSHA (EVAL when the server has not cached them yet, as after a restart). The server sees
 * only keyed hashes of key names and sealed entries; nothing here can read them. Contracts in
 * docs/DESIGN.md, "The Redis backend".
 */
export interface Script {
  readonly name: string
  readonly text: string
  readonly sha: string
}

function script(name: string, text: string): Script {
  return { name, text, sha: createHash('sha1').update(text).digest('hex') }
}

/**
 * How many commit ids (with their results) are kept at least, for commits sent again after a
 * lost reply: one comes within the sender's `timeoutMs`, while the record holds the last this
 * many commits that changed something, of every client of the store (see Layout.commits). A
 * commit that changed nothing is not recorded: applied again, it changes nothing again, or
 * what it does then is what it would have done had it first arrived then.
 */
export const RECORDED_COMMITS = 10_000

/** The most change arguments a commit sends unpacked (see COMMIT). */
export const UNPACKED_CHANGES = 256

/**
 * At most this many expired entries are dropped by one commit, besides those its own changes
 * touch: the work of a commit stays bounded however many entries expired at once. The rest stay
 * (hidden from every read) until the next commits, each of which drops as many again.
 */
export const EXPIRED_PER_COMMIT = 128

/**
 * Opens a store. KEYS: allKeys(layout). ARGV[1]: '1' when the instance may write; then the
 * meta fields to create the store with, as field, value pairs, if nothing is under the name.
 * Returns {'meta', field, value, ...} (the meta found), {'created'}, {'absent'} (nothing there,
 * and no fields to create it with), {'foreign', key, type} (a key of the wrong type) or
 * {'orphan', key} (keys of a store without its meta). Writes nothing unless it creates the
 * store: an open must work on a server that refuses writes (out of memory, a replica) and must
 * not touch a store whose key it has not checked yet.
 */
export const INIT = script(
  'init',
  `
local expected = {'hash', 'hash', 'zset', 'hash', 'hash', 'zset'}
local metaType = redis.call('TYPE', KEYS[1])['ok']
if metaType ~= 'none' and metaType ~= 'hash' then return {'foreign', KEYS[1], metaType} end
for i = 2, #KEYS do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'none' then
    if t ~= expected[i] then return {'foreign', KEYS[i], t} end
    if metaType == 'none' then return {'orphan', KEYS[i]} end
  end
end
if metaType == 'hash' then
  local meta = redis.call('HGETALL', KEYS[1])
  table.insert(meta, 1, 'meta')
  return meta
end
if ARGV[1] ~= '1' or #ARGV < 2 then return {'absent'} end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('HSET', KEYS[2], '${ENTRIES_ID_FIELD}', redis.call('HGET', KEYS[1], 'id'), 'seq', '0', 'ins', '0')
return {'created'}
`,
)

/**
 * Whether field `f` has expired at `now` by the expiry index (a number). The client's clock
 * gives `now` (docs/DESIGN.md, "Expiry on the server"); the time sealed in the entry is
 * checked again when the client opens it.
 */
const EXPIRED_AT = `
local function expiredAt(expiry, f, now)
  local at = redis.call('ZSCORE', expiry, f)
  return at and tonumber(at) <= now
end
`

/**
 * The answer of a script whose entries hash does not hold this store's id and counters: the
 * meta decides between another store under the name ({'replaced', id found or ''}) and an
 * entries hash changed on the server ({'damaged'}). KEYS[1] is the meta, ARGV[1] the store id.
 * An entries hash that only lacks the id (the meta holding this store's) is this store's: the
 * scripts go on, and the next commit that changes something puts the id back.
 */
const NOT_OURS = `
local function notOurs()
  local found = redis.call('HGET', KEYS[1], 'id')
  if found ~= ARGV[1] then return {'replaced', found or ''} end
  return {'damaged'}
end
`

/**
 * The number of entries not expired at now, with the commit number it belongs to: the order
 * set's count less the index's count up to now, both O(log n) at most. KEYS: meta, entries,
 * order, expiry. ARGV: store id, now. Returns {'ok', commit number, count}, or as NOT_OURS.
 */
export const SIZE = script(
  'size',
  `${NOT_OURS}
local id, seq = unpack(redis.call('HMGET', KEYS[2], '${ENTRIES_ID_FIELD}', 'seq'))
if id ~= ARGV[1] and (id or redis.call('HGET', KEYS[1], 'id') ~= ARGV[1]) then return notOurs() end
if not seq then return notOurs() end
local count = redis.call('ZCARD', KEYS[3]) - redis.call('ZCOUNT', KEYS[4], '-inf', ARGV[2])
return {'ok', seq, count}
`,
)

/**
 * One page of entries in insertion order, with the commit number it belongs to. KEYS: meta,
 * entries, order, expiry. ARGV: store id, the lowest score ('-inf', or '(' and the last score
 * seen), the page size, now. Returns {'ok', commit number, number of keys scanned, last score
 * scanned, field, sealed entry, ...}, or as NOT_OURS: the keys expired by the index at now
 * are scanned but not returned. Paging by score, not index: a key that stays in the store
 * keeps its score, so it is listed once even while other keys come and go between pages.
 */
export const PAGE = script(
  'page',
  `${NOT_OURS}
local id, seq = unpack(redis.call('HMGET', KEYS[2], '${ENTRIES_ID_FIELD}', 'seq'))
if id ~= ARGV[1] and (id or redis.call('HGET', KEYS[1], 'id') ~= ARGV[1]) then return notOurs() end
if not seq then return notOurs() end
local page = redis.call('ZRANGE', KEYS[3], ARGV[2], '+inf', 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[3]), 'WITHSCORES')
local scanned = #page / 2
local out = {'ok', seq, scanned, scanned == 0 and '' or page[#page]}
if scanned == 0 then return out end
local fields = {}
for i = 1, #page, 2 do fields[#fields + 1] = page[i] end
local values = redis.call('HMGET', KEYS[2], unpack(fields))
local times = {}
if redis.call('EXISTS', KEYS[4]) == 1 then times = redis.call('ZMSCORE', KEYS[4], unpack(fields)) end
local now = tonumber(ARGV[4])
for i = 1, #fields do
  local at = times[i]
  if not (at and tonumber(at) <= now) then
    out[#out + 1] = fields[i]
    out[#out + 1] = values[i]
  end
end
return out
`,
)

/**
 * Packs `fields` into one string: each as its length (4 bytes, big-endian) and its bytes, as
 * the scripts' take() takes them apart.
 */
export function pack(fields: readonly (Buffer | string)[]): Buffer {
  let size = 0
  for (const field of fields) size += 4 + (typeof field === 'string' ? Buffer.byteLength(field) : field.length)
  const out = Buffer.allocUnsafe(size)
  let at = 0
  for (const field of fields) {
    const length = typeof field === 'string' ? out.write(field, at + 4) : field.copy(out, at + 4)
    out.writeUInt32BE(length, at)
    at += 4 + length
  }
  return out
}

/**
 * The field of `packed` at position `at`, and the position of the next one (past the end when
 * there is none): Redis's struct library reads the length. A plain function rather than an
 * object with closures, which cost a tenth of a commit's time on the server.
 */
const TAKE = `
local function take(packed, at)
  if at + 3 > #packed then error('anystore: a pack ends inside a length') end
  local first = at + 4
  local after = first + struct.unpack('>I4', packed, at)
  if after - 1 > #packed then error('anystore: a pack ends inside a field') end
  return string.sub(packed, first, after - 1), after
end
`

/**
 * A commit: checks what the transaction read, then drops expired entries and applies its
 * changes in order, atomically, and announces it.
 * KEYS: allKeys(layout). ARGV: store id, commit id ('' for a commit without changes, which
 * only checks), now (the client's clock, ms since the epoch), then the conditions: '' for a
 * commit that read nothing and is sent for the first time, else a pack (see pack()) of '1' if
 * this commit may have been sent before (its reply lost; only then is its id looked up in the
 * record) else '0', the commit number a listing was read at and the time of that listing ('' and
 * '' for none), and the keys read, as field, mark (see markOf: the entry read, '' for none), '1'
 * if it was read present, else '0' (none, or expired) for each; then the changes packed ('' when
 * they follow as arguments instead); then the changes, unless packed: 's' field sealed-entry, 'e'
 * field sealed-entry expiry-time, 'd' field, 'c'. The channel to announce on is the meta's name
 * with 'changes' for 'meta' (see Layout.channel).
 * A commit of up to UNPACKED_CHANGES change arguments sends them as they are, which
 * spares the script taking a pack apart (a tenth of a lone set's time on the server); a larger
 * one packs them, a fixed number of arguments: one argument per field would overflow the
 * client's stack past about 100,000 (33,000 sets). Each argument a lone set sends costs it on
 * both sides, so what most commits do not need rides in the conditions.
 * Returns {'ok', results}, {'done', results} (this commit id was applied before: its reply was
 * lost, and it is not applied again), {'conflict', field or ''} (nothing applied), or as
 * NOT_OURS. The results hold one '1' or '0' per delete, in order: whether it existed.
 *
 * A read holds while the key's entry is the one read: every write seals anew under fresh
 * random bytes, so an entry's mark names one write of it, and no per-key version is kept. A
 * key read absent holds while it is absent (or holds the entry that had expired when read),
 * whatever happened to it in between: the transaction then reads what it would read now.
 *
 * A commit that changed something is announced on the channel (a shard channel: SPUBLISH,
 * served by the node of the store's slot), if anyone listens there: `store id:commit
 * number:flag:` ('c' when the commit cleared the store, else '-'), then for each key its sets
 * and effective deletes touched, its field (16 bytes), the length of its entry now (4 bytes,
 * big-endian; 0: none) and that sealed entry. Neither key names nor values: fields are keyed
 * hashes and entries sealed, as the server holds them anyway.
 */
export const COMMIT = script(
  'commit',
  `
local meta, entries, order, commits, commitsOther, expiry = unpack(KEYS)
local id, seqText, insertsText, flagged = unpack(redis.call('HMGET', entries, '${ENTRIES_ID_FIELD}', 'seq', 'ins', 'x'))
local channel = string.sub(meta, 1, -5) .. 'changes'
-- A lone set: one set() with nothing read, sent for the first time, to a store whose entries
-- hash is whole and that keeps no expiry. It does what the general path below does for it,
-- without the helpers and tables that path builds first (a fifth of this script's time).
if id == ARGV[1] and seqText and insertsText and not flagged and ARGV[2] ~= ''
    and ARGV[4] == '' and ARGV[5] == '' and #ARGV == 8 and ARGV[6] == 's' then
  local f, sealed = ARGV[7], ARGV[8]
  local seq = tonumber(seqText)
  local nextSeq = string.format('%.0f', seq + 1)
  local numsub = redis.pcall('PUBSUB', 'SHARDNUMSUB', channel)
  if redis.call('HSET', entries, f, sealed, 'seq', nextSeq) == 1 then
    local inserts = string.format('%.0f', tonumber(insertsText) + 1)
    redis.call('ZADD', order, inserts, f)
    redis.call('HSET', entries, 'ins', inserts)
  end
  if type(numsub) == 'table' and tonumber(numsub[2] or 0) > 0 then
    redis.call('SPUBLISH', channel, id .. ':' .. nextSeq .. ':-:' .. f .. struct.pack('>I4', #sealed) .. sealed)
  end
  local span = math.floor((seq + 1) / ${RECORDED_COMMITS})
  local record = span % 2 == 0 and commits or commitsOther
  if span ~= math.floor(seq / ${RECORDED_COMMITS}) then redis.call('DEL', record) end
  redis.call('HSET', record, ARGV[2], '')
  return {'ok', ''}
end
${NOT_OURS}${EXPIRED_AT}${TAKE}
local function int(n) return string.format('%.0f', n) end
-- An id missing from the entries hash (edited on the server) is taken from the meta, and put back.
local restoreId = false
if id ~= ARGV[1] then
  if id or redis.call('HGET', meta, 'id') ~= ARGV[1] then return notOurs() end
  id = ARGV[1]
  restoreId = true
end
if not seqText or not insertsText then return notOurs() end
local commitId = ARGV[2]
local now = tonumber(ARGV[3])
local conditions, readAt = ARGV[4], 1
local sentBefore, listedSeq, listedAt = '0', '', ''
if conditions ~= '' then
  sentBefore, readAt = take(conditions, readAt)
  listedSeq, readAt = take(conditions, readAt)
  listedAt, readAt = take(conditions, readAt)
end
-- A commit id is drawn afresh for each commit: only one sent again can be in the record.
if commitId ~= '' and sentBefore == '1' then
  local done = redis.call('HGET', commits, commitId) or redis.call('HGET', commitsOther, commitId)
  if done then return {'done', done} end
end
local seq = tonumber(seqText)
-- The field x marks a store that has had expiring entries since its last clear: a store
-- without any skips every look at the index.
local indexed = flagged and redis.call('EXISTS', expiry) == 1
local function expired(f) return indexed and expiredAt(expiry, f, now) end
local function markOf(sealed) return sealed and string.sub(sealed, ${MARK_AT + 1}, ${MARK_AT + MARK_SIZE}) or '' end
if listedSeq ~= '' then
  if tonumber(listedSeq) ~= seq then return {'conflict', ''} end
  -- An entry that was listed and has expired since: the listing no longer holds.
  if indexed and redis.call('ZCOUNT', expiry, '(' .. listedAt, ARGV[3]) > 0 then return {'conflict', ''} end
end
while readAt <= #conditions do
  local f, mark, present
  f, readAt = take(conditions, readAt)
  mark, readAt = take(conditions, readAt)
  present, readAt = take(conditions, readAt)
  local current = redis.call('HGET', entries, f)
  if present == '1' then
    if not current or markOf(current) ~= mark or expired(f) then return {'conflict', f} end
  elseif current and markOf(current) ~= mark then
    return {'conflict', f}
  end
end
local nextSeq = seq + 1
local inserts = tonumber(insertsText)
local changed = false
local cleared = false
-- Whether the new commit number is written yet (with the first set), and the insert count.
local counted = false
local insertsChanged = false
local results = {}
-- Who listens is asked first: with no one, nothing is gathered to announce.
-- pcall: a server without sharded pub/sub (before Redis 7.0) has no listeners to tell.
local listening = false
if commitId ~= '' then
  local numsub = redis.pcall('PUBSUB', 'SHARDNUMSUB', channel)
  listening = type(numsub) == 'table' and tonumber(numsub[2] or 0) > 0
end
-- The fields to announce, each once, in the order first touched.
local touched, announced = {}, {}
local function touch(f)
  if listening and not touched[f] then
    touched[f] = true
    announced[#announced + 1] = f
  end
end
-- Removes f as a delete would: for an entry that expired. Not announced: expiring is no change.
local function drop(f)
  if indexed then redis.call('ZREM', expiry, f) end
  if redis.call('HDEL', entries, f) == 1 then
    redis.call('ZREM', order, f)
    changed = true
  end
end
if commitId ~= '' and indexed then
  local stale = redis.call('ZRANGE', expiry, '-inf', ARGV[3], 'BYSCORE', 'LIMIT', 0, ${EXPIRED_PER_COMMIT})
  for _, f in ipairs(stale) do drop(f) end
end
local sets = {}
-- The changes follow the arguments, or come packed in ARGV[5] (a large commit).
local changes, pos = ARGV, 6
if ARGV[5] ~= '' then
  changes, pos = {}, 1
  local packed, at = ARGV[5], 1
  while at <= #packed do changes[#changes + 1], at = take(packed, at) end
end
while changes[pos] do
  local op = changes[pos]
  if op == 's' or op == 'e' then
    local f, sealed, at = changes[pos + 1], changes[pos + 2], ''
    if op == 'e' then
      at = changes[pos + 3]
      pos = pos + 4
    else
      pos = pos + 3
    end
    -- An expired entry is absent: a set of its key is the set of a new key.
    if expired(f) then drop(f) end
    local added
    if counted then
      added = redis.call('HSET', entries, f, sealed)
    else
      -- The commit number rides with the first set: one call where a lone set needs one.
      added = redis.call('HSET', entries, f, sealed, 'seq', int(nextSeq))
      counted = true
    end
    if added == 1 then
      inserts = inserts + 1
      insertsChanged = true
      redis.call('ZADD', order, int(inserts), f)
    end
    if at ~= '' then
      redis.call('ZADD', expiry, at, f)
      if not flagged then
        redis.call('HSET', entries, 'x', '1')
        flagged = true
      end
      indexed = true
    elseif indexed then
      redis.call('ZREM', expiry, f)
    end
    changed = true
    touch(f)
    if indexed then sets[#sets + 1] = f end
  elseif op == 'd' then
    local f
    f, pos = changes[pos + 1], pos + 2
    if expired(f) then drop(f) end
    if redis.call('HDEL', entries, f) == 1 then
      redis.call('ZREM', order, f)
      if indexed then redis.call('ZREM', expiry, f) end
      changed = true
      touch(f)
      results[#results + 1] = '1'
    else
      results[#results + 1] = '0'
    end
  elseif op == 'c' then
    pos = pos + 1
    if redis.call('ZCARD', order) > 0 then
      redis.call('DEL', entries, order, expiry)
      redis.call('HSET', entries, '${ENTRIES_ID_FIELD}', id, 'seq', int(nextSeq), 'ins', int(inserts))
      counted = true
      insertsChanged = false
      changed = true
      cleared = true
      indexed = false
      flagged = false
    end
  else
    return redis.error_reply('ERR anystore: unknown change ' .. tostring(op))
  end
end
-- What this commit set with a time already past is not kept either.
if indexed then
  for _, f in ipairs(sets) do
    if expired(f) then drop(f) end
  end
end
if changed then
  if not counted then
    redis.call('HSET', entries, 'seq', int(nextSeq))
  end
  if insertsChanged then redis.call('HSET', entries, 'ins', int(inserts)) end
  if restoreId and not cleared then redis.call('HSET', entries, '${ENTRIES_ID_FIELD}', id) end
  if listening then
    local parts = {id, ':', int(nextSeq), ':', cleared and 'c' or '-', ':'}
    for _, f in ipairs(announced) do
      local sealed = redis.call('HGET', entries, f) or ''
      parts[#parts + 1] = f
      parts[#parts + 1] = struct.pack('>I4', #sealed)
      parts[#parts + 1] = sealed
    end
    redis.call('SPUBLISH', channel, table.concat(parts))
  end
end
local done = table.concat(results)
if commitId ~= '' and changed then
  -- The generation of this commit's number: emptied as its span begins (see Layout.commits).
  local span = math.floor(nextSeq / ${RECORDED_COMMITS})
  local record = span % 2 == 0 and commits or commitsOther
  if span ~= math.floor(seq / ${RECORDED_COMMITS}) then redis.call('DEL', record) end
  redis.call('HSET', record, commitId, done)
end
return {'ok', done}
`,
)
