-- shared: print one JSON line with the run's figures (and status counts if collected)
local report = {}
function report.json(summary, latency, statuses)
  local e = summary.errors
  local parts = {}
  for k, v in pairs(statuses or {}) do parts[#parts + 1] = string.format('"%s":%d', k, v) end
  io.write(string.format(
    'WRK {"requests":%d,"durationUs":%d,"connectErrors":%d,"readErrors":%d,"writeErrors":%d,' ..
    '"non2xx3xx":%d,"timeouts":%d,"p50Us":%d,"p90Us":%d,"p99Us":%d,"maxUs":%d,"statuses":{%s}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    table.concat(parts, ",")))
end
return report
