-- relayq claim, on the queue's slot: a worker takes up to ARGV[2] jobs in one round trip, first
-- jobs whose lease ran out (their worker is gone), then waiting jobs that are due.
-- KEYS[1] waiting set  KEYS[2] leases  KEYS[3] claims
-- ARGV[1] lease in ms  ARGV[2] how many jobs at most  ARGV[3] claim token prefix (unique per
-- call)  ARGV[4..] job ids to leave alone (this worker is running them)
-- Returns {id, token, reclaimed (1 or 0), ...}: the worker holds each job's lease under `token`
-- until it releases it (release.lua) or stops renewing it (renew.lua).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = now + tonumber(ARGV[1])
local room = tonumber(ARGV[2])
local skip = {}
for i = 4, #ARGV do skip[ARGV[i]] = true end
local extra = #ARGV - 3
local claimed = {}
local n = 0
local function take(id, reclaimed)
  n = n + 1
  local token = ARGV[3] .. ':' .. n
  redis.call('ZADD', KEYS[2], until_ms, id)
  redis.call('HSET', KEYS[3], id, token)
  claimed[#claimed + 1] = id
  claimed[#claimed + 1] = token
  claimed[#claimed + 1] = reclaimed
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, room + extra)) do
  if n >= room then break end
  if not skip[id] then take(id, 1) end
end
if n < room then
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, room - n + extra)
  for _, id in ipairs(due) do
    if n >= room then break end
    if not skip[id] then
      redis.call('ZREM', KEYS[1], id)
      take(id, 0)
    end
  end
end
return claimed
