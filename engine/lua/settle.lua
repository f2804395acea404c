-- settle: apply one payment result to an order, at most once per transaction id.
-- KEYS: the product's sixteen keys (see _prelude.lua).
-- outbox: order_paid, order_revived, payment, order_cancelled, product_stock
-- ARGV[1] order ulid   ARGV[2] transaction id   ARGV[3] 'success' | 'failed'   ARGV[4] raw payload
-- returns {'applied' | 'revived' | 'not_applied' | 'duplicate', applied (0/1), refund_required (0/1), <order reply>...}
--       | {'order_not_found'} | {'duplicate_forgotten', applied, order ulid} (the order is no longer kept)
-- A success for an order that expired unpaid revives it when the product still has the units available: they
-- are taken again atomically and the order is paid (state 'v', "revived"; event order_revived). A success the
-- order cannot take (otherwise cancelled, or already paid by another transaction) is recorded, not applied,
-- and needs a refund: counted in n_refund_required, and carried by the payment event.
-- A duplicate transaction reports the order it was first applied to, in its current state, and the first
-- verdict. This script decides per product; claim_transaction binds the id to one order sale-wide first.
local order_ulid = ARGV[1]
local txn = ARGV[2]
local result = ARGV[3]
local payload = ARGV[4]

local function reply(status, applied, refund, ulid, o)
  local r = order_reply(status, ulid, o)
  table.insert(r, 2, applied)
  table.insert(r, 3, refund)
  return r
end

local seen = redis.call('HGET', K_TXNS, txn)
if seen then
  local t = fields(seen, 3)
  local o = read_order(t[1])
  count('n_duplicate')
  if o then
    local refund = (t[2] == 'success' and t[3] == '0') and 1 or 0
    return reply('duplicate', tonumber(t[3]), refund, t[1], o)
  end
  return { 'duplicate_forgotten', tonumber(t[3]), t[1] }
end

local o = read_order(order_ulid)
if not o then return { 'order_not_found' } end

local now = now_ms()
if o.state == 'p' and now >= o.expires then cancel_order(order_ulid, o, now, 'expired') end

local applied, refund, revived = 0, 0, false
if o.state == 'p' then
  applied = 1
  if result == 'success' then
    redis.call('HINCRBY', K_PRODUCT, 'pending', -o.qty)
    redis.call('HINCRBY', K_PRODUCT, 'sold', o.qty)
    o.state, o.closed, o.note = 'd', now, txn
    write_order(order_ulid, o)
    redis.call('ZREM', K_ORDER_EXP, order_ulid)
    tomb('o:' .. order_ulid, now + TOMB_MS)
    retire_hold(o, now)
    count('n_paid')
    emit('order_paid', order_ulid, o, now)
  else
    cancel_order(order_ulid, o, now, 'payment_failed')
  end
elseif result == 'success' and o.state == 'c' and o.note == 'expired' and counter('available') >= o.qty then
  -- A success after the order expired unpaid, its units still on sale: take them again, the order is paid.
  applied, revived = 1, true
  add_available(-o.qty, now)
  redis.call('HINCRBY', K_PRODUCT, 'sold', o.qty)
  if o.customer ~= '' then redis.call('HINCRBY', K_CUSTOMERS, o.customer, o.qty) end
  o.state, o.closed, o.note = 'v', now, txn
  write_order(order_ulid, o)
  tomb('o:' .. order_ulid, now + TOMB_MS)
  count('n_revived')
  emit('order_revived', order_ulid, o, now)
elseif result == 'success' then
  refund = 1
  count('n_refund_required')
end

redis.call('HSET', K_TXNS, txn, order_ulid .. '|' .. result .. '|' .. applied)
tomb('t:' .. txn, now + TXN_TOMB_MS)
emit('payment', order_ulid, o, now,
  { 'transaction_id', txn, 'result', result, 'applied', applied, 'refund_required', refund, 'payload', payload })
local verdict = revived and 'revived' or (applied == 1 and 'applied' or 'not_applied')
return reply(verdict, applied, refund, order_ulid, o)
