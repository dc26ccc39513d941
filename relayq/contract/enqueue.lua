-- relayq enqueue, step 1 of 2, on the job's slot: writes the job, for any producer in any language.
-- KEYS[1] relayq:{<id>}:job   KEYS[2] relayq:{<id>}:events
-- ARGV[1] job id  ARGV[2] job JSON (the versioned envelope)  ARGV[3] kind  ARGV[4] model
-- ARGV[5] stream MAXLEN  ARGV[6] the queue's waiting key (relayq:queue:{chat})
-- ARGV[7] tenant ("" if none)  ARGV[8] seconds the job may wait for a worker before it expires
-- Returns {1, "queued", created ms} for a new job, {0, <status>, created ms} when a job with
-- this id already exists.
-- Step 2 is admit.lua on the queue's slot: run it next whenever the status is not terminal
-- (done, error, cancelled), also for {0, ...}: that completes a submission cut short between
-- the two steps, and does nothing to a job already admitted.
local existing = redis.call('HMGET', KEYS[1], 'status', 'created_ms')
if existing[1] then return {0, existing[1], tonumber(existing[2] or '0')} end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'job', ARGV[2], 'kind', ARGV[3], 'model', ARGV[4], 'queue', ARGV[6],
  'status', 'queued', 'attempt', 0, 'created_ms', now_ms, 'tenant', ARGV[7])
local queued = cjson.encode({v = 1, type = 'queued', job_id = ARGV[1], attempt = 0,
  ts = now_ms / 1000, kind = ARGV[3], model = ARGV[4]})
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'event', queued)
-- a job never admitted (its producer died between the steps and never resubmitted) goes away;
-- start.lua makes the keys of a job that starts permanent until its terminal event
redis.call('EXPIRE', KEYS[1], ARGV[8])
redis.call('EXPIRE', KEYS[2], ARGV[8])
return {1, 'queued', now_ms}
