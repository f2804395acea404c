-- queue_poll: GET /api/queue/TICKET, each connection cycling through the tickets listed in FILE (one a line).
-- args: FILE
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local tickets, n = {}, 0

function init(args)
  for line in io.lines(args[1]) do tickets[#tickets + 1] = line end
  n = thread_id * 7919
end

function request()
  n = n + 1
  return wrk.format("GET", "/api/queue/" .. tickets[n % #tickets + 1])
end
