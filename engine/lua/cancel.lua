-- cancel: cancel a pending order and give its units back. Cancelling twice has one effect.
-- KEYS: the product's sixteen keys (see _prelude.lua).
-- outbox: order_cancelled, product_stock
-- ARGV[1] order ulid   ARGV[2] reason ('cancelled')   ARGV[3] owner: the verified buyer asking ('' for anyone)
-- returns {'ok' | 'unchanged', <order reply>...} | {'order_not_found'} (also: not the owner's)
--       | {'order_not_pending', status}
local ulid = ARGV[1]
local reason = ARGV[2]
local owner = ARGV[3] or ''

local o = read_order(ulid)
if not o or not owned(o, owner) then return { 'order_not_found' } end
if o.state == 'd' or o.state == 'v' then return { 'order_not_pending', 'paid' } end
if o.state == 'c' then return order_reply('unchanged', ulid, o) end
local now = now_ms()
if now >= o.expires then reason = 'expired' end
cancel_order(ulid, o, now, reason)
return order_reply('ok', ulid, o)
