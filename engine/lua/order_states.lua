-- order_states: the status of many orders of one product, as stored; reads only (nothing expires here).
-- KEYS: the product's sixteen keys (see _prelude.lua).
-- outbox: nothing
-- ARGV[1..n] order ulids
-- returns {status or '' (unknown to the engine), ...}, in ARGV's order; status is pending, paid or cancelled
local out = {}
for i = 1, #ARGV do
  local o = read_order(ARGV[i])
  out[i] = o and ORDER_STATUS[o.state] or ''
end
return out
