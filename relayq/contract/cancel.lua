-- relayq cancel: asks a job to stop. Unknown or finished jobs: a no-op that leaves nothing behind.
-- KEYS[1] job hash  KEYS[2] events stream  KEYS[3] cancel flag  KEYS[4] arq:job:<id>
-- KEYS[5] the queue zset  KEYS[6] the cancel channel
-- ARGV[1] job id  ARGV[2] reason  ARGV[3] MAXLEN  ARGV[4] TTL seconds
-- Returns "unknown", "finished", "cancelled" (was waiting: ended now) or "signalled" (running).
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'unknown' end
if status == 'done' or status == 'error' or status == 'cancelled' then return 'finished' end
redis.call('SET', KEYS[3], '1', 'EX', ARGV[4])
if status == 'queued' or status == 'retrying' then
  local t = redis.call('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_ms', now_ms)
  redis.call('ZREM', KEYS[5], ARGV[1])
  redis.call('DEL', KEYS[4])
  local attempt = tonumber(redis.call('HGET', KEYS[1], 'attempt') or '0')
  local event = cjson.encode({v = 1, type = 'cancelled', job_id = ARGV[1], attempt = attempt,
    ts = now_ms / 1000, reason = ARGV[2]})
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'event', event)
  for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
  return 'cancelled'
end
redis.call('PUBLISH', KEYS[6], ARGV[1])
return 'signalled'
