-- common.lua: what every leaklab wrk script shares.
--   common.use(list)  cycle through a list of {method, path, body} built once
--   response/done     count statuses per thread, print them with latency
--                     percentiles when the run ends
-- A script sets `requests` through common.use() in init() and returns.
local common = {}

local threads = {}
local reqs, n, i = nil, 0, 0

function setup(thread)
  table.insert(threads, thread)
end

-- Build the raw requests once; `list` entries are {method, path, body,
-- weight}. Weights repeat an entry so the cycle is the weighted mix.
function common.use(list)
  reqs, n, i = {}, 0, 0
  for _, r in ipairs(list) do
    local headers = nil
    if r[3] then headers = {["Content-Type"] = "application/json"} end
    local raw = wrk.format(r[1], r[2], headers, r[3])
    for _ = 1, (r[4] or 1) do
      n = n + 1
      reqs[n] = raw
    end
  end
  -- Shuffle deterministically so the mix interleaves.
  local seed = 12345
  for k = n, 2, -1 do
    seed = (seed * 1103515245 + 12345) % 2147483648
    local j = seed % k + 1
    reqs[k], reqs[j] = reqs[j], reqs[k]
  end
  counts = {}
end

function request()
  i = i % n + 1
  return reqs[i]
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local c = t:get("counts") or {}
    for status, k in pairs(c) do
      total[status] = (total[status] or 0) + k
    end
  end
  local keys = {}
  for status in pairs(total) do table.insert(keys, status) end
  table.sort(keys)
  local parts = {}
  for _, status in ipairs(keys) do
    table.insert(parts, string.format("%d=%d", status, total[status]))
  end
  local e = summary.errors
  io.write(string.format("status %s\n", table.concat(parts, " ")))
  io.write(string.format(
    "latency_ms p50=%.3f p90=%.3f p99=%.3f max=%.3f\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
  io.write(string.format(
    "socket_errors connect=%d read=%d write=%d timeout=%d non2xx_status=%d\n",
    e.connect, e.read, e.write, e.timeout, e.status))
end

return common
