"""The Lua scripts behind :mod:`stream.redis_state`: one read, one atomic write per batch."""

LOAD_ROWS = """\
-- Everything a batch needs about its items, as one JSON document
-- (parsing one string in Python is far cheaper than thousands of replies).
-- ARGV[1]: JSON {"rows": [neighbour keys], "occ": hash key, "pop": zset key,
--                "ver": hash key, "items": [item ids], "known": [version the
--                worker holds, or ""], "top": n, "sess": [item session-list
--                keys], "sess_prefix": prefix of session keys}
-- A row still at the version the worker holds comes back as false. Session
-- documents come back in the order of "sids" (false: expired or erased).
local req = cjson.decode(ARGV[1])
local occ, pop, ver = {}, {}, {}
-- In chunks: unpack() of thousands of arguments would overflow Lua's stack.
for start = 1, #req.items, 500 do
    local chunk = {}
    for i = start, math.min(start + 499, #req.items) do chunk[#chunk + 1] = req.items[i] end
    local o = redis.call('HMGET', req.occ, unpack(chunk))
    local p = redis.call('ZMSCORE', req.pop, unpack(chunk))
    local v = redis.call('HMGET', req.ver, unpack(chunk))
    for i = 1, #chunk do
        occ[#occ + 1] = o[i] or ''
        pop[#pop + 1] = p[i] or ''
        ver[#ver + 1] = v[i] or ''
    end
end
local rows = {}
for i, key in ipairs(req.rows) do
    if ver[i] ~= '' and ver[i] == req.known[i] then
        rows[i] = false
    else
        rows[i] = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
    end
end
local top = redis.call('ZREVRANGE', req.pop, 0, req.top - 1, 'WITHSCORES')
-- Session neighbours: each item's sessions, and the items of every session listed.
local srows, sids, seen, sdocs = {}, {}, {}, {}
for i, key in ipairs(req.sess) do
    local r = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
    srows[i] = r
    for j = 1, #r, 2 do
        if not seen[r[j]] then seen[r[j]] = true; sids[#sids + 1] = r[j] end
    end
end
for start = 1, #sids, 500 do
    local chunk = {}
    for i = start, math.min(start + 499, #sids) do chunk[#chunk + 1] = req.sess_prefix .. sids[i] end
    local d = redis.call('MGET', unpack(chunk))
    for i = 1, #chunk do sdocs[#sdocs + 1] = d[i] end
end
return cjson.encode({rows = rows, occ = occ, pop = pop, ver = ver, top = top,
                     srows = srows, sids = sids, sdocs = sdocs})
"""

from stream.demand_redis import LUA_APPLY as DEMAND_APPLY  # noqa: E402

COMMIT_BATCH = """\
-- Apply one batch atomically, if and only if no other worker has moved the
-- batch's offsets since they were read. Returns 0 if not; else {1, flags}
-- with a flag per "checked" row: 1 if it was still at the version read.
-- ARGV[1]: JSON {"offsets": [[key, expected or "", new]], "ttl": s,
--   "users": [[key, i]], "recs": [[key, i]] (the document to store is ARGV[i]),
--   "pairs": [[key, member, increment]], "occ_key": k, "occ": [[field, incr]],
--   "pop_key": k, "pop": [[member, incr]], "trim": [keys], "keep": m,
--   "ver_key": k, "token": this commit's version, "touched": [item of each trim key],
--   "checked": [[item, version read]],
--   "opened": [[key, member, score]], "closed": [[key, member]],
--   "checks": [[key, member, score or "" to remove]],
--   "sess_docs": [[key, doc]], "sess_gone": [[key, member]],
--   "sess_touches": [[key, member, score]], "sess_keep": m,
--   "camp_key": k, "camp": [[field, integer increment]], "sent_key": k,
--   "sent": [[field, integer increment]], "day_key": k, "day": day or "",
--   "demand": optional, see stream/demand_redis.py,
--   "voice": [[key, i, expiry s]] (optional),
--   "cas": [[key, document as read or ""]] (optional: documents other workers
--     may rewrite too, demand's and items' satisfaction; any moved refuses the batch)}
-- Numbers travel as strings: Lua would print them with 14 digits only.
local b = cjson.decode(ARGV[1])
for _, o in ipairs(b.offsets) do
    local current = redis.call('GET', o[1]) or ''
    if current ~= o[2] then return 0 end
end
for _, c in ipairs(b.cas or {}) do
    if (redis.call('GET', c[1]) or '') ~= c[2] then return 0 end
end
local flags = {}
for i, c in ipairs(b.checked) do
    flags[i] = ((redis.call('HGET', b.ver_key, c[1]) or '') == c[2]) and 1 or 0
end
for _, u in ipairs(b.users) do redis.call('SET', u[1], ARGV[u[2]], 'EX', b.ttl) end
for _, p in ipairs(b.pairs) do redis.call('ZINCRBY', p[1], p[3], p[2]) end
for _, o in ipairs(b.occ) do redis.call('HINCRBYFLOAT', b.occ_key, o[1], o[2]) end
for _, p in ipairs(b.pop) do redis.call('ZINCRBY', b.pop_key, p[2], p[1]) end
for _, k in ipairs(b.trim) do redis.call('ZREMRANGEBYRANK', k, 0, -(b.keep + 1)) end
for _, item in ipairs(b.touched) do redis.call('HSET', b.ver_key, item, b.token) end
for _, o in ipairs(b.opened) do redis.call('ZADD', o[1], o[3], o[2]) end
for _, c in ipairs(b.closed) do redis.call('ZREM', c[1], c[2]) end
for _, c in ipairs(b.checks) do
    if c[3] == '' then redis.call('ZREM', c[1], c[2]) else redis.call('ZADD', c[1], c[3], c[2]) end
end
for _, r in ipairs(b.recs) do redis.call('SET', r[1], ARGV[r[2]], 'EX', b.ttl) end
-- Session neighbours: a session's time in an item's list never goes back, and
-- each list keeps its newest sessions (trimmed as the worker's view trimmed,
-- after every addition; the result does not depend on the order).
for _, g in ipairs(b.sess_gone) do redis.call('ZREM', g[1], g[2]) end
for _, t in ipairs(b.sess_touches) do
    redis.call('ZADD', t[1], 'GT', t[3], t[2])
    redis.call('ZREMRANGEBYRANK', t[1], 0, -(b.sess_keep + 1))
end
for _, d in ipairs(b.sess_docs) do redis.call('SET', d[1], d[2], 'EX', b.ttl) end
-- Campaign totals are integers (revenue in cents): exact whatever the batches.
for _, c in ipairs(b.camp) do redis.call('HINCRBY', b.camp_key, c[1], c[2]) end
for _, c in ipairs(b.sent) do redis.call('HINCRBY', b.sent_key, c[1], c[2]) end
if b.day ~= '' and tonumber(redis.call('GET', b.day_key) or '-1') < tonumber(b.day) then
    redis.call('SET', b.day_key, b.day)
end
-- What customers wrote (stream/voice.py): documents with their own expiry;
-- an expiry of 0 deletes the key.
for _, v in ipairs(b.voice or {}) do
    if v[3] == 0 then redis.call('DEL', v[1]) else redis.call('SET', v[1], ARGV[v[2]], 'EX', v[3]) end
end
""" + DEMAND_APPLY + """for _, o in ipairs(b.offsets) do redis.call('SET', o[1], o[3]) end
return {1, flags}
"""
