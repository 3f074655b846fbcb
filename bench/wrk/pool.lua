-- Replays a pool file (complete HTTP requests separated by NUL bytes) in order, one request per call
-- to request(). Options are set by bench/run.py, which prepends them as globals:
--   POOL (path), RATE (requests/s of this wrk, 0 = as fast as possible), TRACK (count statuses), THREADS,
--   SHARD and SHARDS (several wrk instances, one per app: this one sends the requests whose index modulo
--   SHARDS is SHARD; in a phased pool of an even number of calls every call's requests go to one shard).
-- At a fixed RATE each request claims the next slot of a schedule (delay() is asked before every
-- request, per connection): the offered load is RATE as long as enough connections are idle.
-- done() prints one line "BENCH-RESULT {json}" for bench/run.py.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local clock = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

local threads = {}
local created = 0

function setup(thread)
  thread:set("thread_index", created)
  created = created + 1
  table.insert(threads, thread)
end

function init(_args)
  local file = assert(io.open(POOL, "rb"))
  local data = file:read("*a")
  file:close()
  requests, count, position, index = {}, 0, 1, 0
  while true do
    local stop = string.find(data, "\0", position, true)
    if not stop then break end
    if index % (THREADS * SHARDS) == thread_index * SHARDS + SHARD then
      count = count + 1
      requests[count] = string.sub(data, position, stop - 1)
    end
    index = index + 1
    position = stop + 1
  end
  cursor, wrapped, statuses = 0, 0, {}
  interval = RATE > 0 and (1000.0 * THREADS / RATE) or 0
  next_slot = nil
end

function request()
  cursor = cursor + 1
  if cursor > count then
    cursor, wrapped = 1, 1
  end
  return requests[cursor]
end

if RATE > 0 then
  function delay()
    local now = now_ms()
    if next_slot == nil or next_slot < now - 1000 then next_slot = now end -- never bank more than 1 s
    local slot = next_slot
    next_slot = next_slot + interval
    local wait = slot - now
    if wait < 1 then return 0 end
    return math.floor(wait)
  end
end

if TRACK then
  function response(status, _headers, _body)
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, _requests)
  local merged, any_wrapped = {}, 0
  for _, thread in ipairs(threads) do
    if thread:get("wrapped") == 1 then any_wrapped = 1 end
    local seen = thread:get("statuses") or {}
    for status, n in pairs(seen) do merged[status] = (merged[status] or 0) + n end
  end
  local parts = {}
  for status, n in pairs(merged) do table.insert(parts, string.format('"%d":%d', status, n)) end
  local errors = summary.errors
  io.write(string.format(
    'BENCH-RESULT {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f,"wrapped":%d,"statuses":{%s}}\n',
    summary.requests, summary.duration, errors.connect, errors.read, errors.write, errors.status,
    errors.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean, any_wrapped, table.concat(parts, ",")))
end
