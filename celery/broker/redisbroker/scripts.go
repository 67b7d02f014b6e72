package redisbroker

import "github.com/redis/go-redis/v9"

// takeScript pops up to ARGV[2] messages from the lists KEYS[4..] (the first non-empty list first,
// from the right end, where kombu's BRPOP reads) and, in the same atomic step, records each as
// unacknowledged exactly as kombu's QoS.append does: ZADD unacked_index <ARGV[1]> <tag> and HSET
// unacked <tag> "[<message>, <exchange>, <routing key>]". A worker killed at any moment therefore
// leaves every message either in its list or in the unacked hash, where any kombu or Go worker
// restores it once the visibility timeout has passed. An entry that is not a JSON object with a
// string properties.delivery_tag is moved to the quarantine list KEYS[3] in the same step.
// The reply is a flat list of (list, entry, taken) triples: taken is "1" for a message recorded as
// unacknowledged, "0" for an entry moved to the quarantine list (its list says where it was).
var takeScript = redis.NewScript(`
local out = {}
local want = tonumber(ARGV[2])
local got = 0
for i = 4, #KEYS do
  while got < want do
    local item = redis.call('RPOP', KEYS[i])
    if not item then break end
    local ok, m = pcall(cjson.decode, item)
    local tag = nil
    if ok and type(m) == 'table' and type(m['properties']) == 'table' then
      tag = m['properties']['delivery_tag']
    end
    if type(tag) ~= 'string' or tag == '' then
      redis.call('LPUSH', KEYS[3], item)
      table.insert(out, KEYS[i])
      table.insert(out, item)
      table.insert(out, '0')
    else
      local ex, rk = '', ''
      local di = m['properties']['delivery_info']
      if type(di) == 'table' then
        if type(di['exchange']) == 'string' then ex = di['exchange'] end
        if type(di['routing_key']) == 'string' then rk = di['routing_key'] end
      end
      redis.call('ZADD', KEYS[2], ARGV[1], tag)
      redis.call('HSET', KEYS[1], tag, '[' .. item .. ', ' .. cjson.encode(ex) .. ', ' .. cjson.encode(rk) .. ']')
      table.insert(out, KEYS[i])
      table.insert(out, item)
      table.insert(out, '1')
      got = got + 1
    end
  end
  if got >= want then break end
end
return out
`)

// restoreScript gives back the unacknowledged message ARGV[1] (a delivery tag) if it is still in
// the unacked hash KEYS[1]: it removes the tag from the hash and from unacked_index KEYS[2] and
// pushes ARGV[2] (the message marked redelivered) onto each list KEYS[3..], at the right end (the
// head, kombu's restore) or, with ARGV[3] = "left", the left end (the tail, kombu's reject with
// requeue). Returns 1 when it restored, 0 when the tag was gone (acknowledged, or restored by
// someone else: nothing is pushed twice). Being one step, it needs no WATCH, and a kombu restore
// of the same tag (WATCH unacked, then MULTI) either finds the field gone or makes HDEL return 0.
var restoreScript = redis.NewScript(`
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
for i = 3, #KEYS do
  if ARGV[3] == 'left' then redis.call('LPUSH', KEYS[i], ARGV[2]) else redis.call('RPUSH', KEYS[i], ARGV[2]) end
end
return 1
`)

// moveDueScript moves the parked messages of the sorted set KEYS[1] whose score (due time, Unix
// seconds) is not after ARGV[1] to the head of their list, at most ARGV[2] of them. A member is
// "<length of the list's name>:<list name><message>".
var moveDueScript = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  local colon = string.find(m, ':', 1, true)
  if colon then
    local n = tonumber(string.sub(m, 1, colon - 1))
    if n then
      redis.call('RPUSH', string.sub(m, colon + 1, colon + n), string.sub(m, colon + n + 1))
      redis.call('ZREM', KEYS[1], m)
    end
  end
end
return #due
`)

// unlockScript releases the unacked mutex only if it still holds our token (as redis-py's
// Lock.release does).
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)
