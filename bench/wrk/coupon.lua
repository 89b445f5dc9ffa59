-- coupon issue: every request a distinct user×campaign pair (until U×K requests)
-- wrk -s coupon.lua URL -- TOKENS CAMPAIGNS_CSV PROC NPROC THREADS [spread]
-- By default request k goes to user k mod U and campaign k div U: every user of campaign 1
-- before campaign 2. With "spread" (scripts/bench-cluster.sh) it goes to campaign k mod K and
-- user k div K, so consecutive requests touch every campaign's bucket.
package.path = os.getenv("WRK_DIR") .. "/?.lua;" .. package.path
local report = require("report")
local threads, nthreads = {}, 0
function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
  threads[#threads + 1] = thread
end
local tokens, campaigns, g, stride, spread = {}, {}, 0, 1, false
statuses = {}
function init(args)
  for line in io.lines(args[1]) do
    local tok = line:match("^%d+,[^,]*,(.+)$")
    if tok then tokens[#tokens + 1] = "Bearer " .. tok end
  end
  for c in args[2]:gmatch("%d+") do campaigns[#campaigns + 1] = c end
  local p, np, nt = tonumber(args[3]), tonumber(args[4]), tonumber(args[5])
  g = p * nt + tid
  stride = np * nt
  spread = args[6] == "spread"
end
function request()
  local u, c
  if spread then
    c = campaigns[(g % #campaigns) + 1]
    u = math.floor(g / #campaigns) % #tokens
  else
    u = g % #tokens
    c = campaigns[(math.floor(g / #tokens) % #campaigns) + 1]
  end
  g = g + stride
  return wrk.format("POST", "/api/v1/coupons/" .. c .. "/issue", { ["Authorization"] = tokens[u + 1] })
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local agg = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do agg["issue_" .. k] = (agg["issue_" .. k] or 0) + v end
  end
  report.json(summary, latency, agg)
end
