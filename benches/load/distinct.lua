-- wrk script: every request asks for a key never asked before (prefix from $KEY_PREFIX).
local prefix = os.getenv("KEY_PREFIX")
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", prefix .. n .. ".bin")
end
