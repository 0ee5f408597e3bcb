-- edgesign's fleet rate limit: GCRA (the generic cell rate algorithm) on the Redis server's
-- clock, so that replicas with skewed clocks share one budget per principal.
--
-- KEYS[1]  the principal's theoretical arrival time (TAT), in microseconds
-- ARGV[1]  emission interval: microseconds per token (1 / per_second)
-- ARGV[2]  burst: tokens the bucket holds
-- ARGV[3]  tokens wanted (a lease; the script grants what is there, up to that)
--
-- Returns {granted, retry_us}: {n >= 1, 0} when n tokens were taken, or {0, microseconds
-- until one token is free}.
-- Redis before 5 replicates scripts verbatim and refuses a write after TIME unless told to
-- replicate the effects instead (later versions always do; the call is then a no-op).
if redis.replicate_commands then
  redis.replicate_commands()
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then
  tat = now
end
local room = math.floor((now + burst * interval - tat) / interval)
if room < 1 then
  return {0, tat + interval - burst * interval - now}
end
local granted = math.min(want, room)
tat = tat + granted * interval
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', string.format('%.0f', math.ceil((tat - now) / 1000) + 1000))
return {granted, 0}
