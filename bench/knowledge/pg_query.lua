-- Top-8 retrieval from PostgreSQL through the worker's knowledge runtime (rex.knowledge.pg), one
-- corpus: cold (the process cache emptied: the corpus is read from PostgreSQL and its vectors
-- recomputed) and warm (cached), with the int8 scan + exact rescore (default) and the float32
-- scan. A warm query is two round trips (corpora in scope with their versions, then the rows of
-- the top chunks) plus the scan, timed apart as "scan". Prints one JSON line.
--   DATABASE_URL=... rex-worker lua bench/knowledge/pg_query.lua CORPUS_ID USER_ID [cold-runs=3]
local rex = require("rex")
local store = require("rex.store")
local kn = require("rex.knowledge")
local kpg = require("rex.knowledge.pg")

local corpus_id, user_id = arg[1], arg[2]
local cold_runs = tonumber(arg[3]) or 3
local QUERY = "how long does the warranty cover battery defects after delivery"
local db = assert(store.connect())
local loads = {}
local function log(level, msg, fields)
    if msg == "Knowledge corpus loaded" then
        loads[#loads + 1] = fields
    end
end
local function runtime(exact)
    return kpg.new(db, { log = log, retrieval = false, exact = exact })
end
local p = { userId = user_id, corpusId = corpus_id, query = QUERY, topK = 8 }
local clock = rex.monotonic_ms

local function median(t)
    table.sort(t)
    return t[math.floor((#t + 1) / 2)]
end

local function invalidate()
    kpg.cache():invalidate(corpus_id .. "#rex-lex-v1-1536")
end

local out = { corpus = corpus_id, kernel = kn.kernel() }
local k = runtime(false)
local cold = {}
for i = 1, cold_runs do
    invalidate()
    local t = clock()
    assert(#k:retrieve(p).matches == 8)
    cold[i] = clock() - t
end
out.cold_ms = median(cold)
out.chunks = loads[#loads].chunks
out.cache_mb = loads[#loads].bytes / 1048576
out.cold_fetch_ms = loads[#loads].fetchMs
for _, exact in ipairs({ false, true }) do
    local r = runtime(exact)
    local warm = {}
    for i = 1, 21 do
        local t = clock()
        r:retrieve(p)
        warm[i] = clock() - t
    end
    local snap = kpg.cache():get(corpus_id .. "#rex-lex-v1-1536", r:_scope_corpora(p, nil, nil,
        nil)[1].version)
    local scan = {}
    for i = 1, 21 do
        local t = clock()
        assert(kn.search({ snap }, QUERY, { topK = 8, exact = exact }))
        scan[i] = clock() - t
    end
    local key = exact and "f32" or "int8"
    out["warm_" .. key .. "_ms"] = median(warm)
    out["scan_" .. key .. "_ms"] = median(scan)
end
print(rex.json.encode(out))
