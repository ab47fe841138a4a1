-- wrk script for scripts/bench-auth: POST /api/auth/login for random users
-- bench-1@example.com … bench-N@example.com (N = BENCH_USERS). Run from the checkout's root.
dofile("scripts/bench/report.lua")
local users = tonumber(os.getenv("BENCH_USERS") or "1000")
local password = os.getenv("BENCH_PASSWORD") or "bench-password-0001"

function init(args)
  counts = {}
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8)) or 0))
end

function request()
  local i = math.random(1, users)
  local body = '{"email":"bench-' .. i .. '@example.com","password":"' .. password .. '"}'
  return wrk.format("POST", "/api/auth/login", {["Content-Type"] = "application/json"}, body)
end
