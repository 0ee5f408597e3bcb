-- wrk script: many cached keys. $KEYS keys under $KEY_PREFIX, drawn as $DRAW says:
--   seq      each key in turn (START+1, START+2, ..., KEYS, 1, ...): warms the cache
--   uniform  uniformly at random
--   zipf     Zipf-distributed with exponent $ZIPF_S (default 1.1): key k has weight 1/k^s
local prefix = os.getenv("KEY_PREFIX")
local keys = tonumber(os.getenv("KEYS"))
local draw = os.getenv("DRAW") or "uniform"
local n = tonumber(os.getenv("START") or "0")
local cdf = nil

local function zipf_cdf(s)
  local t, total = {}, 0
  for k = 1, keys do
    total = total + 1 / k ^ s
    t[k] = total
  end
  for k = 1, keys do
    t[k] = t[k] / total
  end
  return t
end

local function zipf()
  local u = math.random()
  local lo, hi = 1, keys
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return lo
end

init = function(args)
  math.randomseed(tonumber(os.getenv("SEED") or "1"))
  if draw == "zipf" then
    cdf = zipf_cdf(tonumber(os.getenv("ZIPF_S") or "1.1"))
  end
end

request = function()
  local k
  if draw == "seq" then
    k = n % keys + 1
    n = n + 1
  elseif draw == "zipf" then
    k = zipf()
  else
    k = math.random(keys)
  end
  return wrk.format("GET", prefix .. k .. ".bin")
end
