-- relayq publish: appends events of one attempt, fenced by attempt number.
-- KEYS[1] job hash  KEYS[2] events stream  KEYS[3] cancel flag
-- ARGV[1] attempt  ARGV[2] MAXLEN  ARGV[3] new status ("" to keep)  ARGV[4] TTL seconds
-- ARGV[5] usage JSON to store ("" to keep)  ARGV[6] this write's sequence number in the attempt
-- ("" for none)  ARGV[7..] event JSON documents
-- A terminal status (done/error/cancelled) expires every key of the job after ARGV[4] s.
-- Returns the number of events written, or -1 when this attempt no longer owns the job.
-- A write whose sequence number was already applied (a client retrying after a lost reply)
-- changes nothing and reports success, so a retry never duplicates events.
local job = redis.call('HMGET', KEYS[1], 'attempt', 'pubseq', 'status')
if job[1] ~= ARGV[1] then return -1 end
if ARGV[6] ~= '' and tonumber(ARGV[6]) <= tonumber(job[2] or '0') then return #ARGV - 6 end
local status = job[3]
if status == 'done' or status == 'error' or status == 'cancelled' then return -1 end
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'pubseq', ARGV[6]) end
for i = 7, #ARGV do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'event', ARGV[i])
end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'usage', ARGV[5]) end
local new_status = ARGV[3]
if new_status ~= '' then
  redis.call('HSET', KEYS[1], 'status', new_status)
  if new_status == 'done' or new_status == 'error' or new_status == 'cancelled' then
    local t = redis.call('TIME')
    redis.call('HSET', KEYS[1], 'finished_ms', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
    local blobs = tonumber(redis.call('HGET', KEYS[1], 'blobs') or '0')
    local prefix = string.sub(KEYS[1], 1, -4)
    for n = 1, blobs do redis.call('EXPIRE', prefix .. 'blob:' .. n, ARGV[4]) end
    for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
  end
end
return #ARGV - 6
