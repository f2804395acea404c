-- queue_poll: a ticket's holder asks where it stands. Polling keeps the ticket (one not polled for 60 s is
-- dropped), admits the next waiters to what can be sold, and, at most once every few ms per product, runs the
-- room's upkeep: lapsed holds give their units back, lapsed admissions expire (queue_upkeep).
-- KEYS: the product's sixteen keys (see _prelude.lua).
-- outbox: hold_expired, order_cancelled, product_stock
-- ARGV[1] ticket number   ARGV[2] ticket secret (8 bytes)   ARGV[3] reap batch size
-- ARGV[4] the verified buyer asking ('' for anyone): a buyer's ticket answers its own buyer only
-- ARGV[5] upkeep interval ms
-- returns ticket_view('ok', 0, ...) (see _prelude.lua) | {'ticket_not_found'} (also: another buyer's)
if not product_exists() or not queue_on() then return { 'ticket_not_found' } end
return poll_ticket(tonumber(ARGV[1]), ARGV[2], ARGV[4], now_ms(), tonumber(ARGV[3]), tonumber(ARGV[5]))
