import { createHash } from 'node:crypto'

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
 * How many commit ids (with their results) are kept for retries after a lost reply: a retry
 * comes within the store's `timeoutMs`, while the record holds the last this many commits of
 * every client of the store.
 */
export const RECORDED_COMMITS = 10_000

/**
 * Absent keys whose deletion is remembered (so that a transaction that read one as absent
 * sees that it was set and deleted since). Past this many, they are forgotten at once and every
 * absent key takes the current commit number: transactions that read an absent key then retry.
 */
export const REMEMBERED_DELETES = 1000

/**
 * Opens a store. KEYS: allKeys(layout). ARGV[1]: '1' to create the store when nothing is
 * under the name; then the meta fields to create it with, as field, value pairs.
 * Returns {'meta', field, value, ...} (the meta found), {'created'}, {'absent'} (nothing there
 * and ARGV[1] is not '1'), {'foreign', key, type} (a key of the wrong type) or {'orphan', key}
 * (keys of a store without its meta). Never changes a store it did not create.
 */
export const INIT = script(
  'init',
  `
local expected = {'hash', 'hash', 'zset', 'hash', 'hash', 'hash', 'list'}
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
if ARGV[1] ~= '1' then return {'absent'} end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return {'created'}
`,
)

/**
 * The version of a field (the commit number of its last change) shared by the scripts below:
 * a live key's own, else the commit that deleted it, else the base (the last clear, or the
 * last time the deletions were forgotten). Never reused, and never lower than a value it had.
 */
const VERSION_OF = `
local function versionOf(meta, versions, deleted, f)
  return redis.call('HGET', versions, f) or redis.call('HGET', deleted, f) or redis.call('HGET', meta, 'base')
end
`

/**
 * One key's value (or existence) with its version, read together. KEYS: meta, entries,
 * versions, deleted. ARGV: store id, field, '1' for existence only.
 * Returns {'ok', version, sealed entry or nil (or 1/0)} or {'replaced', store id found or ''}.
 */
export const READ = script(
  'read',
  `${VERSION_OF}
local id = redis.call('HGET', KEYS[1], 'id')
if id ~= ARGV[1] then return {'replaced', id or ''} end
local version = versionOf(KEYS[1], KEYS[3], KEYS[4], ARGV[2])
if ARGV[3] == '1' then return {'ok', version, redis.call('HEXISTS', KEYS[2], ARGV[2])} end
return {'ok', version, redis.call('HGET', KEYS[2], ARGV[2])}
`,
)

/**
 * The number of entries with the commit number it belongs to. KEYS: meta, order. ARGV: store id.
 * Returns {'ok', commit number, count} or {'replaced', id}.
 */
export const SIZE = script(
  'size',
  `
local id = redis.call('HGET', KEYS[1], 'id')
if id ~= ARGV[1] then return {'replaced', id or ''} end
return {'ok', redis.call('HGET', KEYS[1], 'seq'), redis.call('ZCARD', KEYS[2])}
`,
)

/**
 * One page of entries in insertion order, with the commit number it belongs to. KEYS: meta,
 * entries, order. ARGV: store id, the lowest score ('-inf', or '(' and the last score seen),
 * the page size. Returns {'ok', commit number, score, field, sealed entry, ...} or
 * {'replaced', id}. Paging by score, not index: a key that stays in the store keeps its score,
 * so it is listed once even while other keys come and go between pages.
 */
export const PAGE = script(
  'page',
  `
local id = redis.call('HGET', KEYS[1], 'id')
if id ~= ARGV[1] then return {'replaced', id or ''} end
local out = {'ok', redis.call('HGET', KEYS[1], 'seq')}
local page = redis.call('ZRANGE', KEYS[3], ARGV[2], '+inf', 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[3]), 'WITHSCORES')
if #page == 0 then return out end
local fields = {}
for i = 1, #page, 2 do fields[#fields + 1] = page[i] end
local values = redis.call('HMGET', KEYS[2], unpack(fields))
for i = 1, #fields do
  out[#out + 1] = page[2 * i]
  out[#out + 1] = fields[i]
  out[#out + 1] = values[i]
end
return out
`,
)

/**
 * A commit: checks what the transaction read, then applies its changes in order, atomically.
 * KEYS: allKeys(layout). ARGV: store id, commit id ('' for a commit without changes, which
 * only checks), the commit number a listing was read at ('' for none), the number of keys
 * read, then field, version for each, then the changes: 's' field sealed-entry, 'd' field, 'c'.
 * Returns {'ok', results}, {'done', results} (this commit id was applied before: its reply was
 * lost, and it is not applied again), {'conflict', field or ''} (nothing applied) or
 * {'replaced', id}. The results hold one '1' or '0' per delete, in order: whether it existed.
 */
export const COMMIT = script(
  'commit',
  `${VERSION_OF}
local meta, entries, order, versions, deleted, commits, log = unpack(KEYS)
local function int(n) return string.format('%.0f', n) end
local id = redis.call('HGET', meta, 'id')
if id ~= ARGV[1] then return {'replaced', id or ''} end
local commitId = ARGV[2]
if commitId ~= '' then
  local done = redis.call('HGET', commits, commitId)
  if done then return {'done', done} end
end
local seq = tonumber(redis.call('HGET', meta, 'seq'))
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= seq then return {'conflict', ''} end
local i = 5
for _ = 1, tonumber(ARGV[4]) do
  local f = ARGV[i]
  if tonumber(versionOf(meta, versions, deleted, f)) ~= tonumber(ARGV[i + 1]) then
    return {'conflict', f}
  end
  i = i + 2
end
local nextSeq = seq + 1
local inserts = tonumber(redis.call('HGET', meta, 'inserts'))
local base = nil
local changed = false
local results = {}
while i <= #ARGV do
  local op = ARGV[i]
  if op == 's' then
    local f = ARGV[i + 1]
    if redis.call('HSET', entries, f, ARGV[i + 2]) == 1 then
      inserts = inserts + 1
      redis.call('ZADD', order, int(inserts), f)
      redis.call('HDEL', deleted, f)
    end
    redis.call('HSET', versions, f, int(nextSeq))
    changed = true
    i = i + 3
  elseif op == 'd' then
    local f = ARGV[i + 1]
    if redis.call('HDEL', entries, f) == 1 then
      redis.call('ZREM', order, f)
      redis.call('HDEL', versions, f)
      redis.call('HSET', deleted, f, int(nextSeq))
      changed = true
      results[#results + 1] = '1'
    else
      results[#results + 1] = '0'
    end
    i = i + 2
  elseif op == 'c' then
    if redis.call('EXISTS', entries) == 1 then
      redis.call('DEL', entries, order, versions, deleted)
      base = nextSeq
      changed = true
    end
    i = i + 1
  else
    return redis.error_reply('ERR anystore: unknown change ' .. tostring(op))
  end
end
if changed then
  if redis.call('HLEN', deleted) > ${REMEMBERED_DELETES} then
    redis.call('DEL', deleted)
    base = nextSeq
  end
  redis.call('HSET', meta, 'seq', int(nextSeq), 'inserts', int(inserts))
  if base then redis.call('HSET', meta, 'base', int(base)) end
end
local done = table.concat(results)
if commitId ~= '' then
  redis.call('HSET', commits, commitId, done)
  redis.call('RPUSH', log, commitId)
  if redis.call('LLEN', log) > ${RECORDED_COMMITS} then
    redis.call('HDEL', commits, redis.call('LPOP', log))
  end
end
return {'ok', done}
`,
)
