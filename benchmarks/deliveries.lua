-- wrk script: send pre-built HTTP requests from files, each one once.
--
--   wrk -t2 -c32 -d30s -s benchmarks/deliveries.lua http://127.0.0.1:PORT -- PREFIX [cycle]
--
-- Thread i (from 0) reads PREFIX.i, written by benchmarks/sustained.py: records of
-- "<length>\n<raw request bytes>". Each request is sent once (unique, pre-signed webhook
-- deliveries must not turn into duplicates, which cost the server less); with "cycle" the
-- thread starts over when it runs out (the trivial endpoint). A thread that runs out without
-- "cycle" stops and reports it. done() prints one JSON line for the benchmark to parse.

local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

function init(args)
   local prefix, cycle = args[1], args[2] == "cycle"
   local file = assert(io.open(prefix .. "." .. id, "rb"))
   local data = file:read("*a")
   file:close()
   requests, statuses, exhausted, sent = {}, {}, 0, 0
   local pos = 1
   while pos <= #data do
      local newline = data:find("\n", pos, true)
      local length = tonumber(data:sub(pos, newline - 1))
      requests[#requests + 1] = data:sub(newline + 1, newline + length)
      pos = newline + 1 + length
   end
   repeat_requests = cycle
end

function request()
   sent = sent + 1
   if sent > #requests then
      if repeat_requests then
         sent = 1
      else
         exhausted = 1
         wrk.thread:stop()
         sent = #requests
      end
   end
   return requests[sent]
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local merged, ran_out = {}, 0
   for _, thread in ipairs(threads) do
      for status, count in pairs(thread:get("statuses")) do
         merged[status] = (merged[status] or 0) + count
      end
      ran_out = ran_out + thread:get("exhausted")
   end
   local parts = {}
   for status, count in pairs(merged) do
      parts[#parts + 1] = string.format('"%d": %d', status, count)
   end
   local errors = summary.errors
   io.write(string.format(
      'WRK_RESULT {"duration_us": %d, "requests": %d, "statuses": {%s}, "p50_us": %d,'
         .. ' "p99_us": %d, "max_us": %d, "connect_errors": %d, "read_errors": %d,'
         .. ' "write_errors": %d, "timeouts": %d, "exhausted_threads": %d}\n',
      summary.duration, summary.requests, table.concat(parts, ", "),
      latency:percentile(50), latency:percentile(99), latency.max,
      errors.connect, errors.read, errors.write, errors.timeout, ran_out))
end
