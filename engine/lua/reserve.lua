-- reserve: take `qty` units of one product into a new hold that lapses by itself.
-- KEYS: the product's sixteen keys (see _prelude.lua).
-- outbox: hold_expired, order_cancelled, product_stock
-- ARGV[1] qty   ARGV[2] hold ulid   ARGV[3] hold ttl ms   ARGV[4] customer id ('' for none)
-- ARGV[5] idempotency key scoped to the caller ('' for none: see calls.scoped_idempotency_key)
-- ARGV[6] the idempotency key as given (entries written before keys were scoped)   ARGV[7] reap batch size
-- ARGV[8] the admission ('' for none): ticket number, ':', admission token secret; a product with a waiting
--         room takes it, and uses it up in the same step as the hold
-- returns {'ok', ulid, qty, expires_ms, state, order, customer, available}   (a replay returns the first hold)
--       | {'product_not_found'} | {'sale_not_active', starts, ends, now}
--       | {'admission_required', reason (missing, invalid, expired, used)}
--       | {'limit_exceeded', limit, used} | {'out_of_stock', available}
local qty = tonumber(ARGV[1])
local ulid = ARGV[2]
local ttl = tonumber(ARGV[3])
local customer = ARGV[4]
local idem = ARGV[5]
local legacy = ARGV[6]
local batch = tonumber(ARGV[7])
local admission = ARGV[8]

if not product_exists() then return { 'product_not_found' } end
local now = now_ms()

-- Lazy reaping: overdue holds and orders give their units back before anything is read or taken.
local state = { pruned = false }
state.full = select(4, reap_due(now, batch))
return reserve_one(state, now, batch, qty, ulid, ttl, customer, idem, legacy, admission)
