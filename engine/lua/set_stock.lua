-- set_stock: create a product, or change its total stock and sale settings.
-- The total may never fall below the units already held, pending or sold.
-- KEYS: the product's sixteen keys (see _prelude.lua).
-- outbox: hold_expired, order_cancelled, product_stock
-- ARGV[1] total   ARGV[2] price cents   ARGV[3] max per customer (0 = none)
-- ARGV[4] sale starts ms (0 = none)   ARGV[5] sale ends ms (0 = none)   ARGV[6] reap batch size
-- ARGV[7] waiting room (1 on, 0 off)   ARGV[8] admissions a second at most (0 = no cap)
-- ARGV[9] admission ttl ms   ARGV[10] a new secret seed (hex), taken only when the room opens
-- ARGV[11] the seed's SHA-256 (hex)   ARGV[12] ms without a poll after which a waiting ticket is dropped.
-- Opening the room starts it empty; closing it drops its tickets.
-- ARGV[13] low-stock threshold (0 = none): below it, the merchant hears product_stock low_stock
-- returns {'ok', created (0/1), total, available, held, pending, sold}
--       | {'stock_below_committed', committed}
local total = tonumber(ARGV[1])
local batch = tonumber(ARGV[6])

local low = tonumber(ARGV[13] or '0')

local created = 0
local now = now_ms()
if not product_exists() then
  created = 1
  redis.call('HSET', K_PRODUCT, 'total', 0, 'available', 0, 'held', 0, 'pending', 0, 'sold', 0)
else
  while select(4, reap_due(now, batch)) do end
end

local committed = counter('held') + counter('pending') + counter('sold')
if total < committed then return { 'stock_below_committed', committed } end
local before = counter('available')
redis.call('HSET', K_PRODUCT, 'total', total, 'price', ARGV[2], 'limit', ARGV[3], 'starts', ARGV[4],
  'ends', ARGV[5], 'low', low)
-- A new product put on sale is no transition; a restock or a cut is.
if created == 1 then
  redis.call('HSET', K_PRODUCT, 'available', total - committed)
else
  add_available(total - committed - before, now)
end
put_room(7, now)
local c = counters()
return { 'ok', created, c[1], c[2], c[3], c[4], c[5] }
