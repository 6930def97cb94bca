-- Sliding-window counter (limits' rule), all limits of one identity, all or nothing.
-- KEYS[i]: limit i's state "start_ms:previous:current"; the current window began at
-- start_ms (at the first hit), and the previous window's count weighs by how much of
-- it still overlaps the last window_ms: floor(previous * (W - elapsed) / W) + current.
-- ARGV: cost, consume (1 counts, 0 only looks), then amount_i, window_ms_i per key.
-- Returns {allowed, remaining_1, reset_after_ms_1, retry_after_ms_1, ...}.
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local cost = tonumber(ARGV[1])
local consume = ARGV[2] == '1'

local function weighted(prev, cur, elapsed, window)
  return math.floor(prev * (window - elapsed) / window) + cur
end

local allowed = 1
local starts, prevs, curs = {}, {}, {}
for i = 1, #KEYS do
  local amount, window = tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i + 2])
  local start, prev, cur = now, 0, 0
  local value = redis.call('GET', KEYS[i])
  if value then
    local s, p, c = string.match(value, '^(%d+):(%d+):(%d+)$')
    s, p, c = tonumber(s), tonumber(p), tonumber(c)
    if s then
      local rolled = math.floor((now - s) / window)
      if rolled <= 0 then start, prev, cur = s, p, c
      elseif rolled == 1 then start, prev, cur = s + window, c, 0 end
    end
  end
  starts[i], prevs[i], curs[i] = start, prev, cur
  if weighted(prev, cur, math.max(0, now - start), window) + cost > amount then allowed = 0 end
end
local reply = {allowed}
for i = 1, #KEYS do
  local amount, window = tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i + 2])
  local start, prev, cur = starts[i], prevs[i], curs[i]
  local elapsed = math.max(0, now - start)
  if allowed == 1 and consume then
    cur = cur + cost
    local value = string.format('%d:%d:%d', start, prev, cur)
    redis.call('SET', KEYS[i], value, 'PX', start + 2 * window - now)
  end
  local count = weighted(prev, cur, elapsed, window)
  -- reset: until the weighted count drops by one (a millisecond after the instant).
  local reset = 0
  local carried = math.floor(prev * (window - elapsed) / window)
  if carried >= 1 then
    reset = math.max(0, math.floor(window - carried * window / prev - elapsed)) + 1
  end
  if cur >= 1 and (reset == 0 or window - elapsed + 1 < reset) then
    reset = window - elapsed + 1
  end
  local retry = 0
  if allowed == 0 and count + cost > amount then
    local spare = amount - cost - cur
    if spare >= 0 then
      retry = math.max(0, math.floor(window - elapsed - (spare + 1) * window / prev)) + 1
    else
      local after_roll = window - (amount - cost + 1) * window / cur
      retry = window - elapsed
      if after_roll >= 0 then retry = retry + math.floor(after_roll) + 1 end
    end
  end
  reply[#reply + 1] = math.max(0, amount - count)
  reply[#reply + 1] = reset
  reply[#reply + 1] = retry
end
return reply
