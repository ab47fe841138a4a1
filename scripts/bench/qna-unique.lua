-- wrk script for scripts/bench-gpt's uncached phase: POST /api/gpt/qna with a question never
-- asked before (every request is a cache miss and an upstream call), as the user whose access
-- token is TOKEN.
dofile("scripts/bench/report.lua")
local token = os.getenv("TOKEN")

function init(args)
  counts = {}
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8)) or 0))
  prefix = tostring(math.random(1, 1000000000))
  n = 0
end

function request()
  n = n + 1
  local body = '{"question":"Uncached question ' .. prefix .. '-' .. n .. '?"}'
  return wrk.format("POST", "/api/gpt/qna", {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end
