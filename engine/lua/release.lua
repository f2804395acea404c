-- release: give an active hold back before it expires. Releasing twice has one effect.
-- KEYS: the product's sixteen keys (see _prelude.lua).
-- outbox: hold_expired, product_stock
-- ARGV[1] hold ulid   ARGV[2] owner: the verified buyer asking ('' for anyone)
-- returns {'ok', ulid, qty, expires_ms, state, order, customer}
--       | {'hold_not_found'} (also: not the owner's) | {'hold_expired', expires_ms} | {'hold_already_used', order ulid}
local ulid = ARGV[1]
local owner = ARGV[2] or ''

local h = read_hold(ulid)
if not h or not owned(h, owner) then return { 'hold_not_found' } end
if h.state == 'c' then return { 'hold_already_used', h.order } end
if h.state == 'x' then return { 'hold_expired', h.expires } end
if h.state == 'a' then
  local now = now_ms()
  if now >= h.expires then
    expire_hold(ulid, h, now)
    return { 'hold_expired', h.expires }
  end
  redis.call('HINCRBY', K_PRODUCT, 'held', -h.qty)
  add_available(h.qty, now)
  uncommit(h.customer, h.qty)
  h.state = 'r'
  write_hold(ulid, h)
  redis.call('ZREM', K_HOLD_EXP, ulid)
  tomb('h:' .. ulid, h.expires + TOMB_MS)  -- as long as its idempotency key
  count('n_released')
end
return hold_reply('ok', ulid, h)
