-- wrk script: send the requests listed in BENCH_REQUESTS, one per line, in order, and stop after
-- BENCH_COUNT responses. Line format (tab-separated): METHOD, PATH, IDEMPOTENCY_KEY or "-", BODY.
-- The file holds more lines than BENCH_COUNT so that every connection still has a fresh request
-- in flight at the end: the measured window keeps its full concurrency to the last response.
-- BENCH_AUTH, if set, is sent as the Authorization header. "BENCHDONE" is printed when the count
-- is reached (bench/loadgen.py then interrupts wrk, which reports at once), and the results as
-- one JSON line prefixed with BENCHJSON.

local requests_file = os.getenv("BENCH_REQUESTS")
local count = tonumber(os.getenv("BENCH_COUNT"))
local auth = os.getenv("BENCH_AUTH")

local requests = {}
local next_index = 0
local responses = 0
statuses = {}

function init(args)
  for line in io.lines(requests_file) do
    local method, path, key, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    local headers = { ["Content-Type"] = "application/json" }
    if auth and auth ~= "" then headers["Authorization"] = auth end
    if key ~= "-" then headers["Idempotency-Key"] = key end
    requests[#requests + 1] = wrk.format(method, path, headers, body)
  end
end

function request()
  next_index = next_index + 1
  if next_index > #requests then
    -- Out of fresh requests (only if the file had too few spare lines): repeat the last one.
    next_index = #requests
  end
  return requests[next_index]
end

function response(status, headers, body)
  responses = responses + 1
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if responses == count then
    -- wrk itself would sleep out its whole -d duration: tell the caller, who sends SIGINT.
    io.stdout:write("BENCHDONE\n")
    io.stdout:flush()
    wrk.thread:stop()
  end
end

local threads_seen = {}

function setup(thread)
  threads_seen[#threads_seen + 1] = thread
end

-- done() runs in the main Lua state: the per-thread status counts are read back from each thread.
function done(summary, latency, requests_stats)
  local merged = {}
  for _, thread in ipairs(threads_seen) do
    for status, n in pairs(thread:get("statuses") or {}) do
      merged[status] = (merged[status] or 0) + n
    end
  end
  local items = {}
  for status, n in pairs(merged) do
    items[#items + 1] = string.format('"%s": %d', status, n)
  end
  io.write("BENCHJSON " .. string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
      .. '"max_us": %d, "mean_us": %.1f, "errors": {"connect": %d, "read": %d, "write": %d, '
      .. '"status": %d, "timeout": %d}, "statuses": {%s}}',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    table.concat(items, ", ")) .. "\n")
end
