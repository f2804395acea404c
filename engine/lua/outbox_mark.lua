-- outbox_mark: where the product's outbox stands, read before a snapshot of PostgreSQL that restore will use.
-- A restore given this mark is refused if any event was appended after it (see restore.lua).
-- KEYS: the product's sixteen keys (see _prelude.lua).
-- outbox: nothing
-- ARGV: none
-- returns {length, last generated id}
return { redis.call('XLEN', K_OUTBOX), outbox_last_id() }
