-- relayq publish: appends the events of one or more attempts, each fenced by attempt number.
-- A call carries one write per job (the writes that were ready together); each write costs one
-- HMGET, one XADD per event and one HSET.
-- KEYS: ARGV[1] keys per job, in order: job hash, events stream, then the job's other keys
-- (cancel flag, blobs, envelope); every key of the job gets the TTL when its terminal event is
-- written. On a Redis Cluster a call carries the jobs of one hash slot only.
-- ARGV[2..]: per job, in KEYS order: attempt, MAXLEN, new status ("" to keep), TTL seconds,
-- usage JSON to store ("" to keep), this write's sequence number in the attempt ("" for none),
-- the number of events n, then n event JSON documents.
-- A terminal status (done/error/cancelled) expires every key of the job after its TTL.
-- Returns, per job: the number of events written, -1 when that attempt no longer owns the job,
-- -2 when earlier writes of that attempt are missing (a failover lost them: the attempt cannot
-- stand, and this write would leave a gap), or an error text when Redis refused the write (the
-- other jobs' writes stand).
-- A write whose sequence number was already applied (a client retrying after a lost reply)
-- changes nothing and reports success, so a retry never duplicates events.
local TERMINAL = {done = true, error = true, cancelled = true}

local function publish(base, per_job, a)
  local job_hash, events = KEYS[base + 1], KEYS[base + 2]
  local attempt, maxlen, new_status, ttl = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local usage, seq, n = ARGV[a + 4], ARGV[a + 5], tonumber(ARGV[a + 6])
  local first = a + 7
  local job = redis.call('HMGET', job_hash, 'attempt', 'pubseq', 'status')
  if job[1] ~= attempt then return -1 end
  if seq ~= '' then
    local applied = tonumber(job[2] or '0')
    if tonumber(seq) <= applied then return n end
    if tonumber(seq) > applied + 1 then return -2 end
  end
  if TERMINAL[job[3]] then return -1 end
  for i = first, first + n - 1 do
    local added = redis.pcall('XADD', events, 'MAXLEN', '~', maxlen, '*', 'event', ARGV[i])
    if type(added) == 'table' and added.err then return 'error: ' .. added.err end
  end
  local fields = {}
  if seq ~= '' then fields[#fields + 1] = 'pubseq'; fields[#fields + 1] = seq end
  if usage ~= '' then fields[#fields + 1] = 'usage'; fields[#fields + 1] = usage end
  if new_status ~= '' then fields[#fields + 1] = 'status'; fields[#fields + 1] = new_status end
  local terminal = TERMINAL[new_status]
  if terminal then
    local t = redis.call('TIME')
    fields[#fields + 1] = 'finished_ms'
    fields[#fields + 1] = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  if #fields > 0 then redis.call('HSET', job_hash, unpack(fields)) end
  if terminal then
    for i = 1, per_job do redis.call('EXPIRE', KEYS[base + i], ttl) end
  end
  return n
end

local per_job = tonumber(ARGV[1])
local results = {}
local a = 2
for base = 0, #KEYS - per_job, per_job do
  results[#results + 1] = publish(base, per_job, a)
  a = a + 7 + tonumber(ARGV[a + 6])
end
return results
