-- wrk script for scripts/bench-auth: POST /api/auth/login for random users
-- bench-1@example.com … bench-N@example.com (N = BENCH_USERS), counting status codes.
local users = tonumber(os.getenv("BENCH_USERS") or "1000")
local password = os.getenv("BENCH_PASSWORD") or "bench-password-0001"
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  counts = {}
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8)) or 0))
end

function request()
  local i = math.random(1, users)
  local body = '{"email":"bench-' .. i .. '@example.com","password":"' .. password .. '"}'
  return wrk.format("POST", "/api/auth/login", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("counts")) do total[status] = (total[status] or 0) + n end
  end
  local parts = {}
  for status, n in pairs(total) do table.insert(parts, status .. "=" .. n) end
  table.sort(parts)
  io.write(string.format("STATUS %s\n", table.concat(parts, " ")))
  io.write(string.format("LATENCY p50_ms=%.1f p99_ms=%.1f max_ms=%.1f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
  io.write(string.format("RATE requests=%d seconds=%.1f per_s=%.1f socket_errors=%d\n", summary.requests,
    summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
