-- wrk script for scripts/bench-search: GET one of the paths in the file BENCH_PATHS (one per
-- line, drawn in their file's proportions), anonymously. BENCH_THINK_MS=min-max: each
-- connection waits a random time in that range before each request (a person reading the
-- results; wrk's latency does not include the wait); 0 (the default) sends back to back.
dofile("scripts/bench/report.lua")
local paths = {}
local think_min, think_max = 0, 0

function init(args)
  counts = {}
  for line in io.lines(os.getenv("BENCH_PATHS")) do table.insert(paths, line) end
  local a, b = (os.getenv("BENCH_THINK_MS") or "0"):match("^(%d+)-?(%d*)$")
  think_min = tonumber(a or "0")
  think_max = tonumber(b ~= "" and b or a or "0")
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8)) or 0))
end

function delay()
  if think_max > 0 then return math.random(think_min, think_max) end
  return 0
end

function request()
  return wrk.format("GET", paths[math.random(1, #paths)])
end
