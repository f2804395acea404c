-- processing: a payment is under way (3-D Secure, a bank app): a pending order's expiry moves, once, to
-- `grace` after now, so that the order waits for the payment's result. Its units stay pending.
-- KEYS: the product's eleven keys (see _prelude.lua).
-- outbox: payment_processing, order_cancelled, product_stock
-- ARGV[1] order ulid   ARGV[2] transaction id   ARGV[3] grace ms
-- returns {'extended' | 'duplicate' | 'unchanged', <order reply>...} | {'order_not_found'}
--   extended   the order's expiry moved (the first `processing` of the order)
--   duplicate  this transaction's `processing` was applied before, or the transaction was already settled
--   unchanged  the order was extended by another transaction before, or it is no longer pending
-- A pending order's `note` is the transaction whose `processing` extended it ('' until then).
local order_ulid = ARGV[1]
local txn = ARGV[2]
local grace = tonumber(ARGV[3])

local o = read_order(order_ulid)
if not o then return { 'order_not_found' } end
if redis.call('HEXISTS', K_TXNS, txn) == 1 then return order_reply('duplicate', order_ulid, o) end

local now = now_ms()
if o.state == 'p' and now >= o.expires then cancel_order(order_ulid, o, now, 'expired') end
if o.state ~= 'p' then return order_reply('unchanged', order_ulid, o) end
if o.note == txn then return order_reply('duplicate', order_ulid, o) end
if o.note ~= '' then return order_reply('unchanged', order_ulid, o) end

o.expires, o.note = math.max(o.expires, now + grace), txn
write_order(order_ulid, o)
redis.call('ZADD', K_ORDER_EXP, o.expires, order_ulid)
-- A retried convert must still find the hold while the order is pending (see convert.lua).
tomb('h:' .. o.hold, o.expires + TOMB_MS)
count('n_processing')
emit('payment_processing', order_ulid, o, now, { 'transaction_id', txn })
return order_reply('extended', order_ulid, o)
