-- relayq start: a worker claims attempt ARGV[1] of a job.
-- KEYS[1] job hash  KEYS[2] events stream  KEYS[3] cancel flag
-- ARGV[1] attempt  ARGV[2] worker id  ARGV[3] started event JSON  ARGV[4] MAXLEN
-- ARGV[5] job id
-- ARGV[6] cancelled event JSON  ARGV[7] TTL seconds applied after a terminal event
-- Returns "run", "terminal" (already ended: do nothing) or "cancelled" (ended now).
-- A job put on the queue without enqueue.lua (raw arq producers) gets its job hash here.
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'done' or status == 'error' or status == 'cancelled' then return 'terminal' end
if status == 'running' and redis.call('HGET', KEYS[1], 'attempt') == ARGV[1]
    and redis.call('HGET', KEYS[1], 'worker') == ARGV[2] then
  return 'run'  -- our own claim, retried after a lost reply
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if not status then
  redis.call('HSET', KEYS[1], 'status', 'queued', 'attempt', 0, 'created_ms', now_ms)
end
if status == 'running' then
  -- the previous attempt's worker vanished without a word: void its output
  local lost = cjson.encode({v = 1, type = 'retry', job_id = ARGV[5],
    attempt = tonumber(redis.call('HGET', KEYS[1], 'attempt') or '0'), ts = now_ms / 1000,
    reason = 'worker_lost', delay = 0})
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'event', lost)
end
redis.call('HSET', KEYS[1], 'attempt', ARGV[1], 'worker', ARGV[2], 'pubseq', 0)
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_ms', now_ms)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'event', ARGV[6])
  for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[7]) end
  return 'cancelled'
end
redis.call('HSET', KEYS[1], 'status', 'running', 'started_ms', now_ms)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'event', ARGV[3])
return 'run'
