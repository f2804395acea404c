-- snapshot: read a product's counters, exact as of Redis server time.
-- Overdue holds and orders are reaped first (in batches), so expired units already count as available;
-- old tombstones are pruned in one bounded batch, as reserve and reap do.
-- KEYS: the product's sixteen keys (see _prelude.lua).
-- outbox: hold_expired, order_cancelled, product_stock
-- ARGV[1] reap batch size
-- returns {'ok', total, available, held, pending, sold, price, limit, starts, ends, now, outbox length,
--          waiting room (0/1), its rate cap, its admission ttl ms}
--       | {'product_not_found'}
local batch = tonumber(ARGV[1])

if not product_exists() then return { 'product_not_found' } end
local now = now_ms()
while select(4, reap_due(now, batch)) do end
prune_tombs(now, batch)
local c = counters()
local q = redis.call('HMGET', K_QUEUE, 'on', 'rate', 'ttl')
return { 'ok', c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], now, redis.call('XLEN', K_OUTBOX),
         q[1] or 0, q[2] or 0, q[3] or 0 }
