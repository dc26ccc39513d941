-- relayq release, on the queue's slot: a worker gives up the lease it holds on a job, either
-- because the job ended ("ack") or to let it wait again ARGV[4] ms from now ("requeue": a retry
-- after a backoff, or a job handed back at shutdown).
-- KEYS[1] waiting set  KEYS[2] leases  KEYS[3] claims
-- ARGV[1] job id  ARGV[2] claim token  ARGV[3] "ack" or "requeue"  ARGV[4] delay in ms
-- ARGV[5] the queue's wake channel (published to when the job is due at once)
-- Returns 1, or 0 when the lease is no longer this worker's (then nothing changes).
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[3] == 'requeue' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1])
  if tonumber(ARGV[4]) == 0 then redis.call('PUBLISH', ARGV[5], ARGV[1]) end
end
return 1
