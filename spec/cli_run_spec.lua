-- `rex-worker run` and `rex-worker validate` (interface.md): exit codes, stdout JSON, stderr
-- timeline. Needs the binary (build-engine/ or build/).
local json = require("rex.json")

local function find_binary()
    for _, p in ipairs({ os.getenv("REX_WORKER_BIN") or "", "build/rex-worker",
                         "build-engine/rex-worker" }) do
        if p ~= "" and io.open(p) then
            return p
        end
    end
end

local function sh(cmd)
    local errf = os.tmpname()
    local p = io.popen(cmd .. " 2>" .. errf .. '; echo "__EXIT:$?"')
    local out = p:read("*a")
    p:close()
    local f = io.open(errf)
    local err = f:read("*a")
    f:close()
    os.remove(errf)
    local code = tonumber(out:match("__EXIT:(%d+)%s*$"))
    return out:gsub("__EXIT:%d+%s*$", ""), code, err
end

local bin = find_binary()

describe("rex-worker run / validate", function()
    if not bin then
        pending("build the binary first: rex-worker not found")
        return
    end

    it("runs an example: result JSON on stdout, timeline on stderr, exit 0", function()
        local out, code, err = sh(bin .. " run examples/order-pipeline.json")
        assert.equal(0, code)
        local r = json.decode(out)
        assert.equal("completed", r.status)
        assert.equal(json.null, r.errorMessage)
        assert.equal("gold", r.output.tier)
        assert.equal(8, #r.steps)
        assert.matches("ok   trigger", err)
        assert.matches("skip reject .* No parent branch satisfied edge conditions", err)
    end)

    it("takes --input as JSON or @FILE", function()
        local out, code = sh(bin .. [[ run examples/order-pipeline.json --input '{"customer":"B","amount":"5"}']])
        assert.equal(0, code)
        assert.equal("skipped", json.decode(out).steps[7].status)
        local f = os.tmpname()
        local h = io.open(f, "w")
        h:write('{"customer":"C","amount":"500"}')
        h:close()
        local out2 = sh(bin .. " run examples/order-pipeline.json --input @" .. f)
        os.remove(f)
        assert.equal("C", json.decode(out2).output.customer)
        local _, code3, err3 = sh(bin .. " run examples/order-pipeline.json --input '{bad'")
        assert.equal(2, code3)
        assert.matches("not valid JSON", err3)
    end)

    it("exits 1 when the execution fails and 2 on usage errors", function()
        local wf = os.tmpname()
        local h = io.open(wf, "w")
        h:write([[{"nodes":[{"id":"c","type":"code","config":{"code":"error('boom')"}}],"edges":[]}]])
        h:close()
        local out, code = sh(bin .. " run " .. wf)
        assert.equal(1, code)
        assert.matches('^Node "c" %(code%) failed: Code execution failed: ', json.decode(out).errorMessage)
        os.remove(wf)
        local _, c2 = sh(bin .. " run")
        assert.equal(2, c2)
        local _, c3 = sh(bin .. " run /nonexistent.json")
        assert.equal(2, c3)
    end)

    it("validates: exit 0 valid, 2 with every problem listed", function()
        local out, code = sh(bin .. " validate examples/code-and-memory.json")
        assert.equal(0, code)
        assert.is_true(json.decode(out).valid)
        local wf = os.tmpname()
        local h = io.open(wf, "w")
        h:write([[{"nodes":[{"id":"a","type":"nope"},{"id":"b","type":"condition","config":{}}],
                   "edges":[{"id":"e","source":"a","target":"zz"}]}]])
        h:close()
        local out2, code2, err2 = sh(bin .. " validate " .. wf)
        os.remove(wf)
        assert.equal(2, code2)
        local v = json.decode(out2)
        assert.equal(3, #v.problems)
        assert.matches("unknown target node", v.problems[1])
        assert.matches("invalid workflow %(3 problems%)", err2)
    end)
end)
