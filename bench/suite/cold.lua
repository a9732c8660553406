-- wrk script: sends each token of a file once, split between wrk's threads, and stops a
-- thread when its share runs out. Arguments: TOKEN_FILE THREAD_COUNT.

local thread_counter = 0

function setup(thread)
  thread:set("thread_index", thread_counter)
  thread_counter = thread_counter + 1
end

local tokens = {}
local headers = {}
local next_index = 0
local exhausted = false

function init(args)
  local file, threads = args[1], tonumber(args[2])
  local line_number = 0
  for line in io.lines(file) do
    if line ~= "" then
      if line_number % threads == thread_index then
        tokens[#tokens + 1] = line
      end
      line_number = line_number + 1
    end
  end
  for name, value in pairs(wrk.headers) do
    headers[name] = value
  end
end

function request()
  next_index = next_index + 1
  if next_index >= #tokens then
    exhausted = true
    next_index = #tokens
  end
  headers["Authorization"] = "Bearer " .. tokens[next_index]
  return wrk.format(nil, nil, headers)
end

function response(status, response_headers, body)
  if exhausted then
    wrk.thread:stop()
  end
end
