-- wrk script for scripts/bench-auth: GET /api/users/me with one user's access token (TOKEN).
-- Run from the checkout's root.
dofile("scripts/bench/report.lua")
local token = os.getenv("TOKEN")

function init(args)
  counts = {}
end

function request()
  return wrk.format("GET", "/api/users/me", {["Authorization"] = "Bearer " .. token})
end
