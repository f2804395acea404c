-- _prelude: shared definitions, prepended once at load time to every script in this folder.
-- Every script receives the same KEYS, all carrying one product's hash tag `{<product id>}`:
--   KEYS[1]  product    hash    total available held pending sold price limit starts ends,
--                               queued_until (the expiry of the last hold queued), and running counts
--                               n_holds n_out_of_stock n_limit n_released n_expired
--                               n_orders n_paid n_payment_failed n_cancelled n_order_expired n_duplicate
--                               n_refund_required n_processing n_revived
--   KEYS[2]  holds      hash    hold ulid  -> "state|qty|expires_ms|order ulid|customer"
--   KEYS[3]  hold_exp   zset    active hold ulid, score = expires_ms: the holds that would break
--                               hold_queue's order
--   KEYS[4]  orders     hash    order ulid -> "state|qty|amount|created_ms|expires_ms|hold ulid|closed_ms|note|customer"
--   KEYS[5]  order_exp  zset    pending order ulid, score = expires_ms
--   KEYS[6]  txns       hash    transaction id -> "order ulid|result|applied"
--   KEYS[7]  customers  hash    customer id -> units held, pending or sold
--   KEYS[8]  idem       hash    idempotency key scoped to its caller (a digest) -> hold ulid
--   KEYS[9]  tombs      zset    "h:<ulid>" "o:<ulid>" "t:<txn>" "i:<key>", score = purge at ms
--   KEYS[10] outbox     stream  events PostgreSQL must learn. Their names and fields (in order) are engine/outbox.py's
--                               `FIELDS`: `emit` writes the order events, `expire_hold` hold_expired. Each script's
--                               `-- outbox:` line names the events it writes; tests/test_engine_outbox.py runs every
--                               script and holds the entries, and those lines, to both.
--   KEYS[11] hold_queue list    hold ulids in expiry order (a hold expiring no earlier than the last one
--                               queued); released or converted ones stay until they reach the head
-- Hold states: a active, c converted, r released, x expired.
-- Order states: p pending, d paid, v paid after it had expired (revived: a late success took its units
-- again), c cancelled. `note` is the paying transaction or the cancel reason; while pending, the transaction
-- whose `processing` extended the order ('' until then).

local K_PRODUCT, K_HOLDS, K_HOLD_EXP, K_ORDERS, K_ORDER_EXP = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_TXNS, K_CUSTOMERS, K_IDEM, K_TOMBS, K_OUTBOX = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local K_HOLD_QUEUE = KEYS[11]

local PRODUCT_ID = K_PRODUCT and string.match(K_PRODUCT, '{(%d+)}')  -- none: a reserve_batch of nothing
-- Closed orders answer for 24 h. A hold that ended answers for 24 h after its expiry, as long as its
-- idempotency key; a converted hold also while its order is pending, and as long as the order answers.
local TOMB_MS = 86400000
local TXN_TOMB_MS = 7 * 86400000  -- transaction ids are remembered for 7 days
local ORDER_STATUS = { p = 'pending', d = 'paid', v = 'paid', c = 'cancelled' }

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Split `s` on '|' into exactly n fields; the last field keeps any '|' it contains.
local function fields(s, n)
  local out, pos = {}, 1
  for i = 1, n - 1 do
    local j = string.find(s, '|', pos, true)
    out[i] = string.sub(s, pos, j - 1)
    pos = j + 1
  end
  out[n] = string.sub(s, pos)
  return out
end

local function read_hold(ulid)
  local raw = redis.call('HGET', K_HOLDS, ulid)
  if not raw then return nil end
  local f = fields(raw, 5)
  return { state = f[1], qty = tonumber(f[2]), expires = tonumber(f[3]), order = f[4], customer = f[5] }
end

local function write_hold(ulid, h)
  redis.call('HSET', K_HOLDS, ulid,
    h.state .. '|' .. h.qty .. '|' .. h.expires .. '|' .. h.order .. '|' .. h.customer)
end

local function read_order(ulid)
  local raw = redis.call('HGET', K_ORDERS, ulid)
  if not raw then return nil end
  local f = fields(raw, 9)
  return { state = f[1], qty = tonumber(f[2]), amount = tonumber(f[3]), created = tonumber(f[4]),
           expires = tonumber(f[5]), hold = f[6], closed = tonumber(f[7]), note = f[8], customer = f[9] }
end

local function write_order(ulid, o)
  redis.call('HSET', K_ORDERS, ulid,
    o.state .. '|' .. o.qty .. '|' .. o.amount .. '|' .. o.created .. '|' .. o.expires .. '|' ..
    o.hold .. '|' .. o.closed .. '|' .. o.note .. '|' .. o.customer)
end

-- The reply shape every script uses for an order.
local function order_reply(status, ulid, o)
  return { status, ulid, o.hold, o.qty, o.amount, ORDER_STATUS[o.state], o.created, o.expires,
           o.closed, o.note, o.customer, o.state == 'v' and 1 or 0 }
end

-- Whether a caller who is `owner` may see or change a hold or order: '' (buyer auth off) may touch any. To
-- anyone else a record answers as if it did not exist, checked in the same atomic call as the change.
local function owned(record, owner)
  return owner == '' or record.customer == owner
end

local function hold_reply(status, ulid, h)
  return { status, ulid, h.qty, h.expires, h.state, h.order, h.customer }
end

local function counter(field)
  return tonumber(redis.call('HGET', K_PRODUCT, field) or '0')
end

local function count(stat, by)
  redis.call('HINCRBY', K_PRODUCT, stat, by or 1)
end

local function tomb(member, purge_at)
  redis.call('ZADD', K_TOMBS, purge_at, member)
end

local function uncommit(customer, qty)
  if customer == '' then return end
  if redis.call('HINCRBY', K_CUSTOMERS, customer, -qty) <= 0 then
    redis.call('HDEL', K_CUSTOMERS, customer)
  end
end

-- Append an order event (order_created, order_paid, order_cancelled, payment), carrying the whole order
-- (engine/outbox.py `ORDER`) so that events may be applied in any order; a payment's own fields come in `extra`.
local function emit(event, ulid, o, now, extra)
  local args = { 'XADD', K_OUTBOX, '*', 'event', event, 'at', now,
    'order_id', 'o' .. PRODUCT_ID .. '_' .. ulid, 'product_id', PRODUCT_ID,
    'hold_id', 'h' .. PRODUCT_ID .. '_' .. o.hold, 'customer_id', o.customer,
    'quantity', o.qty, 'amount_cents', o.amount, 'status', ORDER_STATUS[o.state],
    'created_ms', o.created, 'expires_ms', o.expires, 'closed_ms', o.closed, 'note', o.note }
  if extra then
    for i = 1, #extra do args[#args + 1] = extra[i] end
  end
  redis.call(unpack(args))
end

-- An active hold past its expiry: its units go back to available.
local function expire_hold(ulid, h, now)
  redis.call('HINCRBY', K_PRODUCT, 'held', -h.qty)
  redis.call('HINCRBY', K_PRODUCT, 'available', h.qty)
  uncommit(h.customer, h.qty)
  h.state = 'x'
  write_hold(ulid, h)
  redis.call('ZREM', K_HOLD_EXP, ulid)
  tomb('h:' .. ulid, h.expires + TOMB_MS)
  count('n_expired')
  redis.call('XADD', K_OUTBOX, '*', 'event', 'hold_expired', 'at', now, 'product_id', PRODUCT_ID,
    'hold_id', 'h' .. PRODUCT_ID .. '_' .. ulid, 'customer_id', h.customer, 'quantity', h.qty)
end

-- An order closed at `now`: its hold, converted, answers for as long as the order does (a retried
-- convert replays the order), and at least until its key is forgotten (its expiry + 24 h).
local function retire_hold(o, now)
  local h = read_hold(o.hold)
  if h then tomb('h:' .. o.hold, math.max(now, h.expires) + TOMB_MS) end
end

-- Move a pending order to cancelled and give its units back.
local function cancel_order(ulid, o, now, reason)
  redis.call('HINCRBY', K_PRODUCT, 'pending', -o.qty)
  redis.call('HINCRBY', K_PRODUCT, 'available', o.qty)
  uncommit(o.customer, o.qty)
  o.state, o.closed, o.note = 'c', now, reason
  write_order(ulid, o)
  redis.call('ZREM', K_ORDER_EXP, ulid)
  tomb('o:' .. ulid, now + TOMB_MS)
  retire_hold(o, now)
  count(reason == 'expired' and 'n_order_expired' or (reason == 'payment_failed' and 'n_payment_failed' or 'n_cancelled'))
  emit('order_cancelled', ulid, o, now)
end

-- Pop up to `limit` due entries off the head of the hold queue: expire the active holds, drop the ones
-- released or converted meanwhile. Stops at the first active hold not yet due (all behind it expire no
-- earlier). Returns holds expired, units returned and entries popped.
local function reap_queue(now, limit)
  local holds, units = 0, 0
  for popped = 0, limit - 1 do
    local ulid = redis.call('LINDEX', K_HOLD_QUEUE, 0)
    if not ulid then return holds, units, popped end
    local h = read_hold(ulid)
    if h and h.state == 'a' then
      if now < h.expires then return holds, units, popped end
      expire_hold(ulid, h, now)
      holds, units = holds + 1, units + h.qty
    end
    redis.call('LPOP', K_HOLD_QUEUE)
  end
  return holds, units, limit
end

-- How many entries at the head of the hold queue are due: a binary search, the queue being in expiry order.
local function queue_due(now)
  local lo, hi = 0, redis.call('LLEN', K_HOLD_QUEUE)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local h = read_hold(redis.call('LINDEX', K_HOLD_QUEUE, mid))
    if h and now < h.expires then hi = mid else lo = mid + 1 end
  end
  return lo
end

-- Pop up to `limit` due entries of the hold queue, then expire what is left of `limit` from hold_exp, and
-- up to `limit` overdue orders. Returns holds, orders, units, and whether a limit stopped it (more may be due).
local function reap_due(now, limit)
  local holds, units, popped = reap_queue(now, limit)
  local full = popped == limit
  if not full then
    local due = redis.call('ZRANGEBYSCORE', K_HOLD_EXP, '-inf', now, 'LIMIT', 0, limit - popped)
    full = #due == limit - popped
    for _, ulid in ipairs(due) do
      local h = read_hold(ulid)
      if h and h.state == 'a' then
        expire_hold(ulid, h, now)
        holds, units = holds + 1, units + h.qty
      else
        redis.call('ZREM', K_HOLD_EXP, ulid)
      end
    end
  end
  local orders = 0
  local due = redis.call('ZRANGEBYSCORE', K_ORDER_EXP, '-inf', now, 'LIMIT', 0, limit)
  full = full or #due == limit
  for _, ulid in ipairs(due) do
    local o = read_order(ulid)
    if o and o.state == 'p' then
      cancel_order(ulid, o, now, 'expired')
      orders, units = orders + 1, units + o.qty
    else
      redis.call('ZREM', K_ORDER_EXP, ulid)
    end
  end
  return holds, orders, units, full
end

-- Forget tombstones older than their retention, in a bounded batch.
local TOMB_HASH = { h = K_HOLDS, o = K_ORDERS, t = K_TXNS, i = K_IDEM }
local function prune_tombs(now, limit)
  local old = redis.call('ZRANGEBYSCORE', K_TOMBS, '-inf', now, 'LIMIT', 0, limit)
  for _, member in ipairs(old) do
    redis.call('HDEL', TOMB_HASH[string.sub(member, 1, 1)], string.sub(member, 3))
    redis.call('ZREM', K_TOMBS, member)
  end
  return #old
end

-- The id of the last event ever appended to the outbox ('0-0' if it never had one). It only grows, even as
-- the drain deletes entries: a restore compares it with the one read before its snapshot.
local function outbox_last_id()
  if redis.call('EXISTS', K_OUTBOX) == 0 then return '0-0' end
  local info = redis.call('XINFO', 'STREAM', K_OUTBOX)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then return info[i + 1] end
  end
  error('XINFO STREAM did not report last-generated-id')
end

-- Point every key above at the p-th product's eleven keys (KEYS[11 * (p - 1) + 1] onwards): a script that
-- serves several products in one call (reserve_batch.lua) turns to each in turn. Every script starts at the first.
local function use_product(p)
  local b = (p - 1) * 11
  K_PRODUCT, K_HOLDS, K_HOLD_EXP, K_ORDERS, K_ORDER_EXP = KEYS[b + 1], KEYS[b + 2], KEYS[b + 3], KEYS[b + 4], KEYS[b + 5]
  K_TXNS, K_CUSTOMERS, K_IDEM, K_TOMBS, K_OUTBOX = KEYS[b + 6], KEYS[b + 7], KEYS[b + 8], KEYS[b + 9], KEYS[b + 10]
  K_HOLD_QUEUE = KEYS[b + 11]
  PRODUCT_ID = string.match(K_PRODUCT, '{(%d+)}')
  TOMB_HASH.h, TOMB_HASH.o, TOMB_HASH.t, TOMB_HASH.i = K_HOLDS, K_ORDERS, K_TXNS, K_IDEM
end

local function product_exists()
  return redis.call('HEXISTS', K_PRODUCT, 'total') == 1
end

local function counters()
  local c = redis.call('HMGET', K_PRODUCT, 'total', 'available', 'held', 'pending', 'sold',
    'price', 'limit', 'starts', 'ends', 'queued_until')
  for i = 1, #c do c[i] = tonumber(c[i] or '0') end
  return c
end

-- The caller's hold an idempotency key names, and its record; nil if none. The key is stored scoped to
-- its caller (`idem`, see calls.scoped_idempotency_key); an entry written before keys were scoped sits
-- under the key as given (`legacy`). Either counts only for the customer its hold belongs to, so one
-- caller's key never reaches another's hold. A key whose hold is forgotten names nothing: a pruned hold
-- id never comes back as a new hold (PostgreSQL may still keep its order, under a unique hold id).
local function keyed_hold(idem, legacy, customer)
  local ulid = redis.call('HGET', K_IDEM, idem)
  if not ulid and legacy ~= '' then ulid = redis.call('HGET', K_IDEM, legacy) end
  if not ulid then return nil end
  local h = read_hold(ulid)
  if h and h.customer == customer then return ulid, h end
  return nil
end

-- One reserve, for reserve.lua and reserve_batch.lua (contract and reply in reserve.lua). The product
-- exists and reap_due has run at `now`; `state.full` says whether its last pass stopped at a limit (more
-- may be due), and `state.pruned` whether this call has pruned tombstones yet.
local function reserve_one(state, now, batch, qty, ulid, ttl, customer, idem, legacy)
  -- A retry of the same call, or the same caller's idempotency key, gets the first hold back, as it is now.
  local existing
  if idem ~= '' then
    local first, h = keyed_hold(idem, legacy, customer)
    if first then ulid, existing = first, h end
  end
  existing = existing or read_hold(ulid)
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

  local available = c[2]
  while available < qty and state.full do
    state.full = select(4, reap_due(now, batch))
    available = counter('available')
  end
  if not state.pruned then
    prune_tombs(now, batch)
    state.pruned = true
  end

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
  -- The queue stays in expiry order. A hold that would break it (a shorter TTL than the last one
  -- queued, or a server clock that stepped back) is indexed by expiry in hold_exp instead.
  if h.expires >= c[10] then
    redis.call('RPUSH', K_HOLD_QUEUE, ulid)
    if h.expires > c[10] then redis.call('HSET', K_PRODUCT, 'queued_until', h.expires) end
  else
    redis.call('ZADD', K_HOLD_EXP, h.expires, ulid)
  end
  if idem ~= '' then
    redis.call('HSET', K_IDEM, idem, ulid)
    tomb('i:' .. idem, h.expires + TOMB_MS)
  end
  local reply = hold_reply('ok', ulid, h)
  reply[#reply + 1] = available - qty
  return reply
end

