-- relayq admit, step 2 of 2, on the queue's slot: puts an enqueued job on its queue, once.
-- KEYS[1] the queue's waiting set (relayq:queue:{chat})  KEYS[2] its leases (...:leases)
-- ARGV[1] job id  ARGV[2] the queue's wake channel (relayq:queue:{chat}:wake)
-- Returns 1 when the job was added (due now), 0 when it was already waiting or running.
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return 0
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now_ms, ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[1])
return 1
