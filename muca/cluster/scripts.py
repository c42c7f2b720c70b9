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
    "enter": entries.Kind.ENTER.value,
    "exit": entries.Kind.EXIT.value,
    "room": entries.Kind.ROOM.value,
    "invite": entries.Kind.INVITE.value,
}


def _with_entry_names(script: str) -> str:
    """``script`` with the entries' names filled in."""
    return Template(script).substitute(_ENTRY_NAMES)


PREFIX = "muca:"

#: members: uid -> [nickname, node, join seq, look, rooms] (rooms: the
#: member's rooms, ``[key, seq, key, seq, ...]`` in the order entered, each
#: with the sequence number of its entry; the default room's key is ''; an
#: entry without it is in the default room from its join); nicks: nickname -> uid;
#: events: the stream; ids: the last message id given; joinseq: the last
#: join sequence number; nodes: node id -> Redis time (ms) of its last
#: heartbeat; epoch: changes when Redis lost its data; beat: Redis time of
#: the last heartbeat of any node; settling: exists for a few seconds after
#: Redis lost its data, while the nodes register their members again; looks:
#: a nickname's confusable skeleton -> uid (muca.protocol.confusables);
#: known: the user ids that joined on an authenticating cluster, whose ids
#: nobody may take as a nickname (each node also checks those its database
#: knows before it asks); rooms: a room's name -> [seq, owner, topic,
#: private (0/1), slow, [invited uid, ...]] for every room but the default
#: one (seq: from joinseq, the order the rooms were made in); invitations:
#: how many invitations all rooms hold together.
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
    "rooms",
    "invitations",
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
-- rooms: nil (the default room) or a list of room keys, in the order the
-- member entered them (registering it again: see SYNC).
local function register(uid, nick, node, look, rooms)
  local seq = redis.call('INCR', KEYS[5])
  local entered = {'', seq}
  if rooms then
    entered = {}
    for _, key in ipairs(rooms) do
      table.insert(entered, key)
      table.insert(entered, redis.call('INCR', KEYS[5]))
    end
  end
  redis.call('HSET', KEYS[1], uid, cjson.encode({nick, node, seq, look, entered}))
  redis.call('HSET', KEYS[2], nick, uid)
  redis.call('HSETNX', KEYS[10], look, uid)
  if rooms then
    emit('$join', {uid, nick, node, seq, rooms})
  else
    emit('$join', {uid, nick, node, seq})
  end
  return seq
end
-- A member's rooms: [key, seq, ...] (see KEYS).
local function rooms_of(entry)
  return entry[5] or {'', entry[3]}
end
local function room_event(key, state, by, topic_changed, created)
  emit('$room', {key, state[2], state[3], state[4], state[5], by,
                 topic_changed, created})
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

#: ARGV: maxlen node rooms uid1 nick1 look1 rooms1 uid2 ... Makes the
#: registry hold exactly these members for this node, each in the rooms it
#: is in here (after Redis lost its data, or after this node was taken for
#: dead; ``rooms``: a JSON list of the rooms this node knows, ``[name, owner,
#: topic, private, slow, [invited, ...]]`` each, made again if Redis lost
#: them; ``roomsN``: a JSON list of the member's room keys, in the order it
#: entered them). A member still registered here leaves the rooms it is no
#: longer in. Returns the uids somebody else holds now.
SYNC = _COMMON + _with_entry_names(
    """
local node = ARGV[2]
for _, room in ipairs(cjson.decode(ARGV[3])) do
  local key = room[1]
  if redis.call('HEXISTS', KEYS[12], key) == 0 then
    local state = {redis.call('INCR', KEYS[5]), room[2], room[3], room[4],
                   room[5], room[6]}
    redis.call('HSET', KEYS[12], key, cjson.encode(state))
    redis.call('INCRBY', KEYS[13], #room[6])
    room_event(key, state, '', 0, 1)
    for _, uid in ipairs(room[6]) do emit('$invite', {key, uid, ''}) end
  end
end
local keep = {}
local conflicts = {}
for i = 4, #ARGV, 4 do
  local uid, nick, look = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local rooms = cjson.decode(ARGV[i + 3])
  keep[uid] = true
  local raw = redis.call('HGET', KEYS[1], uid)
  if raw then
    local entry = cjson.decode(raw)
    if entry[2] ~= node then
      table.insert(conflicts, uid)
    else
      -- Exits this node made while Redis could not take them.
      local wanted = {}
      for _, key in ipairs(rooms) do wanted[key] = true end
      local entered, kept = rooms_of(entry), {}
      for j = 1, #entered, 2 do
        if wanted[entered[j]] then
          table.insert(kept, entered[j])
          table.insert(kept, entered[j + 1])
        else
          emit('$exit', {uid, entered[j], node})
        end
      end
      entry[5] = kept
      redis.call('HSET', KEYS[1], uid, cjson.encode(entry))
    end
  elseif redis.call('HEXISTS', KEYS[2], nick) == 1 then
    table.insert(conflicts, uid)
  else
    local known = {}
    for _, key in ipairs(rooms) do
      if key == '' or redis.call('HEXISTS', KEYS[12], key) == 1 then
        table.insert(known, key)
      end
    end
    register(uid, nick, node, look, known)
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
#: [epoch, last stream entry id, rooms, uid, nickname, node, seq, its rooms,
#: ...]; ``rooms``: the JSON of ``[[name, seq, owner, topic, private, slow,
#: [invited, ...]], ...]``; a member's rooms: the JSON of ``[key, seq, ...]``
#: (see :data:`KEYS`; an empty list may come as ``{}``).
SNAPSHOT = """
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
local position = '0-0'
if #last > 0 then position = last[1][1] end
local rooms = {}
local made = redis.call('HGETALL', KEYS[12])
for i = 1, #made, 2 do
  local state = cjson.decode(made[i + 1])
  table.insert(rooms, {made[i], state[1], state[2], state[3], state[4],
                       state[5], state[6]})
end
local reply = {redis.call('GET', KEYS[7]) or '', position, cjson.encode(rooms)}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local entry = cjson.decode(all[i + 1])
  table.insert(reply, all[i])
  table.insert(reply, entry[1])
  table.insert(reply, entry[2])
  table.insert(reply, string.format('%d', entry[3]))
  table.insert(reply, cjson.encode(entry[5] or {'', entry[3]}))
end
return reply
"""

# The member ARGV[2] of node ARGV[3], and its entry; or nil.
_MEMBER = """
local uid, node = ARGV[2], ARGV[3]
local raw = redis.call('HGET', KEYS[1], uid)
if not raw then return {'GONE'} end
local entry = cjson.decode(raw)
if entry[2] ~= node then return {'GONE'} end
local function is_in(key)
  local entered = rooms_of(entry)
  for i = 1, #entered, 2 do
    if entered[i] == key then return i end
  end
  return nil
end
"""

#: ARGV: maxlen uid node key create max-rooms. Enters member ``uid`` of
#: ``node`` into the room ``key`` ('' the default room); a room that does not
#: exist is made first when ``create`` is '1' (public, ``uid`` its owner)
#: and the cluster has fewer than ``max-rooms``. Returns ['OK'] or the
#: refusal: ['GONE'] (not this node's member any more), ['ALREADY_IN_ROOM'],
#: ['NO_SUCH_ROOM'], ['ROOMS_FULL'], ['INVITE_ONLY'].
ENTER = (
    _COMMON
    + _MEMBER
    + _with_entry_names(
        """
local key = ARGV[4]
if is_in(key) then return {'ALREADY_IN_ROOM'} end
if key ~= '' then
  local raw_state = redis.call('HGET', KEYS[12], key)
  if not raw_state then
    if ARGV[5] ~= '1' then return {'NO_SUCH_ROOM'} end
    if redis.call('HLEN', KEYS[12]) >= tonumber(ARGV[6]) then
      return {'ROOMS_FULL'}
    end
    local state = {redis.call('INCR', KEYS[5]), uid, '', 0, 0, {}}
    redis.call('HSET', KEYS[12], key, cjson.encode(state))
    room_event(key, state, uid, 0, 1)
  else
    local state = cjson.decode(raw_state)
    if state[4] == 1 and state[2] ~= uid then
      local invited = false
      for _, other in ipairs(state[6]) do
        if other == uid then invited = true end
      end
      if not invited then return {'INVITE_ONLY'} end
    end
  end
end
local entered = rooms_of(entry)
local seq = redis.call('INCR', KEYS[5])
table.insert(entered, key)
table.insert(entered, seq)
entry[5] = entered
redis.call('HSET', KEYS[1], uid, cjson.encode(entry))
emit('$enter', {uid, key, seq, node})
return {'OK'}
"""
    )
)

#: ARGV: maxlen uid node key. Takes member ``uid`` of ``node`` out of the
#: room ``key``. Returns 1, or 0 when it was not in it (or is not this
#: node's).
EXIT = _COMMON + _with_entry_names(
    """
local uid, node, key = ARGV[2], ARGV[3], ARGV[4]
local raw = redis.call('HGET', KEYS[1], uid)
if not raw then return 0 end
local entry = cjson.decode(raw)
if entry[2] ~= node then return 0 end
local entered, kept, found = rooms_of(entry), {}, false
for i = 1, #entered, 2 do
  if entered[i] == key then
    found = true
  else
    table.insert(kept, entered[i])
    table.insert(kept, entered[i + 1])
  end
end
if not found then return 0 end
entry[5] = kept
redis.call('HSET', KEYS[1], uid, cjson.encode(entry))
emit('$exit', {uid, key, node})
return 1
"""
)

#: ARGV: maxlen uid node key topic private slow: the room's owner sets it;
#: ``topic`` is '' (unchanged) or '=' and the topic; ``private`` and
#: ``slow`` '' (unchanged) or the value (0/1; seconds). Returns ['OK'],
#: ['GONE'], ['NO_SUCH_ROOM'] or ['NOT_ALLOWED', owner].
ROOMSET = (
    _COMMON
    + _MEMBER
    + _with_entry_names(
        """
local key = ARGV[4]
if key == '' then return {'NOT_ALLOWED', ''} end
local raw_state = redis.call('HGET', KEYS[12], key)
if not raw_state then return {'NO_SUCH_ROOM'} end
local state = cjson.decode(raw_state)
if state[2] ~= uid then return {'NOT_ALLOWED', state[2]} end
local changed = 0
if ARGV[5] ~= '' then
  local topic = string.sub(ARGV[5], 2)
  if topic ~= state[3] then
    state[3] = topic
    changed = 1
  end
end
if ARGV[6] ~= '' then state[4] = tonumber(ARGV[6]) end
if ARGV[7] ~= '' then state[5] = tonumber(ARGV[7]) end
redis.call('HSET', KEYS[12], key, cjson.encode(state))
room_event(key, state, uid, changed, 0)
return {'OK'}
"""
    )
)

#: ARGV: maxlen uid node key invitee max-invited max-invitations: a member
#: of the room ``key`` lets ``invitee`` in. Returns ['OK'] (also when it was
#: invited already), ['GONE'], ['NO_SUCH_ROOM'], ['NOT_IN_ROOM'] or
#: ['INVITES_FULL'] (the room has ``max-invited`` invitations, or all rooms
#: together ``max-invitations``).
INVITE = (
    _COMMON
    + _MEMBER
    + _with_entry_names(
        """
local key, invitee = ARGV[4], ARGV[5]
if not is_in(key) then return {'NOT_IN_ROOM'} end
if key ~= '' then
  local raw_state = redis.call('HGET', KEYS[12], key)
  if not raw_state then return {'NO_SUCH_ROOM'} end
  local state = cjson.decode(raw_state)
  for _, other in ipairs(state[6]) do
    if other == invitee then return {'OK'} end
  end
  if #state[6] >= tonumber(ARGV[6]) or tonumber(
      redis.call('GET', KEYS[13]) or '0') >= tonumber(ARGV[7]) then
    return {'INVITES_FULL'}
  end
  redis.call('INCR', KEYS[13])
  table.insert(state[6], invitee)
  redis.call('HSET', KEYS[12], key, cjson.encode(state))
end
emit('$invite', {key, invitee, uid})
return {'OK'}
"""
    )
)

#: ARGV: maxlen floor. The id the next message would get (nothing changes).
NEXT_ID = """
local last = tonumber(redis.call('GET', KEYS[4]) or '0')
local floor = tonumber(ARGV[2])
if floor > last then last = floor end
return last + 1
"""
