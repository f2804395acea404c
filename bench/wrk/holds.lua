-- holds: POST /api/holds for one unit of a product drawn from FIRST..LAST, each from a new customer.
-- args: FIRST LAST
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local first, last, n = 1, 1, 0
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  first, last = tonumber(args[1]), tonumber(args[2])
  math.randomseed(thread_id * 7919 + os.time())
end

function request()
  n = n + 1
  local body = string.format('{"product_id":%d,"quantity":1,"customer_id":"w%d-%d"}',
    math.random(first, last), thread_id, n)
  return wrk.format("POST", "/api/holds", headers, body)
end
