-- relayq cancel, on the job's slot: asks a job to stop. Unknown or finished jobs: a no-op that
-- leaves nothing behind.
-- KEYS[1] job hash  KEYS[2] events  KEYS[3] cancel flag  KEYS[4] blobs  KEYS[5] envelope
-- ARGV[1] job id  ARGV[2] reason  ARGV[3] MAXLEN  ARGV[4] TTL seconds  ARGV[5] cancel channel
-- Returns "unknown", "finished", "cancelled" (it was waiting and ended now: its queue entry is
-- left for the caller to ZREM, or for a worker to drop) or "signalled" (it is running: the
-- worker running it stops it and publishes `cancelled`).
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  if redis.call('EXISTS', KEYS[5]) == 0 then return 'unknown' end
  status = 'queued'  -- a raw producer's job, not started yet
end
if status == 'done' or status == 'error' or status == 'cancelled' then return 'finished' end
redis.call('SET', KEYS[3], '1', 'EX', ARGV[4])
if status == 'queued' or status == 'retrying' then
  local t = redis.call('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_ms', now_ms)
  local attempt = tonumber(redis.call('HGET', KEYS[1], 'attempt') or '0')
  local event = cjson.encode({v = 1, type = 'cancelled', job_id = ARGV[1], attempt = attempt,
    ts = now_ms / 1000, reason = ARGV[2]})
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'event', event)
  for i = 1, 5 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
  return 'cancelled'
end
redis.call('PUBLISH', ARGV[5], ARGV[1])
return 'signalled'
