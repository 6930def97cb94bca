"""The one Lua script behind shared breaker state. Strictly private.

Every event is one ``EVALSHA``: it reads the breaker's hash, checks the caller's
generation, counts, judges the threshold, moves the state, takes or frees probe leases
and ``PUBLISH``\\ es what changed, atomically, on the server's clock (``TIME``) so that
hosts with skewed clocks agree on when an open circuit admits probes.

Keys (one hash tag, so Redis Cluster keeps them on one node):
``KEYS[1]`` hash ``st`` (0 closed, 1 open, 2 half-open), ``gen``, ``until`` (ms),
``fails``, ``ok``; ``KEYS[2]`` sorted set of probe leases scored by their expiry (ms).

ARGV: op, caller generation, now in ms ('' = server TIME), channel, name, key TTL (ms),
fail_max (0: the caller judges rates itself), reset timeout (ms), success threshold,
permitted probes, probe lease (ms), lease id.

Returns ``{state, generation, remaining ms, failures, successes, granted, now ms}``;
publishes ``name\nstate generation until-ms failures successes now-ms`` on transitions.
"""

from __future__ import annotations

from resilient.backends.base import LuaScript

EVENT = LuaScript(
    r"""
local sk, pk = KEYS[1], KEYS[2]
local op, mygen = ARGV[1], tonumber(ARGV[2])
local now
if ARGV[3] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[3])
end
local ttl, fail_max, reset_ms = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local threshold, permitted, probe_ms = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local lease = ARGV[12]

local h = redis.call('HMGET', sk, 'st', 'gen', 'until', 'fails', 'ok')
-- A missing hash (first use, expiry, a flushed or restarted server) is a closed circuit
-- in the caller's generation, so a process's next report is neither lost nor stale.
local st, gen, untl, fails, ok = 0, mygen, 0, 0, 0
if h[2] then
  st, gen, untl = tonumber(h[1]), tonumber(h[2]), tonumber(h[3])
  fails, ok = tonumber(h[4]), tonumber(h[5])
end
local dirty, moved, granted, remaining = false, false, 0, 0

local function enter(state)
  st, gen, fails, ok = state, gen + 1, 0, 0
  if state == 1 then untl = now + reset_ms else untl = 0 end
  redis.call('DEL', pk)
  dirty, moved = true, true
end

if op == 'fail' then
  if gen == mygen then
    if st == 0 and fail_max > 0 then
      fails = fails + 1
      dirty = true
      -- Tell the others the count left zero, so that their next success clears it.
      if fails >= fail_max then enter(1) elseif fails == 1 then moved = true end
    elseif st == 2 then
      enter(1)
    end
    granted = 1
  end
elseif op == 'trip' then
  if gen == mygen and st == 0 then enter(1); granted = 1 end
elseif op == 'ok' then
  if gen == mygen then
    if st == 0 and fails > 0 then
      fails, dirty, moved = 0, true, true
    elseif st == 2 then
      redis.call('ZREM', pk, lease)
      ok, dirty = ok + 1, true
      if ok >= threshold then enter(0) end
    end
    granted = 1
  end
elseif op == 'acquire' then
  if st == 1 and now >= untl then enter(2) end
  if st == 2 then
    redis.call('ZREMRANGEBYSCORE', pk, '-inf', now)
    if redis.call('ZCARD', pk) < permitted then
      redis.call('ZADD', pk, now + probe_ms, lease)
      redis.call('PEXPIRE', pk, probe_ms)
      granted = 1
    else
      local first = redis.call('ZRANGE', pk, 0, 0, 'WITHSCORES')
      remaining = math.min(tonumber(first[2]) - now, reset_ms)
    end
  end
elseif op == 'release' then
  if gen == mygen and st == 2 then redis.call('ZREM', pk, lease); granted = 1 end
elseif op == 'open' then
  enter(1); granted = 1
elseif op == 'close' then
  enter(0); granted = 1
elseif op == 'half' then
  enter(2); granted = 1
end
if st == 1 then remaining = math.max(untl - now, 0) end
if dirty then
  redis.call('HSET', sk, 'st', st, 'gen', gen, 'until', untl, 'fails', fails, 'ok', ok)
  redis.call('PEXPIRE', sk, ttl)
end
if moved then
  -- Absolute times: a receiver maps them onto its own clock, so a message that arrives
  -- late does not stretch the open period by its delay.
  local body = st .. ' ' .. gen .. ' ' .. untl .. ' ' .. fails .. ' ' .. ok .. ' ' .. now
  redis.call('PUBLISH', ARGV[4], ARGV[5] .. '\n' .. body)
end
return {st, gen, remaining, fails, ok, granted, now}
"""
)
