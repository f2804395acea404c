-- reserve_batch: several reserves of one product in one call, each answered as if made one after another.
-- The API coalesces concurrent holds of a product into one of these: one round trip, one reaping pass.
-- KEYS: the product's eleven keys (see _prelude.lua).
-- ARGV[1] hold ttl ms   ARGV[2] reap batch size   ARGV[3] n, then n groups of five:
--   qty, hold ulid, customer id ('' for none), scoped idempotency key ('' for none), the key as given
-- returns {reply, ...}: n replies in order, each as reserve.lua returns it
local ttl = tonumber(ARGV[1])
local batch = tonumber(ARGV[2])
local n = tonumber(ARGV[3])

local replies = {}
if not product_exists() then
  for i = 1, n do replies[i] = { 'product_not_found' } end
  return replies
end
local now = now_ms()
local state = { pruned = false }
state.full = select(4, reap_due(now, batch))
for i = 1, n do
  local at = 4 + (i - 1) * 5
  replies[i] = reserve_one(state, now, batch, tonumber(ARGV[at]), ARGV[at + 1], ttl, ARGV[at + 2], ARGV[at + 3],
    ARGV[at + 4])
end
return replies
