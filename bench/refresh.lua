-- wrk script for bench/auth-load.sh: POST /auth/v1/token?grant_type=refresh_token with correct
-- rotation. Every refresh token is single-use, so each wrk thread keeps a pool of current tokens
-- (one per connection): request() takes one out, response() puts back the new one from the body.
-- A token is never sent twice. Non-200 answers are counted and printed by done().
--
--   wrk -t2 -cN ... -s bench/refresh.lua URL -- TOKENS_FILE THREADS
--
-- TOKENS_FILE has one refresh token per line, at least one per connection plus one per thread
-- (wrk calls request() once in the first thread to check the script and never sends that
-- request); thread i of THREADS takes lines i+1, i+1+THREADS, ...

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local file, nthreads = args[1], tonumber(args[2])
  pool = {}
  errors, statuses, empty = 0, "", 0
  counts = {}
  local i = 0
  for line in io.lines(file) do
    if line ~= "" then
      if i % nthreads == id then
        table.insert(pool, line)
      end
      i = i + 1
    end
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local token = table.remove(pool)
  if token == nil then
    -- Every token of this thread was lost to an error: send one that cannot be valid, so the
    -- failure shows in the count instead of stalling the connection.
    empty = empty + 1
    token = "exhausted"
  end
  return wrk.format(nil, nil, nil, '{"refresh_token":"' .. token .. '"}')
end

function response(status, headers, body)
  if status == 200 then
    local token = string.match(body, '"refresh_token":"([^"]+)"')
    if token then
      table.insert(pool, token)
      return
    end
  end
  errors = errors + 1
  counts[status] = (counts[status] or 0) + 1
  -- Keep the first few distinct statuses and bodies for the report.
  if #statuses < 600 and counts[status] == 1 then
    statuses = statuses .. string.format("  %d %s\n", status, string.sub(body or "", 1, 200))
  end
end

function done(summary, latency, requests)
  local total_errors, total_empty = 0, 0
  for _, t in ipairs(threads) do
    total_errors = total_errors + t:get("errors")
    total_empty = total_empty + t:get("empty")
  end
  io.write(string.format("refreshes answered: %d, non-200 or without a token: %d (%.3f%%)\n",
    summary.requests, total_errors, 100 * total_errors / math.max(summary.requests, 1)))
  if total_empty > 0 then
    io.write(string.format("requests sent after a thread ran out of tokens: %d\n", total_empty))
  end
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    if s ~= "" then io.write("first failures:\n" .. s) end
  end
  io.write(string.format("refresh latency: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
