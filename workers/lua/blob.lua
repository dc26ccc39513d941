-- relayq blob, on the job's slot: stores one screenshot of attempt ARGV[1], fenced like publish.lua.
-- KEYS[1] job hash  KEYS[2] blobs hash
-- ARGV[1] attempt  ARGV[2] the bytes  ARGV[3] TTL seconds
-- Returns the blob number n (field n of the blobs hash), or -1 when the attempt was fenced off.
local job = redis.call('HMGET', KEYS[1], 'status', 'attempt')
if job[1] == 'done' or job[1] == 'error' or job[1] == 'cancelled' then return -1 end
if job[2] ~= ARGV[1] then return -1 end
local n = redis.call('HINCRBY', KEYS[1], 'blobs', 1)
redis.call('HSET', KEYS[2], n, ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return n
