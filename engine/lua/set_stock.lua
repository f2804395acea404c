-- set_stock: create a product, or change its total stock and sale settings.
-- The total may never fall below the units already held, pending or sold.
-- KEYS: the product's eleven keys (see _prelude.lua).
-- outbox: hold_expired, order_cancelled
-- ARGV[1] total   ARGV[2] price cents   ARGV[3] max per customer (0 = none)
-- ARGV[4] sale starts ms (0 = none)   ARGV[5] sale ends ms (0 = none)   ARGV[6] reap batch size
-- returns {'ok', created (0/1), total, available, held, pending, sold}
--       | {'stock_below_committed', committed}
local total = tonumber(ARGV[1])
local batch = tonumber(ARGV[6])

local created = 0
if not product_exists() then
  created = 1
  redis.call('HSET', K_PRODUCT, 'total', 0, 'available', 0, 'held', 0, 'pending', 0, 'sold', 0)
else
  local now = now_ms()
  while select(4, reap_due(now, batch)) do end
end

local committed = counter('held') + counter('pending') + counter('sold')
if total < committed then return { 'stock_below_committed', committed } end
redis.call('HSET', K_PRODUCT, 'total', total, 'available', total - committed,
  'price', ARGV[2], 'limit', ARGV[3], 'starts', ARGV[4], 'ends', ARGV[5])
local c = counters()
return { 'ok', created, c[1], c[2], c[3], c[4], c[5] }
