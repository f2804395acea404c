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
--                               `FIELDS`: `emit` writes the order events, `expire_hold` hold_expired, `stock_moved`
--                               product_stock. Each script's `-- outbox:` line names the events it writes;
--                               tests/test_engine_outbox.py runs every script and holds the entries, and those
--                               lines, to both.
--   KEYS[11] hold_queue list    hold ulids in expiry order (a hold expiring no earlier than the last one
--                               queued); released or converted ones stay until they reach the head
-- The waiting room (docs/waiting-room.md), empty unless the product opted in:
--   KEYS[12] queue      hash    on rate ttl abandon opened seed seed_sha256 seq pre_last tokens tokens_at sweep upkept
--                               win_at win_n win_prev, and counts q_joined q_admitted q_used q_expired q_left
--   KEYS[13] queue_wait zset    waiting ticket numbers; score = the pre-queue's draw key (< 2^52) for a
--                               ticket that joined before the start, 2^52 + its number after it
--   KEYS[14] queue_adm  zset    admitted, unused ticket numbers, score = admission expires ms
--   KEYS[15] queue_tab  string  a 30-byte record per ticket number n at offset 30 n: ticket secret (8 bytes),
--                               admission token secret (8), joined ms (6), last polled ms (6), state (1),
--                               owned by a buyer (1)
--   KEYS[16] queue_subs hash    buyer (a verified token's sub) -> ticket number
-- Hold states: a active, c converted, r released, x expired.
-- Order states: p pending, d paid, v paid after it had expired (revived: a late success took its units
-- again), c cancelled. `note` is the paying transaction or the cancel reason; while pending, the transaction
-- whose `processing` extended the order ('' until then).

local K_PRODUCT, K_HOLDS, K_HOLD_EXP, K_ORDERS, K_ORDER_EXP = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_TXNS, K_CUSTOMERS, K_IDEM, K_TOMBS, K_OUTBOX = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local K_HOLD_QUEUE = KEYS[11]
local K_QUEUE, K_QUEUE_WAIT, K_QUEUE_ADM, K_QUEUE_TAB, K_QUEUE_SUBS = KEYS[12], KEYS[13], KEYS[14], KEYS[15], KEYS[16]

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

-- The product's stock transitions, for the merchant (event product_stock, `kind`): sold_out (available
-- reached 0), back_in_stock (it left 0), low_stock (it fell below the product's `low` threshold, still above
-- 0). Every change of `available` goes through add_available, so each transition is written exactly once.
local function stock_moved(before, after, now)
  if before == after then return end
  local low = counter('low')
  local kind = nil
  if after == 0 and before > 0 then kind = 'sold_out'
  elseif before == 0 and after > 0 then kind = 'back_in_stock'
  elseif low > 0 and after < low and before >= low then kind = 'low_stock' end
  if kind then
    redis.call('XADD', K_OUTBOX, '*', 'event', 'product_stock', 'at', now, 'product_id', PRODUCT_ID,
      'kind', kind, 'available', after, 'threshold', low)
  end
end

local function add_available(delta, now)
  local after = redis.call('HINCRBY', K_PRODUCT, 'available', delta)
  stock_moved(after - delta, after, now)
  return after
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
  add_available(h.qty, now)
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
  add_available(o.qty, now)
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

-- Point every key above at the p-th product's sixteen keys (KEYS[16 * (p - 1) + 1] onwards): a script that
-- serves several products in one call (reserve_batch.lua) turns to each in turn. Every script starts at the first.
local function use_product(p)
  local b = (p - 1) * 16
  K_PRODUCT, K_HOLDS, K_HOLD_EXP, K_ORDERS, K_ORDER_EXP = KEYS[b + 1], KEYS[b + 2], KEYS[b + 3], KEYS[b + 4], KEYS[b + 5]
  K_TXNS, K_CUSTOMERS, K_IDEM, K_TOMBS, K_OUTBOX = KEYS[b + 6], KEYS[b + 7], KEYS[b + 8], KEYS[b + 9], KEYS[b + 10]
  K_HOLD_QUEUE = KEYS[b + 11]
  K_QUEUE, K_QUEUE_WAIT, K_QUEUE_ADM, K_QUEUE_TAB, K_QUEUE_SUBS = KEYS[b + 12], KEYS[b + 13], KEYS[b + 14],
    KEYS[b + 15], KEYS[b + 16]
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

-- The waiting room. Ticket states: w waiting, a admitted, u used (its hold was made), e expired (the admission
-- lapsed unused), l left (asked to, or not polled for `abandon` ms). A waiting ticket reads sold_out while the
-- product is sold out; that is not stored: it ends when units return.
local QUEUE_RECORD = 30
local PRE_QUEUE_SPAN = 4503599627370496  -- 2^52: draw keys are below it, numbers after the start above it
local SWEEP = 20         -- waiting tickets checked for abandonment per upkeep (queue_upkeep)
local RATE_WINDOW_MS = 10000

local function queue_on()
  return redis.call('HGET', K_QUEUE, 'on') == '1'
end

local function queue_field(field)
  return tonumber(redis.call('HGET', K_QUEUE, field) or '0')
end

-- Milliseconds as 6 bytes, big-endian, and back (plain arithmetic: exact below 2^53).
local function ms_bytes(ms)
  local out = {}
  for i = 6, 1, -1 do
    out[i] = string.char(ms % 256)
    ms = math.floor(ms / 256)
  end
  return table.concat(out)
end

local function bytes_ms(s)
  local ms = 0
  for i = 1, 6 do ms = ms * 256 + string.byte(s, i) end
  return ms
end

-- A ticket's record, or nil if its number was never given.
local function read_ticket(n)
  local raw = redis.call('GETRANGE', K_QUEUE_TAB, n * QUEUE_RECORD, n * QUEUE_RECORD + QUEUE_RECORD - 1)
  if #raw < QUEUE_RECORD or string.sub(raw, 29, 29) == '\0' then return nil end
  return { secret = string.sub(raw, 1, 8), token = string.sub(raw, 9, 16),
           joined = bytes_ms(string.sub(raw, 17, 22)), seen = bytes_ms(string.sub(raw, 23, 28)),
           state = string.sub(raw, 29, 29), owned = string.sub(raw, 30, 30) == '1' }
end

local function set_ticket_state(n, state)
  redis.call('SETRANGE', K_QUEUE_TAB, n * QUEUE_RECORD + 28, state)
end

local function touch_ticket(n, now)
  redis.call('SETRANGE', K_QUEUE_TAB, n * QUEUE_RECORD + 22, ms_bytes(now))
end

-- Whether `owner` (a verified buyer, '' for anyone) may see ticket n: a ticket a buyer joined is that buyer's.
local function ticket_owned_by(n, t, owner)
  if owner == '' or not t.owned then return true end
  return redis.call('HGET', K_QUEUE_SUBS, owner) == tostring(n)
end

-- The start of the sale (0: none): joins before it form the shuffled pre-queue.
local function sale_started(now)
  local starts = counter('starts')
  return starts == 0 or now >= starts
end

-- Admissions past their TTL expire: their places go to the next waiters.
local function queue_expire(now, batch)
  local due = redis.call('ZRANGEBYSCORE', K_QUEUE_ADM, '-inf', now, 'LIMIT', 0, batch)
  for _, member in ipairs(due) do
    set_ticket_state(tonumber(member), 'e')
    redis.call('ZREM', K_QUEUE_ADM, member)
  end
  if #due > 0 then redis.call('HINCRBY', K_QUEUE, 'q_expired', #due) end
end

-- Drop a few waiting tickets not polled for `abandon` ms, from a cursor that walks the queue and wraps.
local function queue_sweep(now, abandon)
  local cursor = redis.call('HGET', K_QUEUE, 'sweep')
  local from = cursor and '(' .. cursor or '-inf'
  local batch = redis.call('ZRANGEBYSCORE', K_QUEUE_WAIT, from, '+inf', 'WITHSCORES', 'LIMIT', 0, SWEEP)
  local left = 0
  for i = 1, #batch, 2 do
    local n = tonumber(batch[i])
    local t = read_ticket(n)
    if t and now - t.seen > abandon then
      set_ticket_state(n, 'l')
      redis.call('ZREM', K_QUEUE_WAIT, batch[i])
      left = left + 1
    end
  end
  if left > 0 then redis.call('HINCRBY', K_QUEUE, 'q_left', left) end
  if #batch < 2 * SWEEP then
    redis.call('HDEL', K_QUEUE, 'sweep')
  else
    redis.call('HSET', K_QUEUE, 'sweep', batch[#batch])
  end
end

-- Count `k` admissions in the rate window (two buckets of RATE_WINDOW_MS).
local function count_admissions(now, k)
  local at = queue_field('win_at')
  if now - at >= RATE_WINDOW_MS then
    local prev = now - at < 2 * RATE_WINDOW_MS and queue_field('win_n') or 0
    redis.call('HSET', K_QUEUE, 'win_at', now - (now % RATE_WINDOW_MS), 'win_n', 0, 'win_prev', prev)
  end
  if k > 0 then
    redis.call('HINCRBY', K_QUEUE, 'win_n', k)
    redis.call('HINCRBY', K_QUEUE, 'q_admitted', k)
  end
end

-- The room's time-driven upkeep: lapsed holds and unpaid orders give their units back (reap_due), lapsed
-- admissions expire, a few waiting tickets are checked for abandonment, and the rate window rolls on. Nothing
-- here is due sooner than time makes it due, so it runs at most once every `every` ms of Redis time per product
-- (the room's field `upkept`), unless `force`; a clock that stepped back runs it at once. Admission itself
-- (queue_admit) is not rate-limited: units that come back are admitted by the next call.
local function queue_upkeep(now, batch, every, force)
  local last = queue_field('upkept')
  if not force and now >= last and now - last < every then return false end
  redis.call('HSET', K_QUEUE, 'upkept', now)
  reap_due(now, batch)
  queue_expire(now, batch)
  queue_sweep(now, queue_field('abandon'))
  count_admissions(now, 0)
  return true
end

-- Whether ticket n (record t) holds an admission that has lapsed though no upkeep expired it yet: its holder
-- must read `expired`, so the caller forces the upkeep.
local function admission_lapsed(n, t, now)
  return t.state == 'a' and now >= tonumber(redis.call('ZSCORE', K_QUEUE_ADM, n) or '0')
end

-- Admit the next waiters, in queue order, so that the admitted and unused never exceed `available`, and no
-- faster than `rate` a second when one is set. Before the start nobody is admitted. With no free slot (the usual
-- case during a sale) this is two reads. Returns how many were admitted.
local function queue_admit(now, batch)
  if not sale_started(now) then return 0 end
  local slots = counter('available') - redis.call('ZCARD', K_QUEUE_ADM)
  if slots <= 0 then return 0 end
  local q = redis.call('HMGET', K_QUEUE, 'abandon', 'rate', 'tokens', 'tokens_at', 'ttl')
  local abandon, rate = tonumber(q[1] or '0'), tonumber(q[2] or '0')
  local tokens
  if rate > 0 then
    tokens = math.min(rate, tonumber(q[3] or '0') + (now - tonumber(q[4] or '0')) * rate / 1000)
    slots = math.min(slots, math.floor(tokens))
  end
  local ttl = tonumber(q[5] or '0')
  local admitted = 0
  while slots > 0 and admitted < batch do
    local head = redis.call('ZPOPMIN', K_QUEUE_WAIT)
    if #head == 0 then break end
    local n = tonumber(head[1])
    local t = read_ticket(n)
    if t and now - t.seen > abandon then
      set_ticket_state(n, 'l')
      redis.call('HINCRBY', K_QUEUE, 'q_left', 1)
    elseif t then
      set_ticket_state(n, 'a')
      redis.call('ZADD', K_QUEUE_ADM, now + ttl, head[1])
      slots, admitted = slots - 1, admitted + 1
    end
  end
  if rate > 0 then redis.call('HSET', K_QUEUE, 'tokens', tokens - admitted, 'tokens_at', now) end
  if admitted > 0 then count_admissions(now, admitted) end
  return admitted
end

-- Whether `admission` (ticket number, ':', the 8-byte token secret) admits `customer` now. Returns the ticket
-- number, or nil and the reason: missing, invalid, expired, used.
local function check_admission(admission, customer, now)
  if admission == '' then return nil, 'missing' end
  local sep = string.find(admission, ':', 1, true)
  if not sep then return nil, 'invalid' end
  local n = tonumber(string.sub(admission, 1, sep - 1))
  if not n or n < 1 or n ~= math.floor(n) then return nil, 'invalid' end
  local t = read_ticket(n)
  if not t or t.token ~= string.sub(admission, sep + 1) then return nil, 'invalid' end
  if t.owned and redis.call('HGET', K_QUEUE_SUBS, customer) ~= tostring(n) then return nil, 'invalid' end
  if t.state == 'u' then return nil, 'used' end
  if t.state ~= 'a' then return nil, 'expired' end
  local expires = tonumber(redis.call('ZSCORE', K_QUEUE_ADM, n) or '0')
  if now >= expires then return nil, 'expired' end
  return n
end

-- The admission bought its hold: the ticket is used, its place in the admitted set is free.
local function use_admission(n)
  set_ticket_state(n, 'u')
  redis.call('ZREM', K_QUEUE_ADM, n)
  redis.call('HINCRBY', K_QUEUE, 'q_used', 1)
end

local TICKET_STATE = { w = 'waiting', a = 'admitted', u = 'used', e = 'expired', l = 'left' }

-- What a ticket's holder sees (queue_join, queue_poll): {status, created, number, secret, state, position
-- (0 before the start, and unless waiting), joined ms, admission expires ms (0 unless admitted), admission
-- token secret ('' unless admitted), now, sale starts ms, available, admitted and unused, admissions in the
-- rate window, the window's ms, rate cap (0 none)}
local function ticket_view(status, created, n, t, now)
  local c = redis.call('HMGET', K_PRODUCT, 'available', 'held', 'pending', 'starts')
  for i = 1, 4 do c[i] = tonumber(c[i] or '0') end
  local starts = c[4]
  local state, position, expires, token = TICKET_STATE[t.state], 0, 0, ''
  if t.state == 'w' then
    if starts == 0 or now >= starts then position = redis.call('ZRANK', K_QUEUE_WAIT, n) + 1 end
    -- Sold out for good unless units return: nothing available, held or pending.
    if c[1] == 0 and c[2] == 0 and c[3] == 0 then state = 'sold_out' end
  elseif t.state == 'a' then
    expires, token = tonumber(redis.call('ZSCORE', K_QUEUE_ADM, n)), t.token
  end
  local w = redis.call('HMGET', K_QUEUE, 'win_at', 'win_n', 'win_prev', 'rate')
  local win_at = tonumber(w[1] or '0')
  local recent, window = 0, RATE_WINDOW_MS
  if win_at > 0 and now - win_at < 2 * RATE_WINDOW_MS then
    recent, window = tonumber(w[2] or '0') + tonumber(w[3] or '0'), now - win_at + RATE_WINDOW_MS
  end
  return { status, created, n, t.secret, state, position, t.joined, expires, token, now, starts,
           c[1], redis.call('ZCARD', K_QUEUE_ADM), recent, window, tonumber(w[4] or '0') }
end

-- One join, for queue_join.lua and queue_join_batch.lua (contract and reply in queue_join.lua). The product
-- exists, its room is on and its sale has not ended.
local function join_ticket(secret, token, buyer, now, batch, every)
  if buyer ~= '' then
    local mine = redis.call('HGET', K_QUEUE_SUBS, buyer)
    local n = mine and tonumber(mine)
    local t = n and read_ticket(n)
    if t and t.state == 'w' then touch_ticket(n, now) end
    if queue_upkeep(now, batch, every, t and admission_lapsed(n, t, now)) and t then t = read_ticket(n) end
    if t and t.state ~= 'l' and t.state ~= 'e' then
      if queue_admit(now, batch) > 0 then t = read_ticket(n) end
      return ticket_view('ok', 0, n, t, now)
    end
  else
    queue_upkeep(now, batch, every, false)
  end

  local n = redis.call('HINCRBY', K_QUEUE, 'seq', 1)
  local score = PRE_QUEUE_SPAN + n
  if not sale_started(now) then
    local seed = redis.call('HGET', K_QUEUE, 'seed')
    score = tonumber(string.sub(redis.sha1hex(seed .. ':' .. n), 1, 13), 16)
    redis.call('HSET', K_QUEUE, 'pre_last', n)
  end
  redis.call('SETRANGE', K_QUEUE_TAB, n * QUEUE_RECORD,
    secret .. token .. ms_bytes(now) .. ms_bytes(now) .. 'w' .. (buyer ~= '' and '1' or '0'))
  redis.call('ZADD', K_QUEUE_WAIT, score, n)
  if buyer ~= '' then redis.call('HSET', K_QUEUE_SUBS, buyer, n) end
  redis.call('HINCRBY', K_QUEUE, 'q_joined', 1)
  queue_admit(now, batch)
  return ticket_view('ok', 1, n, read_ticket(n), now)
end

-- Why nobody may join now: {'product_not_found'} | {'queue_off'} | {'sale_not_active', starts, ends, now}; nil
-- if anyone may.
local function join_refused(now)
  if not product_exists() then return { 'product_not_found' } end
  if not queue_on() then return { 'queue_off' } end
  local ends = counter('ends')
  if ends > 0 and now >= ends then return { 'sale_not_active', counter('starts'), ends, now } end
  return nil
end

-- One poll of ticket n, for queue_poll.lua and queue_poll_batch.lua (contract and reply in queue_poll.lua). The
-- product exists and its room is on. The ticket is touched before the upkeep, so its own poll never drops it.
local function poll_ticket(n, secret, owner, now, batch, every)
  local t = read_ticket(n)
  if not t or t.secret ~= secret or not ticket_owned_by(n, t, owner) then return { 'ticket_not_found' } end
  if t.state == 'w' then touch_ticket(n, now) end
  if queue_upkeep(now, batch, every, admission_lapsed(n, t, now)) then t = read_ticket(n) end
  if queue_admit(now, batch) > 0 then t = read_ticket(n) end
  return ticket_view('ok', 0, n, t, now)
end

-- One reserve, for reserve.lua and reserve_batch.lua (contract and reply in reserve.lua). `admission` is
-- the waiting room's ticket number, ':', and its admission token secret ('' for none). The product
-- exists and reap_due has run at `now`; `state.full` says whether its last pass stopped at a limit (more
-- may be due), and `state.pruned` whether this call has pruned tombstones yet.
local function reserve_one(state, now, batch, qty, ulid, ttl, customer, idem, legacy, admission)
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
  -- A product with a waiting room sells only to an admitted ticket, one hold per admission.
  local ticket
  if queue_on() then
    local reason
    ticket, reason = check_admission(admission, customer, now)
    if not ticket then return { 'admission_required', reason } end
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
  add_available(-qty, now)
  redis.call('HINCRBY', K_PRODUCT, 'held', qty)
  if customer ~= '' then redis.call('HINCRBY', K_CUSTOMERS, customer, qty) end
  write_hold(ulid, h)
  count('n_holds')
  if ticket then use_admission(ticket) end
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

-- Put the product's waiting room as the operator set it (set_stock.lua, restore.lua), from the six ARGV at `a`:
-- on (1/0), admissions a second at most (0 = no cap), admission ttl ms, a new secret seed (hex), its SHA-256,
-- ms without a poll after which a waiting ticket is dropped. Opening the room starts it empty with that seed;
-- keeping it open keeps its tickets and its seed; closing it drops them.
local function put_room(a, now)
  if ARGV[a] == '1' then
    if not queue_on() then
      redis.call('DEL', K_QUEUE, K_QUEUE_WAIT, K_QUEUE_ADM, K_QUEUE_TAB, K_QUEUE_SUBS)
      redis.call('HSET', K_QUEUE, 'on', 1, 'opened', now, 'seed', ARGV[a + 3], 'seed_sha256', ARGV[a + 4], 'seq', 0)
    end
    redis.call('HSET', K_QUEUE, 'rate', ARGV[a + 1], 'ttl', ARGV[a + 2], 'abandon', ARGV[a + 5])
  elseif queue_on() then
    redis.call('DEL', K_QUEUE, K_QUEUE_WAIT, K_QUEUE_ADM, K_QUEUE_TAB, K_QUEUE_SUBS)
  end
end
