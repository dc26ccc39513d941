-- relayq start, on the job's slot: a worker that claimed a job starts its next attempt.
-- KEYS[1] job hash  KEYS[2] events  KEYS[3] cancel flag  KEYS[4] blobs  KEYS[5] envelope
-- ARGV[1] claim token  ARGV[2] worker id  ARGV[3] MAXLEN  ARGV[4] TTL seconds after a terminal
-- event  ARGV[5] job id
-- Returns {state, attempt, source, payload}. state "run": attempt `attempt` is this claim's, and
-- its input comes from `source`: "job" (the job JSON enqueue.lua stored), "envelope" (a raw
-- producer's arq-style envelope) or "none" (nothing to run). "terminal": the job has already
-- ended. "cancelled": a cancel was pending, the job ended now.
-- A job put on the queue by a raw producer (an envelope, no job hash) gets its job hash here.
local job = redis.call('HMGET', KEYS[1], 'status', 'attempt', 'claim', 'job')
local status = job[1]
if status == 'done' or status == 'error' or status == 'cancelled' then
  return {'terminal', tonumber(job[2] or '0'), 'none', ''}
end
local function input()
  if job[4] then return job[4], 'job' end
  local envelope = redis.call('GET', KEYS[5])
  if envelope then return envelope, 'envelope' end
  return '', 'none'
end
if status == 'running' and job[3] == ARGV[1] then
  local payload, source = input()  -- our own start, sent again after a lost reply
  return {'run', tonumber(job[2]), source, payload}
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if not status then
  redis.call('HSET', KEYS[1], 'status', 'queued', 'attempt', 0, 'created_ms', now_ms)
end
local attempt = tonumber(job[2] or '0') + 1
if status == 'running' then
  -- the previous attempt's worker vanished without a word: void its output
  local lost = cjson.encode({v = 1, type = 'retry', job_id = ARGV[5], attempt = attempt - 1,
    ts = now_ms / 1000, reason = 'worker_lost', delay = 0})
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'event', lost)
end
redis.call('HSET', KEYS[1], 'attempt', attempt, 'claim', ARGV[1], 'worker', ARGV[2], 'pubseq', 0)
-- enqueue.lua gave the keys a TTL in case the job was never admitted: it was
redis.call('PERSIST', KEYS[1])
redis.call('PERSIST', KEYS[2])
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_ms', now_ms)
  local cancelled = cjson.encode({v = 1, type = 'cancelled', job_id = ARGV[5], attempt = attempt,
    ts = now_ms / 1000, reason = 'cancelled before start'})
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'event', cancelled)
  for i = 1, 5 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
  return {'cancelled', attempt, 'none', ''}
end
redis.call('HSET', KEYS[1], 'status', 'running', 'started_ms', now_ms)
local started = cjson.encode({v = 1, type = 'started', job_id = ARGV[5], attempt = attempt,
  ts = now_ms / 1000, worker = ARGV[2]})
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'event', started)
local payload, source = input()
return {'run', attempt, source, payload}
