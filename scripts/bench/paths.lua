-- wrk script for scripts/bench-search: GET one of the paths in the file BENCH_PATHS (one per
-- line, drawn in their file's proportions), anonymously.
dofile("scripts/bench/report.lua")
local paths = {}

function init(args)
  counts = {}
  for line in io.lines(os.getenv("BENCH_PATHS")) do table.insert(paths, line) end
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8)) or 0))
end

function request()
  return wrk.format("GET", paths[math.random(1, #paths)])
end
