-- static GET with an optional bearer token: wrk -s get.lua URL -- [token]
package.path = os.getenv("WRK_DIR") .. "/?.lua;" .. package.path
local report = require("report")
function init(args)
  if args[1] and args[1] ~= "" then wrk.headers["Authorization"] = "Bearer " .. args[1] end
end
function done(summary, latency, requests) report.json(summary, latency, nil) end
