-- Posts valid ballots, each with its own device cookie and CSRF token (minted beforehand by
-- bench/run.py with the app's own signing helper), once each; counts the 303 answers.
local tokens = {}
local i = 0
n303 = 0  -- globals: done() reads them per thread with thread:get
other = 0
sent = 0

function init(args)
  for line in io.lines(args[1]) do
    local cookie, token, choices = line:match("^(%S+)\t(%S+)\t(.+)$")
    tokens[#tokens + 1] = {cookie, token, choices}
  end
end

function request()
  i = i + 1
  sent = sent + 1
  local t = tokens[((i - 1) % #tokens) + 1]
  local body = "csrf_token=" .. t[2] .. "&" .. t[3]
  return wrk.format("POST", wrk.path, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Cookie"] = "bv_device=" .. t[1],
  }, body)
end

function response(status, headers, body)
  if status == 303 then n303 = n303 + 1 else other = other + 1 end
end

local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
end

function done(summary, latency, requests)
  local a, b, c = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("n303")
    b = b + t:get("other")
    c = c + t:get("sent")
  end
  io.write(string.format("BALLOTS_303 %d\nBALLOTS_OTHER %d\nBALLOTS_SENT %d\n", a, b, c))
end
