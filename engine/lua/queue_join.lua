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
local now = now_ms()
local refused = join_refused(now)
if refused then return refused end
return join_ticket(ARGV[1], ARGV[2], ARGV[3], now, tonumber(ARGV[4]), tonumber(ARGV[5]))
