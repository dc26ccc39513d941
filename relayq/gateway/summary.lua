-- relayq gateway: the first ARGV[1] bytes of a job's request, for the jobs list's summary
-- (a request may be megabytes; the list needs its first line).
-- KEYS[1] relayq:{<id>}:job
local job = redis.call('HGET', KEYS[1], 'job')
if not job then return false end
return string.sub(job, 1, tonumber(ARGV[1]))
