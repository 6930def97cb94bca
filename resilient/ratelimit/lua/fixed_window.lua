-- Fixed window, all limits of one identity in one call, all or nothing.
-- KEYS[i]: the counter of limit i, value "start_ms:count", expiring with its window.
-- ARGV: cost, consume (1 counts, 0 only looks), then amount_i, window_ms_i per key.
-- Returns {allowed, remaining_1, reset_after_ms_1, retry_after_ms_1, ...}.
-- Time is the server's (TIME), so clients' clocks never matter.
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local cost = tonumber(ARGV[1])
local consume = ARGV[2] == '1'
local allowed = 1
local starts, counts = {}, {}
for i = 1, #KEYS do
  local amount, window = tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i + 2])
  local start, count = now, 0
  local value = redis.call('GET', KEYS[i])
  if value then
    local s, c = string.match(value, '^(%d+):(%d+)$')
    s, c = tonumber(s), tonumber(c)
    if s and now < s + window then start, count = s, c end
  end
  starts[i], counts[i] = start, count
  if count + cost > amount then allowed = 0 end
end
local reply = {allowed}
for i = 1, #KEYS do
  local amount, window = tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i + 2])
  local start, count = starts[i], counts[i]
  if allowed == 1 and consume then
    count = count + cost
    redis.call('SET', KEYS[i], string.format('%d:%d', start, count), 'PX', start + window - now)
  end
  local reset, retry = 0, 0
  if count > 0 then reset = start + window - now end
  if allowed == 0 and count + cost > amount then retry = start + window - now end
  reply[#reply + 1] = math.max(0, amount - count)
  reply[#reply + 1] = reset
  reply[#reply + 1] = retry
end
return reply
