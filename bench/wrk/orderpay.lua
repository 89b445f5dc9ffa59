-- order + pay: ONE connection per thread (-t N -c N), so each response belongs to the
-- thread's previous request: create (201 → orderId) then pay it, then the next user.
-- wrk -s orderpay.lua URL -- TOKENS USERS PRODUCTS_CSV PROC NPROC THREADS
package.path = os.getenv("WRK_DIR") .. "/?.lua;" .. package.path
local report = require("report")
local threads, nthreads = {}, 0
function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
  threads[#threads + 1] = thread
end
local tokens, products, g, stride, paying, order, auth = {}, {}, 0, 1, false, nil, nil
created, paid = {}, {}
function init(args)
  local limit = tonumber(args[2])
  for line in io.lines(args[1]) do
    local tok = line:match("^%d+,[^,]*,(.+)$")
    if tok and #tokens < limit then tokens[#tokens + 1] = "Bearer " .. tok end
  end
  for p in args[3]:gmatch("%d+") do products[#products + 1] = p end
  local p, np, nt = tonumber(args[4]), tonumber(args[5]), tonumber(args[6])
  g = p * nt + tid
  stride = np * nt
end
function request()
  if paying then
    return wrk.format("POST", "/api/v1/orders/" .. order .. "/payment", { ["Authorization"] = auth })
  end
  auth = tokens[(g % #tokens) + 1]
  local product = products[(g % #products) + 1]
  g = g + stride
  return wrk.format("POST", "/api/v1/orders",
    { ["Authorization"] = auth, ["Content-Type"] = "application/json" },
    '{"items":[{"productId":' .. product .. ',"quantity":1}]}')
end
function response(status, headers, body)
  if paying then
    paid[status] = (paid[status] or 0) + 1
    paying = false
    return
  end
  created[status] = (created[status] or 0) + 1
  if status == 201 then
    order = body:match('"orderId"%s*:%s*"([^"]+)"')
    paying = order ~= nil
  end
end
function done(summary, latency, requests)
  local agg = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("created")) do agg["order_" .. k] = (agg["order_" .. k] or 0) + v end
    for k, v in pairs(t:get("paid")) do agg["pay_" .. k] = (agg["pay_" .. k] or 0) + v end
  end
  report.json(summary, latency, agg)
end
