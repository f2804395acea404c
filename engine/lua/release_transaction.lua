-- release_transaction: give back a claim whose order turned out not to exist anywhere (not in Redis, not in
-- PostgreSQL), so that the transaction id is free for the order it really pays.
-- Sale-wide, without the prelude (see claim_transaction.lua).
-- KEYS[1] claim   string  "order id|c" or "order id|p"
-- outbox: nothing
-- ARGV[1] order id
-- returns 1 when the order's claim was deleted, else 0 (another order's claim, or none)
local K_CLAIM = KEYS[1]
local order = ARGV[1]

local raw = redis.call('GET', K_CLAIM)
if raw and string.sub(raw, 1, #order + 1) == order .. '|' then
  redis.call('DEL', K_CLAIM)
  return 1
end
return 0
