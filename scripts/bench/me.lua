-- wrk script for scripts/bench-auth: GET /api/users/me with one user's access token (TOKEN).
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} end
function request()
  return wrk.format("GET", "/api/users/me", {["Authorization"] = "Bearer " .. os.getenv("TOKEN")})
end
function response(status, headers, body) counts[status] = (counts[status] or 0) + 1 end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("counts")) do total[status] = (total[status] or 0) + n end
  end
  local parts = {}
  for status, n in pairs(total) do table.insert(parts, status .. "=" .. n) end
  table.sort(parts)
  io.write(string.format("STATUS %s\n", table.concat(parts, " ")))
  io.write(string.format("LATENCY p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
  io.write(string.format("RATE requests=%d per_s=%.1f\n", summary.requests, summary.requests / (summary.duration / 1e6)))
end
