-- queue_poll_batch: polls of one product's tickets in one call (engine.coalesce), each answered as queue_poll.lua
-- would have answered it had the polls been made in turn; a ticket not found fails its own poll only. The
-- room's upkeep runs at most once for the lot.
-- KEYS: the product's sixteen keys (see _prelude.lua).
-- outbox: hold_expired, order_cancelled, product_stock
-- ARGV[1] reap batch size   ARGV[2] upkeep interval ms   ARGV[3] polls
-- then per poll: ticket number, ticket secret (8 bytes), the verified buyer asking ('' for anyone)
-- returns {queue_poll.lua's reply, ...}: one per poll, in order
local batch, every, count = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])

local on = product_exists() and queue_on()
local now = now_ms()
local out = {}
for i = 1, count do
  local b = 3 * i
  if on then
    out[i] = poll_ticket(tonumber(ARGV[b + 1]), ARGV[b + 2], ARGV[b + 3], now, batch, every)
  else
    out[i] = { 'ticket_not_found' }
  end
end
return out
