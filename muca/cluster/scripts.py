"""The Lua scripts that make each cluster decision atomic in Redis.

Every script gets the same keys (:data:`KEYS`, in this order) so that one
list serves them all. The stream ``events`` carries, in one order for every
node, the entries :mod:`muca.cluster.entries` describes; the scripts that
append them get their field names and kinds from there (``$kind``,
``$join``... below are filled in from it).
"""

from __future__ import annotations

from string import Template

from muca.cluster import entries

# The entries' field names and kinds, as the scripts name them.
_ENTRY_NAMES = {
    "kind": entries.KIND,
    "first": entries.FIRST,
    "count": entries.COUNT,
    "token": entries.TOKEN,
    "to": entries.TO,
    "data": entries.DATA,
    "messages": entries.Kind.MESSAGES.value,
    "join": entries.Kind.JOIN.value,
    "leave": entries.Kind.LEAVE.value,
}


def _with_entry_names(script: str) -> str:
    """``script`` with the entries' names filled in."""
    return Template(script).substitute(_ENTRY_NAMES)


PREFIX = "muca:"

#: members: uid -> [nickname, node, join seq, look]; nicks: nickname -> uid;
#: events: the stream; ids: the last message id given; joinseq: the last
#: join sequence number; nodes: node id -> Redis time (ms) of its last
#: heartbeat; epoch: changes when Redis lost its data; beat: Redis time of
#: the last heartbeat of any node; settling: exists for a few seconds after
#: Redis lost its data, while the nodes register their members again; looks:
#: a nickname's confusable skeleton -> uid (muca.protocol.confusables);
#: known: the user ids that joined on an authenticating cluster, whose ids
#: nobody may take as a nickname (each node also checks those its database
#: knows before it asks).
_NAMES = (
    "members",
    "nicks",
    "events",
    "ids",
    "joinseq",
    "nodes",
    "epoch",
    "beat",
    "settling",
    "looks",
    "known",
)
KEYS = [PREFIX + name for name in _NAMES]

# Shared helpers, prepended to the scripts that need them.
_COMMON = _with_entry_names("""
local function emit(kind, data)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*', '$kind', kind,
             '$data', cjson.encode(data))
end
local function drop(uid, entry)
  redis.call('HDEL', KEYS[1], uid)
  redis.call('HDEL', KEYS[2], entry[1])
  if entry[4] and redis.call('HGET', KEYS[10], entry[4]) == uid then
    redis.call('HDEL', KEYS[10], entry[4])
  end
  emit('$leave', {uid, entry[2]})
end
local function register(uid, nick, node, look)
  local seq = redis.call('INCR', KEYS[5])
  redis.call('HSET', KEYS[1], uid, cjson.encode({nick, node, seq, look}))
  redis.call('HSET', KEYS[2], nick, uid)
  redis.call('HSETNX', KEYS[10], look, uid)
  emit('$join', {uid, nick, node, seq})
  return seq
end
""")

#: ARGV: maxlen uid nickname node capacity (0: none) look (the nickname's
#: skeleton) known ('1': the uid becomes known). The rules of
#: ``Room.check_names``: a nickname is no other user's id (joined or known),
#: a user id no other member's nickname, a look no other member's; the
#: refusal's second element is the look-alike nickname in use.
JOIN = (
    _COMMON
    + """
local uid, nick, node, look = ARGV[2], ARGV[3], ARGV[4], ARGV[6]
if not redis.call('ZSCORE', KEYS[6], node) then return {'NODE_GONE'} end
if redis.call('EXISTS', KEYS[9]) == 1 then return {'SETTLING'} end
if redis.call('HEXISTS', KEYS[1], uid) == 1 then return {'UID_TAKEN'} end
if redis.call('HEXISTS', KEYS[2], nick) == 1 then return {'NICK_TAKEN'} end
if redis.call('HEXISTS', KEYS[2], uid) == 1 then return {'UID_IS_NICK'} end
if nick ~= uid and (redis.call('HEXISTS', KEYS[1], nick) == 1
                    or redis.call('SISMEMBER', KEYS[11], nick) == 1) then
  return {'NICK_IS_UID'}
end
local holder = redis.call('HGET', KEYS[10], look)
if holder then
  local raw = redis.call('HGET', KEYS[1], holder)
  if raw then return {'NICK_LOOKS', cjson.decode(raw)[1]} end
  redis.call('HDEL', KEYS[10], look)
end
local capacity = tonumber(ARGV[5])
if capacity > 0 and redis.call('HLEN', KEYS[1]) >= capacity then
  return {'SERVER_FULL'}
end
if ARGV[7] == '1' then redis.call('SADD', KEYS[11], uid) end
return {'OK', register(uid, nick, node, look)}
"""
)

#: ARGV: maxlen uid node. Removes the member only if that node owns it.
LEAVE = (
    _COMMON
    + """
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then return 0 end
local entry = cjson.decode(raw)
if entry[2] ~= ARGV[3] then return 0 end
drop(ARGV[2], entry)
return 1
"""
)

#: ARGV: maxlen floor count data expected token to. Gives ``count`` ids after
#: max(last id, floor) and appends the batch; with ``expected`` (not empty)
#: fails unless the first id is that one. ``token`` names the batch on the
#: stream; ``to`` says who it is for (see ``entries.Publication``). Returns
#: the first id.
PUBLISH = _with_entry_names("""
local last = tonumber(redis.call('GET', KEYS[4]) or '0')
local floor = tonumber(ARGV[2])
if floor > last then last = floor end
local first = last + 1
if ARGV[5] ~= '' and tonumber(ARGV[5]) ~= first then
  return redis.error_reply('IDRACE ids moved: ' .. first)
end
redis.call('SET', KEYS[4], string.format('%d', last + tonumber(ARGV[3])))
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*', '$kind', '$messages',
           '$first', string.format('%d', first), '$count', ARGV[3],
           '$token', ARGV[6], '$to', ARGV[7], '$data', ARGV[4])
return first
""")

#: ARGV: maxlen node new-epoch ttl-ms stall-ms settle-ms known-epoch
#: ('' for a node just started). Refreshes this node's
#: heartbeat and removes the members of nodes silent for ``ttl`` ms. When no
#: node at all beat for ``stall`` ms, Redis itself was stopped or cut off:
#: that time counts against no node (every last beat moves on by as much),
#: so nobody is declared dead for it, and a node that was dead before still
#: goes within ``ttl`` of its last beat plus the stall. Returns
#: [epoch, 1 if this node was registered before, nodes removed].
HEARTBEAT = (
    _COMMON
    + """
local node = ARGV[2]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
if redis.call('EXISTS', KEYS[7]) == 0 then
  redis.call('SET', KEYS[7], ARGV[3])
  if ARGV[7] ~= '' then
    -- Redis lost its data (this node knew an epoch): new joins wait until
    -- every node had the time to register its own members again.
    redis.call('SET', KEYS[9], '1', 'PX', ARGV[6])
  end
end
local epoch = redis.call('GET', KEYS[7])
local last = tonumber(redis.call('GET', KEYS[8]) or '0')
local known = redis.call('ZSCORE', KEYS[6], node) and 1 or 0
redis.call('SET', KEYS[8], string.format('%d', now))
local removed = 0
if now - last > tonumber(ARGV[5]) then
  local nodes = redis.call('ZRANGE', KEYS[6], 0, -1, 'WITHSCORES')
  for i = 1, #nodes, 2 do
    local moved = math.min(tonumber(nodes[i + 1]) + now - last, now)
    redis.call('ZADD', KEYS[6], string.format('%d', moved), nodes[i])
  end
else
  local dead = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf',
                          now - tonumber(ARGV[4]))
  if #dead > 0 then
    local gone = {}
    for _, other in ipairs(dead) do
      if other ~= node then
        gone[other] = true
        redis.call('ZREM', KEYS[6], other)
        removed = removed + 1
      end
    end
    local all = redis.call('HGETALL', KEYS[1])
    for i = 1, #all, 2 do
      local entry = cjson.decode(all[i + 1])
      if gone[entry[2]] then drop(all[i], entry) end
    end
  end
end
redis.call('ZADD', KEYS[6], now, node)
return {epoch, known, removed}
"""
)

#: ARGV: maxlen node uid1 nick1 look1 uid2 nick2 look2 ... Makes the
#: registry hold exactly these members for this node (after Redis lost its
#: data, or after this node was taken for dead). Returns the uids somebody
#: else holds now.
SYNC = (
    _COMMON
    + """
local node = ARGV[2]
local keep = {}
local conflicts = {}
for i = 3, #ARGV, 3 do
  local uid, nick, look = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  keep[uid] = true
  local raw = redis.call('HGET', KEYS[1], uid)
  if raw then
    if cjson.decode(raw)[2] ~= node then table.insert(conflicts, uid) end
  elseif redis.call('HEXISTS', KEYS[2], nick) == 1 then
    table.insert(conflicts, uid)
  else
    register(uid, nick, node, look)
  end
end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local entry = cjson.decode(all[i + 1])
  if entry[2] == node and not keep[all[i]] then drop(all[i], entry) end
end
return conflicts
"""
)

#: No ARGV. The registry and the stream position it is current at, at once:
#: [epoch, last stream entry id, uid, nickname, node, seq, ...].
SNAPSHOT = """
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
local position = '0-0'
if #last > 0 then position = last[1][1] end
local reply = {redis.call('GET', KEYS[7]) or '', position}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local entry = cjson.decode(all[i + 1])
  table.insert(reply, all[i])
  table.insert(reply, entry[1])
  table.insert(reply, entry[2])
  table.insert(reply, string.format('%d', entry[3]))
end
return reply
"""

#: ARGV: maxlen floor. The id the next message would get (nothing changes).
NEXT_ID = """
local last = tonumber(redis.call('GET', KEYS[4]) or '0')
local floor = tonumber(ARGV[2])
if floor > last then last = floor end
return last + 1
"""
