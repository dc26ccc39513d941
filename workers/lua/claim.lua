-- relayq claim: a worker takes due jobs from its queue in one round trip (arq does four per job).
-- KEYS[1] the queue zset  ARGV[1] in-progress lease in ms  ARGV[2] the worker's clock in ms
-- ARGV[3] how many jobs to claim at most  ARGV[4..] candidate job ids, oldest first
-- Returns {id, score, id, score, ...} for the jobs claimed: due, and running nowhere else.
local claimed = {}
local room = tonumber(ARGV[3])
for i = 4, #ARGV do
  if #claimed >= 2 * room then break end
  local id = ARGV[i]
  local lease = 'arq:in-progress:' .. id
  if redis.call('EXISTS', lease) == 0 then
    local score = redis.call('ZSCORE', KEYS[1], id)
    if score and tonumber(score) <= tonumber(ARGV[2]) then
      redis.call('SET', lease, '1', 'PX', ARGV[1])
      claimed[#claimed + 1] = id
      claimed[#claimed + 1] = score
    end
  end
end
return claimed
