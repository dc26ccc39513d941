-- relayq gateway: a tenant's submit rate (token bucket) and daily quota, in one hash.
-- KEYS[1] relayq:tenant:{t:<tenant>}:limits
-- ARGV[1] "take" or "refund"  ARGV[2] rate per second (0: none)  ARGV[3] burst
-- ARGV[4] jobs per UTC day (0: none)
-- take:   {1, "", 0, quota left or -1} when admitted (a token taken, a job counted);
--         {0, "rate" | "quota", ms until a retry can succeed, 0} when not.
-- refund: gives back the day's count of a take that created no job; returns {1, "", 0, 0}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local day = math.floor(now / 86400000)
local rate, burst, quota = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local h = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'day', 'used')
local used = 0
if tonumber(h[3]) == day then used = tonumber(h[4]) or 0 end
if ARGV[1] == 'refund' then
  if used > 0 then redis.call('HSET', KEYS[1], 'day', day, 'used', used - 1) end
  return {1, '', 0, 0}
end
local tokens = burst
if h[1] and h[2] then
  tokens = math.min(burst, tonumber(h[1]) + math.max(now - tonumber(h[2]), 0) * rate / 1000)
end
if rate > 0 and tokens < 1 then
  return {0, 'rate', math.ceil((1 - tokens) * 1000 / rate), 0}
end
if quota > 0 and used >= quota then
  return {0, 'quota', (day + 1) * 86400000 - now, 0}
end
if rate > 0 then tokens = tokens - 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now, 'day', day, 'used', used + 1)
redis.call('PEXPIRE', KEYS[1], 2 * 86400000)
if quota > 0 then return {1, '', 0, quota - used - 1} end
return {1, '', 0, -1}
