-- convert: turn an active, unexpired hold into a pending order, exactly once.
-- KEYS: the product's sixteen keys (see _prelude.lua).
-- outbox: order_created, hold_expired, order_cancelled, product_stock
-- ARGV[1] hold ulid   ARGV[2] order ulid   ARGV[3] order ttl ms   ARGV[4] owner: the verified buyer ('' for anyone)
-- returns {'ok', order ulid, hold ulid, qty, amount, status, created, expires, closed, note, customer}
--         (the same order ulid again replays the first result, with the order's current status)
--       | {'hold_not_found'} (also: not the owner's) | {'hold_expired', expires_ms} | {'hold_released'}
--       | {'hold_already_used', order ulid} | {'order_exists'} (the order ulid names another hold's order)
local hold_ulid = ARGV[1]
local order_ulid = ARGV[2]
local ttl = tonumber(ARGV[3])
local owner = ARGV[4] or ''

local h = read_hold(hold_ulid)
if not h or not owned(h, owner) then return { 'hold_not_found' } end
if h.state == 'c' then
  local first = h.order == order_ulid and read_order(order_ulid)
  if first then
    if first.state == 'p' then
      local now = now_ms()
      if now >= first.expires then cancel_order(order_ulid, first, now, 'expired') end
    end
    return order_reply('ok', order_ulid, first)
  end
  return { 'hold_already_used', h.order }
end
if h.state == 'r' then return { 'hold_released' } end
if h.state == 'x' then return { 'hold_expired', h.expires } end

local now = now_ms()
if now >= h.expires then
  expire_hold(hold_ulid, h, now)
  return { 'hold_expired', h.expires }
end
-- A caller-chosen order id must be new: writing over another order would lose its units.
if redis.call('HEXISTS', K_ORDERS, order_ulid) == 1 then return { 'order_exists' } end

local o = { state = 'p', qty = h.qty, amount = h.qty * counter('price'), created = now,
            expires = now + ttl, hold = hold_ulid, closed = 0, note = '', customer = h.customer }
redis.call('HINCRBY', K_PRODUCT, 'held', -h.qty)
redis.call('HINCRBY', K_PRODUCT, 'pending', h.qty)
write_order(order_ulid, o)
redis.call('ZADD', K_ORDER_EXP, o.expires, order_ulid)
h.state, h.order = 'c', order_ulid
write_hold(hold_ulid, h)
redis.call('ZREM', K_HOLD_EXP, hold_ulid)
-- While the order is pending, a retried convert must find the hold: it is kept at least until the order can
-- expire (FLASHSALE_ORDER_TTL_SECONDS may be a week), and its key a day after its expiry. retire_hold sets
-- the final date when the order closes.
tomb('h:' .. hold_ulid, math.max(h.expires, o.expires) + TOMB_MS)
count('n_orders')
emit('order_created', order_ulid, o, now)
return order_reply('ok', order_ulid, o)
