-- wrk script for scripts/bench-gpt: POST /api/gpt/qna with one of BENCH_QUESTIONS cached
-- questions ("Benchmark question number I?"), as the user whose access token is TOKEN.
dofile("scripts/bench/report.lua")
local questions = tonumber(os.getenv("BENCH_QUESTIONS") or "100")
local token = os.getenv("TOKEN")

function init(args)
  counts = {}
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8)) or 0))
end

function request()
  local body = '{"question":"Benchmark question number ' .. math.random(1, questions) .. '?"}'
  return wrk.format("POST", "/api/gpt/qna", {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end
