-- holds_jwt: holds with buyer tokens (FLASHSALE_BUYER_AUTH=jwt). POST /api/holds for one unit of a product drawn
-- from FIRST..LAST, as one of the buyers whose tokens follow: as many tokens as connections, each thread sending
-- its share of them in turn. The token names the buyer, so the body has no customer_id.
-- args: FIRST LAST TOKEN...
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local first, last, n = 1, 1, 0
local headers = {}

function init(args)
  first, last = tonumber(args[1]), tonumber(args[2])
  -- The last argument is the run's nonce (bench/load.py), not a token.
  for i = 3, #args - 1 do
    headers[#headers + 1] = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. args[i] }
  end
  math.randomseed(thread_id * 7919 + os.time())
end

function request()
  n = n + 1
  local body = string.format('{"product_id":%d,"quantity":1}', math.random(first, last))
  return wrk.format("POST", "/api/holds", headers[(n + thread_id) % #headers + 1], body)
end
