-- order_status: read one order, cancelling it first if it is pending past its expiry.
-- KEYS: the product's sixteen keys (see _prelude.lua).
-- outbox: order_cancelled, product_stock
-- ARGV[1] order ulid   ARGV[2] owner: the verified buyer asking ('' for anyone)
-- returns {'ok', <order reply>...} | {'order_not_found'} (also: not the owner's)
local ulid = ARGV[1]
local owner = ARGV[2] or ''

local o = read_order(ulid)
if not o or not owned(o, owner) then return { 'order_not_found' } end
if o.state == 'p' then
  local now = now_ms()
  if now >= o.expires then cancel_order(ulid, o, now, 'expired') end
end
return order_reply('ok', ulid, o)
