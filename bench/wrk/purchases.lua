-- purchases: hold -> order -> signed payment webhook, over and over, on product PRODUCT.
-- A connection asks for whatever is furthest along: a payment for an order, else an order for a hold,
-- else a new hold; answers feed the queues. `paid` counts purchases completed.
-- args: PRODUCT WEBHOOK_SECRET NONCE (a fresh one per run, from bench/load.py: a transaction id pays one order
-- in the whole sale, so each run's ids must be its own)
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local hmac = dofile(os.getenv("BENCH_WRK_DIR") .. "/hmac.lua")
local product, secret, nonce, n = 0, "", "", 0
local holds, orders = {}, {}
local json = { ["Content-Type"] = "application/json" }

function init(args)
  product, secret, nonce = tonumber(args[1]), args[2], args[3] or ""
end

function request()
  n = n + 1
  if #orders > 0 then
    local body = string.format('{"order_id":"%s","transaction_id":"t%s-%d-%d","status":"success"}',
      table.remove(orders), nonce, thread_id, n)
    local ts = tostring(os.time())
    local headers = {
      ["Content-Type"] = "application/json",
      ["X-Flashsale-Timestamp"] = ts,
      ["X-Flashsale-Signature"] = "v1=" .. hmac.hmac_sha256(secret, ts .. "." .. body),
    }
    return wrk.format("POST", "/api/payments/webhook", headers, body)
  end
  if #holds > 0 then
    return wrk.format("POST", "/api/orders", json, string.format('{"hold_id":"%s"}', table.remove(holds)))
  end
  local body = string.format('{"product_id":%d,"quantity":1,"customer_id":"p%d-%d"}', product, thread_id, n)
  return wrk.format("POST", "/api/holds", json, body)
end

function response(status, headers, body)
  if status == 201 then
    local hold = string.match(body, '^{"hold_id":"(h[%d]+_[%w]+)"')
    if hold then
      holds[#holds + 1] = hold
      count("hold")
      return
    end
    local order = string.match(body, '^{"order_id":"(o[%d]+_[%w]+)"')
    if order then
      orders[#orders + 1] = order
      count("order")
      return
    end
  elseif status == 200 and string.find(body, '"status":"paid"', 1, true) then
    count("paid")
    return
  end
  count(tostring(status))
end
