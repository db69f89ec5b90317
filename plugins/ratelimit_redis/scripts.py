"""The two Lua scripts: one atomic round trip per check, on the Redis server's clock.

Both read the time with ``TIME`` (so the nodes' clocks do not matter), change their keys
only when the check passes or to record a refusal's state, and give every key a TTL, so an
idle caller leaves nothing behind. Numbers go back as strings: Redis turns a Lua number
into an integer reply, which would drop the fraction of a wait.
"""

from __future__ import annotations

#: KEYS[1]: the bucket (a hash: ``t`` tokens, ``ts`` time of the last change).
#: ARGV[1]: tokens per minute (also the burst). Returns nil when a token was taken, else
#: the seconds until one is back.
TOKEN_BUCKET = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local capacity = tonumber(ARGV[1])
local rate = capacity / 60
local state = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(state[1]) or capacity
local last = tonumber(state[2]) or now
if now > last then
  tokens = math.min(capacity, tokens + (now - last) * rate)
end
local wait = false
if tokens < 1 then
  wait = tostring((1 - tokens) / rate)
else
  tokens = tokens - 1
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], 61000)
return wait
"""

#: KEYS[i]: a window's counter (a hash: ``s`` the window's number since the epoch, ``c``
#: the count in it). ARGV[2i-1], ARGV[2i]: its length in seconds and its limit. Counts one
#: in every window, or in none when one is full; returns nil, or {i, seconds until that
#: window starts again}.
FIXED_WINDOWS = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local slots = {}
local counts = {}
for i = 1, #KEYS do
  local seconds = tonumber(ARGV[2 * i - 1])
  local limit = tonumber(ARGV[2 * i])
  local slot = math.floor(now / seconds)
  local state = redis.call('HMGET', KEYS[i], 's', 'c')
  local count = 0
  if tonumber(state[1]) == slot then
    count = tonumber(state[2]) or 0
  end
  if count >= limit then
    return {i, tostring((slot + 1) * seconds - now)}
  end
  slots[i] = slot
  counts[i] = count
end
for i = 1, #KEYS do
  local seconds = tonumber(ARGV[2 * i - 1])
  redis.call('HSET', KEYS[i], 's', string.format('%d', slots[i]), 'c', counts[i] + 1)
  redis.call('PEXPIREAT', KEYS[i], string.format('%d', ((slots[i] + 1) * seconds + 1) * 1000))
end
return false
"""
