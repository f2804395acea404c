-- restore: rebuild one product's Redis state from the durable record (PostgreSQL).
-- Holds are lost; orders, transactions and customer quotas are put back, and the catalog's settings: the sale,
-- the low-stock threshold and the waiting room (put_room: a room Redis still has keeps its tickets and its seed;
-- one Redis lost opens again, empty, with the new seed). Running it twice has one effect.
-- Refused while the outbox still holds events PostgreSQL has not learnt, and when any event was appended
-- after the mark (outbox_mark.lua) read before the snapshot: even one drained since, the snapshot may miss it.
-- KEYS: the product's sixteen keys (see _prelude.lua).
-- outbox: nothing
-- ARGV[1] total   ARGV[2] price cents   ARGV[3] max per customer   ARGV[4] starts ms   ARGV[5] ends ms
-- ARGV[6] units sold   ARGV[7] n orders   ARGV[8] n transactions   ARGV[9] n customers
-- ARGV[10] the outbox's last generated id when the snapshot was taken
-- ARGV[11..16] the waiting room, as set_stock's ARGV[7..12]: on (1/0), admissions a second (0 = no cap),
--   admission ttl ms, a new secret seed (hex, taken only if the room opens), its SHA-256, abandonment ms
-- ARGV[17] low-stock threshold (0 = none), then:
--   n orders × 10:      ulid, state (p|d|c), qty, amount, created ms, expires ms, hold ulid, closed ms, note, customer
--   n transactions × 4: transaction id, order ulid, result, applied (0/1)
--   n customers × 2:    customer id, units
-- returns {'ok', total, available, held, pending, sold} | {'outbox_not_empty', length}
--       | {'outbox_moved', last generated id} | {'stock_below_committed', committed}
local total, sold = tonumber(ARGV[1]), tonumber(ARGV[6])
local n_orders, n_txns, n_customers = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])

local backlog = redis.call('XLEN', K_OUTBOX)
if backlog > 0 then return { 'outbox_not_empty', backlog } end
local last_id = outbox_last_id()
if last_id ~= ARGV[10] then return { 'outbox_moved', last_id } end

local FIRST = 18  -- the first ARGV of the orders
local pending, i = 0, FIRST
for _ = 1, n_orders do
  if ARGV[i + 1] == 'p' then pending = pending + tonumber(ARGV[i + 2]) end
  i = i + 10
end
if total < pending + sold then return { 'stock_below_committed', pending + sold } end

local now = now_ms()
redis.call('DEL', K_HOLDS, K_HOLD_EXP, K_HOLD_QUEUE, K_ORDERS, K_ORDER_EXP, K_TXNS, K_CUSTOMERS, K_IDEM, K_TOMBS)
redis.call('HSET', K_PRODUCT, 'total', total, 'available', total - pending - sold, 'held', 0,
  'pending', pending, 'sold', sold, 'price', ARGV[2], 'limit', ARGV[3], 'starts', ARGV[4], 'ends', ARGV[5],
  'queued_until', 0, 'low', ARGV[17])
put_room(11, now)

i = FIRST
for _ = 1, n_orders do
  local ulid = ARGV[i]
  local o = { state = ARGV[i + 1], qty = ARGV[i + 2], amount = ARGV[i + 3], created = ARGV[i + 4],
              expires = ARGV[i + 5], hold = ARGV[i + 6], closed = ARGV[i + 7], note = ARGV[i + 8],
              customer = ARGV[i + 9] }
  write_order(ulid, o)
  if o.state == 'p' then
    redis.call('ZADD', K_ORDER_EXP, o.expires, ulid)
  else
    tomb('o:' .. ulid, math.max(now, tonumber(o.closed)) + TOMB_MS)
  end
  -- The hold behind a restored order answers "already used", as it did before the loss, and, while the
  -- order is pending, replays it to a retried convert (retire_hold dates it when the order closes).
  redis.call('HSET', K_HOLDS, o.hold, 'c|' .. o.qty .. '|' .. o.created .. '|' .. ulid .. '|' .. o.customer)
  tomb('h:' .. o.hold, (o.state == 'p' and math.max(now, tonumber(o.expires)) or now) + TOMB_MS)
  i = i + 10
end
for _ = 1, n_txns do
  redis.call('HSET', K_TXNS, ARGV[i], ARGV[i + 1] .. '|' .. ARGV[i + 2] .. '|' .. ARGV[i + 3])
  tomb('t:' .. ARGV[i], now + TXN_TOMB_MS)
  i = i + 4
end
for _ = 1, n_customers do
  redis.call('HSET', K_CUSTOMERS, ARGV[i], ARGV[i + 1])
  i = i + 2
end
local c = counters()
return { 'ok', c[1], c[2], c[3], c[4], c[5] }
