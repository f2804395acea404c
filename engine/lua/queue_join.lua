-- queue_join: a buyer joins a product's waiting room and gets a ticket (docs/waiting-room.md).
-- Before the sale starts, the ticket's place is its draw key (a hash of the room's secret seed and its number);
-- after it, its place is its number: first come, first served, in the order Redis ran the joins.
-- Like queue_poll, it admits the next waiters and, at most once every few ms per product, runs the room's upkeep.
-- KEYS: the product's sixteen keys (see _prelude.lua).
-- outbox: hold_expired, order_cancelled, product_stock
-- ARGV[1] ticket secret (8 bytes)   ARGV[2] admission token secret (8 bytes)
-- ARGV[3] buyer ('' for none: every join is a new ticket; else the buyer's ticket, while not left or expired)
-- ARGV[4] reap batch size   ARGV[5] upkeep interval ms
-- returns ticket_view('ok', created (0/1), ...) (see _prelude.lua) | {'product_not_found'} | {'queue_off'}
--       | {'sale_not_active', starts, ends, now}
local secret, token, buyer = ARGV[1], ARGV[2], ARGV[3]
local batch, every = tonumber(ARGV[4]), tonumber(ARGV[5])

if not product_exists() then return { 'product_not_found' } end
if not queue_on() then return { 'queue_off' } end
local now = now_ms()
local ends = counter('ends')
if ends > 0 and now >= ends then return { 'sale_not_active', counter('starts'), ends, now } end

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
