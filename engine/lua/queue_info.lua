-- queue_info: a product's waiting room, as the public and the operators see it; changes nothing.
-- The seed is revealed once the sale has started (the pre-queue is drawn by then); its SHA-256 at once.
-- KEYS: the product's sixteen keys (see _prelude.lua).
-- outbox: nothing
-- ARGV: none
-- returns {'ok', on (0/1), opened ms, seed_sha256, seed ('' before the start), sale starts ms,
--          pre-queue's last ticket number, waiting, admitted and unused, joined, admitted, used, expired,
--          left, rate cap, admission ttl ms, now, available, admissions in the rate window, the window's ms}
--       | {'product_not_found'}
if not product_exists() then return { 'product_not_found' } end
local now = now_ms()
if not queue_on() then return { 'ok', 0 } end
local q = redis.call('HMGET', K_QUEUE, 'opened', 'seed_sha256', 'seed', 'pre_last', 'q_joined', 'q_admitted',
  'q_used', 'q_expired', 'q_left', 'rate', 'ttl', 'win_at', 'win_n', 'win_prev')
local win_at, recent, window = tonumber(q[12] or '0'), 0, RATE_WINDOW_MS
if win_at > 0 and now - win_at < 2 * RATE_WINDOW_MS then
  recent, window = tonumber(q[13] or '0') + tonumber(q[14] or '0'), now - win_at + RATE_WINDOW_MS
end
local seed = sale_started(now) and q[3] or ''
return { 'ok', 1, q[1], q[2], seed, counter('starts'), q[4] or 0, redis.call('ZCARD', K_QUEUE_WAIT),
         redis.call('ZCARD', K_QUEUE_ADM), q[5] or 0, q[6] or 0, q[7] or 0, q[8] or 0, q[9] or 0, q[10], q[11], now,
         counter('available'), recent, window }
