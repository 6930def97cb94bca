-- Moving window: one list entry (a TIME in ms) per admitted unit, newest first; the
-- exact count of the last window_ms. All limits of one identity, all or nothing.
-- ARGV: cost, consume (1 counts, 0 only looks), then amount_i, window_ms_i per key.
-- Returns {allowed, remaining_1, reset_after_ms_1, retry_after_ms_1, ...}.
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local cost = tonumber(ARGV[1])
local consume = ARGV[2] == '1'
local allowed = 1
local counts = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local amount, window = tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i + 2])
  local newest = redis.call('LINDEX', key, 0)
  if newest and tonumber(newest) + window <= now then
    redis.call('DEL', key)
  else
    -- Expired entries leave from the tail; each is removed once, so this is O(1) amortized.
    while true do
      local oldest = redis.call('LINDEX', key, -1)
      if not oldest or tonumber(oldest) + window > now then break end
      redis.call('RPOP', key)
    end
  end
  counts[i] = redis.call('LLEN', key)
  if counts[i] + cost > amount then allowed = 0 end
end
local reply = {allowed}
for i = 1, #KEYS do
  local key = KEYS[i]
  local amount, window = tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i + 2])
  local count = counts[i]
  if allowed == 1 and consume then
    local stamp = string.format('%d', now)
    local left = cost
    while left > 0 do
      local batch = {}
      for _ = 1, math.min(left, 1000) do batch[#batch + 1] = stamp end
      redis.call('LPUSH', key, unpack(batch))
      left = left - #batch
    end
    redis.call('PEXPIRE', key, window)
    count = count + cost
  end
  local reset, retry = 0, 0
  if count > 0 then reset = tonumber(redis.call('LINDEX', key, -1)) + window - now end
  if allowed == 0 and count + cost > amount then
    retry = tonumber(redis.call('LINDEX', key, amount - cost)) + window - now
  end
  reply[#reply + 1] = math.max(0, amount - count)
  reply[#reply + 1] = reset
  reply[#reply + 1] = retry
end
return reply
