-- holds_paced: holds.lua, but each connection waits PAUSE ms on average (uniformly 0 to 2 PAUSE, so that
-- connections do not move in step) after every answer before its next request: many connections offering
-- a load below the server's capacity (latency when not saturated).
-- args: FIRST LAST PAUSE_MS
dofile(os.getenv("BENCH_WRK_DIR") .. "/holds.lua")
local holds_init = init
local pause = 0

function init(args)
  holds_init(args)
  pause = tonumber(args[3])
end

function delay()
  return math.random(0, 2 * pause)
end
