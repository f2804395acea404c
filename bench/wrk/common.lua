-- common: what every bench script shares. Counts answers per thread and prints one JSON summary line.
-- Load it first: `dofile(DIR .. "/common.lua")`; a script's own response() calls count(kind).
local threads = {}

counts = {}

function count(kind)
  counts[kind] = (counts[kind] or 0) + 1
end

function setup(thread)
  thread:set("thread_id", #threads + 1)
  threads[#threads + 1] = thread
end

function response(status, headers, body)
  count(tostring(status))
end

local function object(t)
  local parts = {}
  for k, v in pairs(t) do parts[#parts + 1] = string.format('"%s":%d', k, v) end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for k, v in pairs(thread:get("counts") or {}) do total[k] = (total[k] or 0) + v end
  end
  local e = summary.errors
  print(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d},"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f},"counts":%s}',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    object(total)))
end
