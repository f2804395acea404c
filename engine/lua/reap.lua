-- reap: expire overdue holds and unpaid orders of one product, and forget old tombstones.
-- KEYS: the product's sixteen keys (see _prelude.lua).
-- outbox: hold_expired, order_cancelled, product_stock
-- ARGV[1] batch size (per kind)
-- returns {holds expired, orders expired, units returned, tombstones pruned, overdue left}
local batch = tonumber(ARGV[1])

if not product_exists() then return { 0, 0, 0, 0, 0 } end
local now = now_ms()
local holds, orders, units = reap_due(now, batch)
local pruned = prune_tombs(now, batch)
local left = queue_due(now) + redis.call('ZCOUNT', K_HOLD_EXP, '-inf', now)
  + redis.call('ZCOUNT', K_ORDER_EXP, '-inf', now)
return { holds, orders, units, pruned, left }
