package redisbroker

import "github.com/redis/go-redis/v9"

// takeScript pops up to ARGV[2] messages from the lists KEYS[5..] (the first non-empty list first,
// from the right end, where kombu's BRPOP reads) and, in the same atomic step, records each as
// unacknowledged exactly as kombu's QoS.append does: ZADD unacked_index <ARGV[1]> <tag> and HSET
// unacked <tag> "[<message>, <exchange>, <routing key>]". A worker killed at any moment therefore
// leaves every message either in its list or in the unacked hash, where any kombu or Go worker
// restores it once the visibility timeout has passed. An entry that is not a JSON object with a
// string properties.delivery_tag is moved to the quarantine list KEYS[3] in the same step.
// The reply is a flat list of (list, entry, taken) triples: taken is "1" for a message recorded as
// unacknowledged, "0" for an entry moved to the quarantine list (its list says where it was).
//
// A take is idempotent: ARGV[3] is its token (the consumer's sequence number, the same again when
// a take that returned an error is retried) and KEYS[4] the consumer's take receipt
// "_forumads.take.<consumer id>". The script runs on the master and its reply can still be lost
// (the connection cut, the master killed before it answered); go-redis, or the consumer, then
// sends the same take again. Without the receipt that second run would take other messages and
// leave the first run's in the unacked hash, unseen by anyone, until the visibility timeout (an
// hour by default). So a take that took at least one message also writes the receipt, the JSON
// array [token, list, tag, cut, list, tag, cut, ...] (cut: the length of the
// ", <exchange>, <routing key>]" suffix of the message's unacked entry), expiring after ARGV[4]
// milliseconds (the visibility timeout: by then the messages are restorable anyway). When the
// receipt holds this take's token, nothing is popped: the previous run's reply is rebuilt from the
// unacked hash, each entry cut back out of its field exactly, leaving out the messages that are no
// longer there (acknowledged, or restored meanwhile: a Go restore gives them a new tag). Entries
// moved to the quarantine list are not in the receipt: they are not returned twice, and
// sweepQuarantine parks them. An empty take writes nothing (the receipt of an older token can
// never match again). With ARGV[2] = 0 the script only replays: the consumer's last step when it
// ends after a failed take (see consumer.endTakes), which then deletes the receipt.
var takeScript = redis.NewScript(`
local prev = redis.call('GET', KEYS[4])
if prev then
  local ok, r = pcall(cjson.decode, prev)
  if ok and type(r) == 'table' and r[1] == ARGV[3] then
    local out = {}
    for j = 2, #r - 2, 3 do
      local v = redis.call('HGET', KEYS[1], r[j + 1])
      if v and type(r[j + 2]) == 'number' and #v > r[j + 2] + 1 then
        table.insert(out, r[j])
        table.insert(out, string.sub(v, 2, #v - r[j + 2]))
        table.insert(out, '1')
      end
    end
    return out
  end
end
local out = {}
local receipt = {ARGV[3]}
local want = tonumber(ARGV[2])
local got = 0
for i = 5, #KEYS do
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
      local suffix = ', ' .. cjson.encode(ex) .. ', ' .. cjson.encode(rk) .. ']'
      redis.call('ZADD', KEYS[2], ARGV[1], tag)
      redis.call('HSET', KEYS[1], tag, '[' .. item .. suffix)
      table.insert(out, KEYS[i])
      table.insert(out, item)
      table.insert(out, '1')
      table.insert(receipt, KEYS[i])
      table.insert(receipt, tag)
      table.insert(receipt, #suffix)
      got = got + 1
    end
  end
  if got >= want then break end
end
if got > 0 then
  redis.call('SET', KEYS[4], cjson.encode(receipt), 'PX', ARGV[4])
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
