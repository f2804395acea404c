-- queue_poll: a ticket's holder asks where it stands. Polling keeps the ticket (one not polled for 60 s is
-- dropped), and moves the room on: lapsed holds give their units back, lapsed admissions expire, and the next
-- waiters are admitted to what can be sold.
-- KEYS: the product's sixteen keys (see _prelude.lua).
-- outbox: hold_expired, order_cancelled, product_stock
-- ARGV[1] ticket number   ARGV[2] ticket secret (8 bytes)   ARGV[3] reap batch size
-- ARGV[4] the verified buyer asking ('' for anyone): a buyer's ticket answers its own buyer only
-- returns ticket_view('ok', 0, ...) (see _prelude.lua) | {'ticket_not_found'} (also: another buyer's)
local n, secret = tonumber(ARGV[1]), ARGV[2]
local batch = tonumber(ARGV[3])

if not product_exists() or not queue_on() then return { 'ticket_not_found' } end
local t = read_ticket(n)
if not t or t.secret ~= secret or not ticket_owned_by(n, t, ARGV[4]) then return { 'ticket_not_found' } end
local now = now_ms()
reap_due(now, batch)
if t.state == 'w' then touch_ticket(n, now) end
queue_admit(now, batch)
return ticket_view('ok', 0, n, read_ticket(n), now)
