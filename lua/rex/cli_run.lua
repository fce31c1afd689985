-- rex.cli_run: the `rex-worker run` and `rex-worker validate` commands (interface.md).
--   run: result JSON on stdout, a step timeline on stderr; exit 0 completed, 1 failed,
--        2 usage or validation errors.
--   validate: exit 0 valid, 2 invalid, every problem listed.
-- Knowledge is kept in memory (rex.knowledge.memory) when that module is available.
local rex = require("rex")
local util = require("rex.util")
local engine = require("rex.engine")
local nodes = require("rex.nodes")
local hooks = require("rex.hooks")

local json = rex.json
local M = {}

local EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

local function eprint(...)
    io.stderr:write(table.concat({ ... }, ""), "\n")
end

local function read_file(path)
    local f, err = io.open(path, "rb")
    if not f then
        return nil, err
    end
    local s = f:read("*a")
    f:close()
    return s
end

local function load_workflow(path)
    local text, err = read_file(path)
    if not text then
        return nil, ("cannot read %s: %s"):format(path, tostring(err))
    end
    local wf, jerr = json.decode(text)
    if wf == nil then
        return nil, ("%s is not valid JSON: %s"):format(path, tostring(jerr))
    end
    if not util.is_record(wf) then
        return nil, ("%s must hold a JSON object with nodes and edges"):format(path)
    end
    return wf
end

local function parse_input(spec)
    local text = spec
    if spec:sub(1, 1) == "@" then
        local err
        text, err = read_file(spec:sub(2))
        if not text then
            return nil, ("cannot read %s: %s"):format(spec:sub(2), tostring(err))
        end
    end
    local v, err = json.decode(text)
    if v == nil then
        return nil, "--input is not valid JSON: " .. tostring(err)
    end
    if not util.is_record(v) then
        return nil, "--input must be a JSON object"
    end
    return v
end

-- The knowledge runtime for local runs: rex.knowledge.memory when present.
function M.knowledge_runtime(opts)
    local ok, mod = pcall(require, "rex.knowledge.memory")
    local kb, why
    if ok and type(mod) == "table" and type(mod.new) == "function" then
        local cok, inst = pcall(mod.new, opts or {})
        if cok and inst then
            kb = inst
        else
            why = util.error_text(inst)
        end
    else
        why = ok and "rex.knowledge.memory has no new()" or util.error_text(mod)
    end
    if kb then
        return {
            retrieve_knowledge = function(p)
                return kb:retrieve(p)
            end,
            ingest_knowledge = function(p)
                return kb:ingest(p)
            end,
        }, nil
    end
    local msg = "knowledge runtime is not available in this build (rex.knowledge.memory: "
        .. tostring(why) .. ")"
    return {
        retrieve_knowledge = function()
            error(msg, 0)
        end,
        ingest_knowledge = function()
            error(msg, 0)
        end,
    }, msg
end

-- The knowledge runtime when DATABASE_URL is set (interface.md: `run` uses PostgreSQL then):
-- rex.knowledge.pg on the state's connection, connected on first use, as the user
-- REX_RUN_USER_ID (a users row; corpora and documents belong to a user). Provider settings and
-- keys as for the in-memory runtime (REX_EMBEDDING_* / REX_RERANK*, <PROVIDER>_API_KEY).
function M.pg_knowledge_runtime(opts)
    local kn
    local function get()
        if not kn then
            local user = os.getenv("REX_RUN_USER_ID")
            if not user or user == "" then
                error("knowledge in PostgreSQL (DATABASE_URL is set) needs REX_RUN_USER_ID, the "
                    .. "id of a users row", 0)
            end
            local ok, db = pcall(require("rex.store").get)
            if not ok then
                error("knowledge in PostgreSQL: " .. util.error_text(db), 0)
            end
            kn = require("rex.knowledge.pg").new(db, opts):callbacks()
        end
        return kn
    end
    return {
        retrieve_knowledge = function(p)
            return get().retrieve_knowledge(p)
        end,
        ingest_knowledge = function(p)
            return get().ingest_knowledge(p)
        end,
    }
end

-- Provider keys for local runs: <PROVIDER>_API_KEY from the environment.
function M.env_api_key(provider)
    local name = tostring(provider):upper():gsub("[^%w]", "_") .. "_API_KEY"
    local v = os.getenv(name)
    if not v or v == "" then
        error(("No %s API key found for user (set %s)"):format(tostring(provider), name), 0)
    end
    return v
end

local function timeline_line(step)
    local mark = ({ completed = "ok  ", failed = "FAIL", skipped = "skip" })[step.status] or "?   "
    local parts = { ("  %s %-24s %-20s %5d ms"):format(mark, step.nodeId, step.nodeType,
        step.durationMs) }
    local out = step.output
    if type(out) == "table" and type(out._attemptCount) == "number" and out._attemptCount > 1 then
        parts[#parts + 1] = ("  attempts=%d"):format(out._attemptCount)
    end
    if step.error ~= nil and step.error ~= util.null then
        parts[#parts + 1] = "  " .. tostring(step.error)
    end
    return table.concat(parts)
end

local function final_output(result)
    local last
    for _, s in ipairs(result.steps) do
        if s.status == "completed" then
            last = s
            if s.nodeType == "output" then
                break
            end
        end
    end
    local out_step
    for _, s in ipairs(result.steps) do
        if s.status == "completed" and s.nodeType == "output" then
            out_step = s
        end
    end
    out_step = out_step or last
    if not out_step then
        return util.null
    end
    return result.outputs[out_step.nodeId] or util.null
end

-- args: { command = "run"|"validate", workflow = path, input = spec or nil,
--         nodes_path, hooks_path, http_allowlist, quiet = bool }
function M.main(args)
    local wf, err = load_workflow(args.workflow)
    if not wf then
        eprint("rex-worker: ", err)
        return EXIT_USAGE
    end
    local registry = nodes.new({ paths = args.nodes_path })
    for _, p in ipairs(registry.problems) do
        eprint("rex-worker: node file problem: ", p)
    end
    local function positive(v)
        return type(v) == "number" and v > 0 and v or nil
    end
    local eng = engine.new({ registry = registry, limits = { retrieval = {
        max_requests = positive(args.retrieval_max_requests),
        max_failures = positive(args.retrieval_max_failures),
        max_duration_ms = positive(args.retrieval_max_duration_ms),
    } } })
    if args.command == "validate" then
        local ok, problems = eng:validate(wf)
        local list = util.array()
        for i, p in ipairs(problems or {}) do
            list[i] = p
        end
        io.stdout:write(json.encode({ valid = ok, problems = list }), "\n")
        if ok then
            eprint("valid: ", #(wf.nodes or {}), " nodes, ", #(wf.edges or {}), " edges")
            return EXIT_OK
        end
        eprint("invalid workflow (", #list, " problem", #list == 1 and "" or "s", "):")
        for _, p in ipairs(list) do
            eprint("  - ", p)
        end
        return EXIT_USAGE
    end
    local payload = util.is_record(wf.samplePayload) and wf.samplePayload or {}
    if args.input then
        local perr
        payload, perr = parse_input(args.input)
        if not payload then
            eprint("rex-worker: ", perr)
            return EXIT_USAGE
        end
    end
    local hookset = hooks.load({ paths = args.hooks_path })
    eng.hooks = hookset:count() > 0 and hookset or nil
    local kopts = { http_allowlist = args.http_allowlist, get_api_key = M.env_api_key }
    local dburl = os.getenv("DATABASE_URL")
    local kn = (dburl and dburl ~= "") and M.pg_knowledge_runtime(kopts)
        or M.knowledge_runtime(kopts)
    local run_user = os.getenv("REX_RUN_USER_ID")
    local name = type(wf.name) == "string" and wf.name or args.workflow
    eprint(("workflow %s: %d nodes, %d edges"):format(name, #(wf.nodes or {}), #(wf.edges or {})))
    local snapshots = 0
    local result = eng:run(wf, {
        trigger_payload = payload,
        workflow_id = type(wf.id) == "string" and wf.id or nil,
        user_id = run_user ~= "" and run_user or nil,
        initial_context = { memory = { triggerPayload = payload, domainConfig = {} } },
        settings = { http_allowlist = args.http_allowlist },
        runtime = {
            on_step_complete = function(step)
                if not args.quiet then
                    eprint(timeline_line(step))
                end
            end,
            on_context_update = function()
                snapshots = snapshots + 1
            end,
            retrieve_knowledge = kn.retrieve_knowledge,
            ingest_knowledge = kn.ingest_knowledge,
            get_api_key = M.env_api_key,
        },
    })
    eprint(("%s in %d ms%s"):format(result.status, result.totalDurationMs,
        result.errorMessage ~= util.null and (": " .. tostring(result.errorMessage)) or ""))
    local doc = {
        executionId = result.executionId, workflowId = result.workflowId, status = result.status,
        errorMessage = result.errorMessage, output = final_output(result), steps = result.steps,
        totalDurationMs = result.totalDurationMs, snapshots = snapshots, context = result.context,
    }
    if result.validation then
        doc.problems = util.array(result.validation)
    end
    local text, jerr = json.encode(doc)
    if not text then
        eprint("rex-worker: cannot encode the result: ", tostring(jerr))
        return EXIT_FAILED
    end
    io.stdout:write(text, "\n")
    if result.validation then
        return EXIT_USAGE
    end
    return result.status == "completed" and EXIT_OK or EXIT_FAILED
end

return M
