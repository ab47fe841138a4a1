-- Shared by the wrk scripts of scripts/bench-*: counts status codes per thread and prints
-- machine-readable summary lines (STATUS, LATENCY, RATE) that the bench scripts parse.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
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
  local seconds = summary.duration / 1e6
  io.write(string.format("STATUS %s\n", table.concat(parts, " ")))
  io.write(string.format("LATENCY p50_ms=%.2f p95_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
  io.write(string.format("RATE requests=%d seconds=%.1f per_s=%.1f socket_errors=%d bytes_per_response=%.0f\n", summary.requests, seconds,
    summary.requests / seconds,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.bytes / math.max(summary.requests, 1)))
end
