-- relayq enqueue: writes one job atomically, for any producer in any language.
-- KEYS[1] relayq:{<id>}:job      KEYS[2] relayq:{<id>}:events   KEYS[3] arq:job:<id>
-- KEYS[4] the queue zset          KEYS[5] relayq:jobs (recent-jobs index)
-- ARGV[1] job id  ARGV[2] job JSON (the versioned envelope)  ARGV[3] kind  ARGV[4] arq function
-- ARGV[5] model   ARGV[6] stream MAXLEN  ARGV[7] arq job key TTL in ms  ARGV[8] tenant ("" if none)
-- Returns {1, "queued"} for a new job, {0, <status>} when a job with this id already exists.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('HGET', KEYS[1], 'status') or 'unknown'}
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'job', ARGV[2], 'kind', ARGV[3], 'model', ARGV[5], 'queue', KEYS[4],
  'status', 'queued', 'attempt', 0, 'created_ms', now_ms, 'tenant', ARGV[8])
local queued = cjson.encode({v = 1, type = 'queued', job_id = ARGV[1], attempt = 0,
  ts = now_ms / 1000, kind = ARGV[3], model = ARGV[5]})
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'event', queued)
local arq_job = cjson.encode({t = 1, f = ARGV[4], a = {ARGV[2]}, k = {}, et = now_ms})
-- an empty Lua table encodes as {}; arq wants an object for kwargs, which is what {} is
redis.call('SET', KEYS[3], arq_job, 'PX', ARGV[7])
redis.call('ZADD', KEYS[4], now_ms, ARGV[1])
redis.call('ZADD', KEYS[5], now_ms, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now_ms - 7 * 24 * 3600 * 1000)
redis.call('PUBLISH', KEYS[4] .. ':wake', ARGV[1])
return {1, 'queued'}
