-- claim_transaction: bind a transaction id to one order for the whole sale, before any product settles it.
-- Sale-wide, so it lives outside every product's slot and takes no prelude: its one key is hash-tagged from
-- the transaction id itself (engine/ids.py escapes '{' and '}'), so any Redis Cluster node may hold it.
-- KEYS[1] claim   string  "order id|c" (confirmed: PostgreSQL has no other order for it) or "order id|p" (provisional)
-- KEYS[2] (one Redis only; absent on a cluster) the claim store's completeness mark   string  a server's run id:
--   while it names this server, every id PostgreSQL records is claimed here, so an id without a claim is new and
--   its claim is confirmed at once (engine/keys.py CLAIMS_COMPLETE_KEY). A restart or a failover changes the run
--   id, so a server that may have lost claims never trusts the mark it inherited.
-- outbox: nothing
-- ARGV[1] order id   ARGV[2] retention ms   ARGV[3] mode:
--   'claim'    take the id for the order if nobody holds it (provisional until confirmed);
--   'confirm'  PostgreSQL knows no other order for it: mark the order's claim confirmed;
--   'record'   PostgreSQL says the id belongs to this order: a provisional claim of another order yields.
-- returns {'claimed', confirmed (0/1)}    the id was free (Redis had no record of it): now the order's
--       | {'held', confirmed (0/1)}       the order already held it
--       | {'taken', other order id, confirmed (0/1)}   another order holds it: refuse
local K_CLAIM = KEYS[1]
local K_MARK = KEYS[2]
local order = ARGV[1]
local retention = tonumber(ARGV[2])
local mode = ARGV[3]

-- The mark names this very server (INFO may be refused, as by a Redis emulation: then it vouches for nothing).
local function store_complete()
  local mark = K_MARK and redis.call('GET', K_MARK)
  if not mark then return false end
  local info = redis.pcall('INFO', 'server')
  return type(info) == 'string' and string.match(info, 'run_id:(%x+)') == mark
end

local raw = redis.call('GET', K_CLAIM)
if not raw then
  local state = (mode ~= 'claim' or store_complete()) and 'c' or 'p'
  redis.call('SET', K_CLAIM, order .. '|' .. state, 'PX', retention)
  return { 'claimed', state == 'c' and 1 or 0 }
end

local bar = string.find(raw, '|', 1, true)
local holder, confirmed = string.sub(raw, 1, bar - 1), string.sub(raw, bar + 1) == 'c'
if holder == order then
  if mode ~= 'claim' and not confirmed then
    redis.call('SET', K_CLAIM, order .. '|c', 'KEEPTTL')
    confirmed = true
  end
  return { 'held', confirmed and 1 or 0 }
end
if mode == 'record' and not confirmed then
  redis.call('SET', K_CLAIM, order .. '|c', 'PX', retention)
  return { 'held', 1 }
end
return { 'taken', holder, confirmed and 1 or 0 }
