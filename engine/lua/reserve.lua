-- reserve: take `qty` units of one product into a new hold that lapses by itself.
-- KEYS: the product's ten keys (see _prelude.lua).
-- ARGV[1] qty   ARGV[2] hold ulid   ARGV[3] hold ttl ms   ARGV[4] customer id ('' for none)
-- ARGV[5] idempotency key ('' for none)   ARGV[6] reap batch size
-- returns {'ok', ulid, qty, expires_ms, state, order, customer, available}   (a replay returns the first hold)
--       | {'product_not_found'} | {'sale_not_active', starts, ends, now}
--       | {'limit_exceeded', limit, used} | {'out_of_stock', available}
local qty = tonumber(ARGV[1])
local ulid = ARGV[2]
local ttl = tonumber(ARGV[3])
local customer = ARGV[4]
local idem = ARGV[5]
local batch = tonumber(ARGV[6])

if not product_exists() then return { 'product_not_found' } end
local now = now_ms()

-- Lazy reaping: overdue holds and orders give their units back before anything is read or taken.
local holds, orders = reap_due(now, batch)

-- A retry of the same call, or the same idempotency key, gets the first hold back, as it is now.
if idem ~= '' then
  local first = redis.call('HGET', K_IDEM, idem)
  if first then ulid = first end
end
local existing = read_hold(ulid)
if existing then
  if existing.state == 'a' and now >= existing.expires then expire_hold(ulid, existing, now) end
  local reply = hold_reply('ok', ulid, existing)
  reply[#reply + 1] = counter('available')
  return reply
end

local c = counters()
local starts, ends = c[8], c[9]
if (starts > 0 and now < starts) or (ends > 0 and now >= ends) then
  return { 'sale_not_active', starts, ends, now }
end

local available = counter('available')
while available < qty and (holds == batch or orders == batch) do
  holds, orders = reap_due(now, batch)
  available = counter('available')
end
prune_tombs(now, batch)

local limit = c[7]
if limit > 0 and customer ~= '' then
  local used = tonumber(redis.call('HGET', K_CUSTOMERS, customer) or '0')
  if used + qty > limit then
    count('n_limit')
    return { 'limit_exceeded', limit, used }
  end
end
if available < qty then
  count('n_out_of_stock')
  return { 'out_of_stock', available }
end

local h = { state = 'a', qty = qty, expires = now + ttl, order = '', customer = customer }
redis.call('HINCRBY', K_PRODUCT, 'available', -qty)
redis.call('HINCRBY', K_PRODUCT, 'held', qty)
if customer ~= '' then redis.call('HINCRBY', K_CUSTOMERS, customer, qty) end
write_hold(ulid, h)
count('n_holds')
redis.call('ZADD', K_HOLD_EXP, h.expires, ulid)
if idem ~= '' then
  redis.call('HSET', K_IDEM, idem, ulid)
  tomb('i:' .. idem, h.expires + TOMB_MS)
end
local reply = hold_reply('ok', ulid, h)
reply[#reply + 1] = available - qty
return reply
