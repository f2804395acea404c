-- queue_leave: a ticket's holder leaves the waiting room; a waiting place or an unused admission goes to the
-- next waiter. Leaving twice, or after the ticket was used or expired, changes nothing.
-- KEYS: the product's sixteen keys (see _prelude.lua).
-- outbox: nothing
-- ARGV[1] ticket number   ARGV[2] ticket secret (8 bytes)
-- ARGV[3] the verified buyer asking ('' for anyone): a buyer's ticket answers its own buyer only
-- returns {'ok', state after} | {'ticket_not_found'} (also: another buyer's)
local n, secret = tonumber(ARGV[1]), ARGV[2]

if not product_exists() or not queue_on() then return { 'ticket_not_found' } end
local t = read_ticket(n)
if not t or t.secret ~= secret or not ticket_owned_by(n, t, ARGV[3]) then return { 'ticket_not_found' } end
if t.state == 'w' or t.state == 'a' then
  if t.state == 'w' then redis.call('ZREM', K_QUEUE_WAIT, n) else redis.call('ZREM', K_QUEUE_ADM, n) end
  set_ticket_state(n, 'l')
  redis.call('HINCRBY', K_QUEUE, 'q_left', 1)
  return { 'ok', 'left' }
end
return { 'ok', TICKET_STATE[t.state] }
