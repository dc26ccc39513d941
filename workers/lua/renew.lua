-- relayq renew, on the queue's slot: the heartbeat extends the leases a worker still holds.
-- KEYS[1] leases  KEYS[2] claims
-- ARGV[1] lease in ms  ARGV[2..] job id, claim token, job id, claim token, ...
-- Returns the ids whose lease is no longer this worker's (another worker took the job over).
local t = redis.call('TIME')
local until_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local lost = {}
for i = 2, #ARGV, 2 do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[i + 1] then
    redis.call('ZADD', KEYS[1], until_ms, ARGV[i])
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
