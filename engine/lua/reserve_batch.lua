-- reserve_batch: the reserves of one or more products in one call, each answered as if made one after another.
-- The API coalesces concurrent holds into one of these: one round trip, one script call, one reaping pass per product.
-- KEYS: each product's sixteen keys (see _prelude.lua), product after product; on Redis Cluster all in one hash slot.
-- outbox: hold_expired, order_cancelled, product_stock
-- ARGV[1] hold ttl ms   ARGV[2] reap batch size   ARGV[3] m, the number of products; then for each product, in
--   the order of KEYS: its number of reserves n, then n groups of six:
--   qty, hold ulid, customer id ('' for none), scoped idempotency key ('' for none), the key as given,
--   the admission ('' for none; see reserve.lua)
-- returns {reply, ...}: one reply per reserve, product after product, each as reserve.lua returns it, or
--   {'invalid_request'} for a reserve whose qty is not a whole number from 1 (it alone is refused)
local ttl = tonumber(ARGV[1])
local batch = tonumber(ARGV[2])
local m = tonumber(ARGV[3])

local replies, at, now = {}, 4, nil
for p = 1, m do
  use_product(p)
  local n = tonumber(ARGV[at])
  at = at + 1
  if not product_exists() then
    for _ = 1, n do replies[#replies + 1] = { 'product_not_found' } end
    at = at + 6 * n
  else
    now = now or now_ms()
    local state = { pruned = false }
    state.full = select(4, reap_due(now, batch))
    for _ = 1, n do
      local qty = tonumber(ARGV[at])
      if qty == nil or qty < 1 or qty ~= math.floor(qty) then
        replies[#replies + 1] = { 'invalid_request' }
      else
        replies[#replies + 1] = reserve_one(state, now, batch, qty, ARGV[at + 1], ttl, ARGV[at + 2], ARGV[at + 3],
          ARGV[at + 4], ARGV[at + 5])
      end
      at = at + 6
    end
  end
end
return replies
