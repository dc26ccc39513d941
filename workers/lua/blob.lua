-- relayq blob: stores one screenshot of attempt ARGV[1], fenced like publish.lua.
-- KEYS[1] job hash  ARGV[1] attempt  ARGV[2] the bytes  ARGV[3] TTL seconds  ARGV[4] job id
-- Returns the blob number n (key relayq:{<id>}:blob:<n>), or -1 when the attempt was fenced off.
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'done' or status == 'error' or status == 'cancelled' then return -1 end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return -1 end
local n = redis.call('HINCRBY', KEYS[1], 'blobs', 1)
redis.call('SET', 'relayq:{' .. ARGV[4] .. '}:blob:' .. n, ARGV[2], 'EX', ARGV[3])
return n
