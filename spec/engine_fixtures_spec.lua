-- The three REX fixtures run through `build*/rex-worker run`, compared with what the original
-- persisted (../shared/fixtures/rex-workflows/original-persisted-rows.json): step statuses, order,
-- errors, inputs and outputs (without timestamps, ids and durations), attempt records, the
-- execution status and message, snapshot count and final context. w1 runs with its transformer
-- expression rewritten in Lua (spec/fixtures/w1-oracle-pipeline-branch-lua.json).
local json = require("rex.json")

-- shared/ sits beside the repository (as in CI); REX_FIXTURES names another copy
local FIXTURES = os.getenv("REX_FIXTURES") or "../shared/fixtures/rex-workflows"

local function find_binary()
    for _, p in ipairs({ os.getenv("REX_WORKER_BIN") or "", "build/rex-worker",
                         "build-engine/rex-worker" }) do
        if p ~= "" then
            local f = io.open(p)
            if f then
                f:close()
                return p
            end
        end
    end
end

local function read(path)
    local f = assert(io.open(path))
    local s = f:read("*a")
    f:close()
    return s
end

local VOLATILE = { timestamp = true, collectedAt = true, ingestedAt = true, durationMs = true,
                   corpusId = true, documentId = true, chunkId = true, executionId = true,
                   updatedAt = true, startedAt = true, capturedAt = true, readAt = true,
                   evaluatedAt = true, storedAt = true }

-- Copies v without volatile keys (and without the retrieved matches, whose ranking belongs to
-- the knowledge runtime and whose corpus differed in the original run).
local function normalize(v, drop_matches)
    if type(v) ~= "table" then
        return v
    end
    local out = {}
    for k, x in pairs(v) do
        if not VOLATILE[k] and not (drop_matches and k == "matches") then
            out[k] = normalize(x, drop_matches)
        end
    end
    return out
end

-- Runs a command; returns stdout and the exit code (LuaJIT's popen close has no status). Without
-- DATABASE_URL, whatever the caller's environment: the fixtures' knowledge is `run`'s in-memory
-- store (with DATABASE_URL, `run` would use PostgreSQL's).
local function sh(cmd)
    local p = io.popen("env -u DATABASE_URL " .. cmd .. ' 2>/dev/null; echo "__EXIT:$?"')
    local out = p:read("*a")
    p:close()
    local code = tonumber(out:match("__EXIT:(%d+)%s*$"))
    return out:gsub("__EXIT:%d+%s*$", ""), code
end

local function run_fixture(bin, path)
    local out, code = sh(("%s run %s"):format(bin, path))
    local res = assert(json.decode(out), "rex-worker run printed no JSON for " .. path)
    return res, code
end

local bin = find_binary()
local rows = io.open(FIXTURES .. "/original-persisted-rows.json")
    and json.decode(read(FIXTURES .. "/original-persisted-rows.json"))

describe("REX fixtures through rex-worker run", function()
    if not bin then
        pending("build the binary first (cmake --build build-engine): rex-worker not found")
        return
    end
    if not rows then
        pending("fixtures not found at " .. FIXTURES)
        return
    end

    local cases = {
        { name = "w1-oracle-pipeline-branch", file = "spec/fixtures/w1-oracle-pipeline-branch-lua.json",
          exit = 0 },
        { name = "w2-oracle-knowledge", file = FIXTURES .. "/w2-oracle-knowledge.json", exit = 0,
          drop_matches = true },
        { name = "w4-oracle-failing-retry", file = FIXTURES .. "/w4-oracle-failing-retry.json",
          exit = 1 },
    }

    for _, c in ipairs(cases) do
        describe(c.name, function()
            local orig = rows[c.name]
            local res, code = run_fixture(bin, c.file)

            it("ends with the original's status, message and exit code", function()
                assert.equal(orig.execution.status, res.status)
                local em = orig.execution.error_message
                assert.equal(em == nil and json.null or em, res.errorMessage)
                assert.equal(c.exit, code)
            end)

            it("has the original's steps in order with the same statuses and errors", function()
                assert.equal(#orig.steps, #res.steps)
                for i, s in ipairs(orig.steps) do
                    local r = res.steps[i]
                    assert.equal(s.node_id, r.nodeId)
                    assert.equal(s.node_type, r.nodeType)
                    assert.equal(s.status, r.status)
                    assert.equal(s.error == nil and json.null or s.error, r.error)
                end
            end)

            it("has the original's step inputs and outputs", function()
                for i, s in ipairs(orig.steps) do
                    local r = res.steps[i]
                    assert.same(normalize(s.input, c.drop_matches), normalize(r.input, c.drop_matches))
                    if s.output == nil then
                        assert.equal(json.null, r.output)
                    else
                        assert.same(normalize(s.output, c.drop_matches),
                            normalize(r.output, c.drop_matches))
                    end
                end
            end)

            it("records the original's attempts", function()
                local got = {}
                for _, r in ipairs(res.steps) do
                    if type(r.output) == "table" and r.output._attempts then
                        for _, a in ipairs(r.output._attempts) do
                            got[#got + 1] = { node_id = r.nodeId, attempt = a.attempt,
                                              status = a.status, reason = a.reason }
                        end
                    end
                end
                local want = {}
                for i, a in ipairs(orig.attempts) do
                    want[i] = { node_id = a.node_id, attempt = a.attempt, status = a.status,
                                reason = a.reason == nil and json.null or a.reason }
                end
                assert.same(want, got)
            end)

            it("takes as many snapshots and ends with the same context", function()
                assert.equal(#orig.snapshots, res.snapshots)
                local final = orig.snapshots[#orig.snapshots].state
                assert.equal(final.version, res.context.version)
                assert.same(final.control, res.context.control)
                assert.same(normalize(final.knowledge, true), normalize(res.context.knowledge, true))
                local keys, rkeys = {}, {}
                for k in pairs(final.memory) do
                    keys[#keys + 1] = k
                end
                for k in pairs(res.context.memory) do
                    rkeys[#rkeys + 1] = k
                end
                table.sort(keys)
                table.sort(rkeys)
                assert.same(keys, rkeys)
                assert.same(normalize(final.memory["retry.lastOutcome"]),
                    normalize(res.context.memory["retry.lastOutcome"]))
                local rs = final.retrieval
                assert.equal(rs.totalRequests, res.context.retrieval.totalRequests)
                assert.equal(rs.totalSuccesses, res.context.retrieval.totalSuccesses)
            end)
        end)
    end

    it("w2 ingests three chunks and retrieves the refund chunk first", function()
        local res = run_fixture(bin, FIXTURES .. "/w2-oracle-knowledge.json")
        local out = res.steps[3].output
        assert.equal(3, out._knowledgeIngestion.documents[1].chunkCount)
        assert.equal("# Refund Policy Customers may request a refund within 30 days of purchase.",
            out._knowledge.matches[1].content)
    end)

    it("rejects the original w1 (JavaScript expression) at validation with exit 2", function()
        local out, code = sh(("%s validate %s/w1-oracle-pipeline-branch.json"):format(bin,
            FIXTURES))
        assert.equal(2, code)
        local v = json.decode(out)
        assert.is_false(v.valid)
        assert.matches("Lua, not JavaScript", v.problems[1])
    end)
end)
