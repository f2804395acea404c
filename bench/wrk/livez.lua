-- livez: GET /livez, the ceiling the HTTP stack puts on any endpoint.
-- args: BENCH_WRK_DIR
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
wrk.method = "GET"
wrk.path = "/livez"
