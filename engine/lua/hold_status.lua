-- hold_status: read one hold, expiring it first if it is overdue.
-- KEYS: the product's sixteen keys (see _prelude.lua).
-- outbox: hold_expired, product_stock
-- ARGV[1] hold ulid   ARGV[2] owner: the verified buyer asking ('' for anyone)
-- returns {'ok', ulid, qty, expires_ms, state, order, customer} | {'hold_not_found'} (also: not the owner's)
local ulid = ARGV[1]
local owner = ARGV[2] or ''

local h = read_hold(ulid)
if not h or not owned(h, owner) then return { 'hold_not_found' } end
if h.state == 'a' then
  local now = now_ms()
  if now >= h.expires then expire_hold(ulid, h, now) end
end
return hold_reply('ok', ulid, h)
