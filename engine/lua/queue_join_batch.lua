-- queue_join_batch: joins of one product's waiting room in one call (engine.coalesce), each answered as
-- queue_join.lua would have answered it had the joins been made in turn. The room's upkeep runs at most once for
-- the lot.
-- KEYS: the product's sixteen keys (see _prelude.lua).
-- outbox: hold_expired, order_cancelled, product_stock
-- ARGV[1] reap batch size   ARGV[2] upkeep interval ms   ARGV[3] joins
-- then per join: ticket secret (8 bytes), admission token secret (8 bytes), buyer ('' for none)
-- returns {queue_join.lua's reply, ...}: one per join, in order
local batch, every, count = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])

local now = now_ms()
local refused = join_refused(now)
local out = {}
for i = 1, count do
  local b = 3 * i
  out[i] = refused or join_ticket(ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], now, batch, every)
end
return out
