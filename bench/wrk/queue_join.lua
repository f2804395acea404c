-- queue_join: POST /api/products/PRODUCT/queue, each a new ticket (buyer tokens off).
-- args: PRODUCT
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local path = "/"

function init(args)
  path = "/api/products/" .. args[1] .. "/queue"
end

function request()
  return wrk.format("POST", path)
end
