-- rex.execution: REX's execute-workflow lifecycle (rex-behaviour.md §2 with decisions.md §3),
-- persisted through rex.store.
--
--   require("rex.execution").process(job)   -- the execute-workflow job handler
--
-- Round trips: the pickup reads (execution, workflow, authorization, domain configs) are one
-- statement; telemetry rows (steps, attempts, snapshots, retrieval and guardrail events) are
-- buffered and written every REX_TELEMETRY_FLUSH_MS (default 100) as one statement holding a
-- multi-row INSERT per table (the last of them together with the final status update), and they
-- and the "running" update (with the authorization's "validated" mark) are queued in libpq
-- pipeline mode (prepared statements) without waiting; the queue is flushed and checked when the
-- execution's status is re-read for cancel requests (at most every REX_CANCEL_CHECK_MS, default
-- 200, at a step boundary) and with the final status update. So the UI sees live progress, and a
-- short workflow costs two round trips (the pickup, and the final status with the telemetry and
-- the alert-rule read) and four statements (the pickup, "running", the final status with the
-- telemetry, the alert rules).
--
-- Outcomes:
--   execution missing or canceled at pickup        -> nothing written, job completes
--   invalid job data, DATABASE_URL unset           -> job fails without retries
--   authorization missing/invalid/expired           -> execution failed, job fails without retries
--   workflow missing                                -> execution failed `Workflow <id> not found`
--   engine result completed/failed/canceled         -> written as is, job completes
--   database failure (connection lost, timeouts, a failed step insert, ...) -> the execution is
--     marked failed if the database still answers, and the job fails so BullMQ retries it; the
--     retry first deletes the earlier telemetry of the execution in one transaction. When the
--     database does not answer on the last attempt, the final status goes to the Redis
--     pending-final journal and is applied by a later job (see below, and docs/execution.md).
--   another run of the execution started meanwhile (this worker was frozen past its lock), or
--     a stop request came in before the run was marked running -> nothing more written, job
--     completes ("Runs and their fence" below)
local rex = require("rex")
local util = require("rex.util")
local store = require("rex.store")
local engine = require("rex.engine")
local nodes = require("rex.nodes")
local hooks = require("rex.hooks")
local journal = require("rex.journal")

local type, pairs, ipairs, tostring, tonumber, error, pcall = type, pairs, ipairs, tostring,
    tonumber, error, pcall
local floor, max = math.floor, math.max
local null, array = util.null, util.array
local is_record = util.is_record
local json = rex.json
local log = rex.log

local M = {}

local DEFAULT_TENANT = "00000000-0000-0000-0000-000000000001"
local MSG_LIMIT = 4096

local is_uuid = util.is_uuid

-- Sanitized (secrets, connection strings masked) and cut to a varchar(n) column (characters).
local function clean_message(msg, limit)
    local s = rex.redact(util.error_text(msg))
    limit = limit or MSG_LIMIT
    if util.js_len(s) > limit then
        s = util.js_slice(s, limit - 3) .. "..."
    end
    return s
end
M.clean_message = clean_message

local function env_number(name, default)
    local v = tonumber(os.getenv(name) or "")
    return v or default
end

---------------------------------------------------------------------------------------------------
-- the engine, once per Lua state

local eng
local function get_engine()
    if not eng then
        local registry = nodes.new({ paths = os.getenv("REX_NODES_PATH") })
        for _, p in ipairs(registry.problems or {}) do
            log.warn("Node file problem", { problem = p })
        end
        eng = engine.new({ registry = registry, limits = { retrieval = {
            max_requests = max(1, env_number("RETRIEVAL_MAX_REQUESTS_PER_EXECUTION", 64)),
            max_failures = max(1, env_number("RETRIEVAL_MAX_FAILURES_PER_EXECUTION", 32)),
            max_duration_ms = max(1000, env_number("RETRIEVAL_MAX_DURATION_MS_PER_EXECUTION",
                120000)),
        } } })
        local hookset = hooks.load({ paths = os.getenv("REX_HOOKS_PATH") })
        eng.hooks = hookset:count() > 0 and hookset or nil
    end
    return eng
end

---------------------------------------------------------------------------------------------------
-- domain config (§2.3)

local function deep_merge(base, overlay)
    local out = {}
    if is_record(base) then
        for k, v in pairs(base) do
            out[k] = v
        end
    end
    if not is_record(overlay) then
        return out
    end
    for k, v in pairs(overlay) do
        if is_record(v) and is_record(out[k]) then
            out[k] = deep_merge(out[k], v)
        else
            out[k] = v
        end
    end
    return out
end
M.deep_merge = deep_merge

function M.resolve_domain_config(rows, queued)
    local list = {}
    for i, r in ipairs(rows or {}) do
        local spec = (r.user_id and 1 or 0) + (r.workflow_id and 2 or 0)
        list[#list + 1] = { spec = spec, i = i, config = r.config and json.decode(r.config) }
    end
    table.sort(list, function(a, b)
        if a.spec ~= b.spec then
            return a.spec < b.spec
        end
        return a.i < b.i
    end)
    local cfg = {}
    for _, e in ipairs(list) do
        cfg = deep_merge(cfg, is_record(e.config) and e.config or {})
    end
    return deep_merge(cfg, is_record(queued) and queued or {})
end

local function finite_number(v)
    if type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge then
        return v
    end
    if type(v) == "string" then
        local n = tonumber(util.trim(v))
        if n and n == n and n ~= math.huge and n ~= -math.huge then
            return n
        end
    end
end

local function falsy(v)
    return not util.truthy(v)
end

function M.apply_domain_config(node_list, cfg)
    local llm = is_record(cfg.llm) and cfg.llm or {}
    local retr = is_record(cfg.retrieval) and cfg.retrieval or {}
    local guards = is_record(cfg.guardrails) and cfg.guardrails or {}
    local out = array()
    for i, n in ipairs(node_list) do
        local copy = {}
        if type(n) == "table" then
            for k, v in pairs(n) do
                copy[k] = v
            end
        end
        local c = {}
        if type(copy.config) == "table" then
            for k, v in pairs(copy.config) do
                c[k] = v
            end
        end
        local t = copy.type
        if t == "llm" then
            local p = util.non_empty_string(llm.defaultProvider)
            if p and falsy(c.provider) then
                c.provider = p
            end
            local m = util.non_empty_string(llm.defaultModel)
            if m and falsy(c.model) then
                c.model = m
            end
            if c.temperature == nil and finite_number(llm.temperature) then
                c.temperature = finite_number(llm.temperature)
            end
            if c.maxTokens == nil and finite_number(llm.maxTokens) then
                c.maxTokens = finite_number(llm.maxTokens)
            end
        elseif t == "knowledge-retrieve" then
            if c.topK == nil and finite_number(retr.topK) then
                c.topK = finite_number(retr.topK)
            end
            local s = util.non_empty_string(retr.strategy)
            if s and falsy(c.strategy) then
                c.strategy = s
            end
        elseif t == "input-guard" then
            if c.blockOnPromptInjection == nil and type(guards.blockPromptInjection) == "boolean" then
                c.blockOnPromptInjection = guards.blockPromptInjection
            end
        elseif t == "output-guard" then
            if c.blockOnToxicity == nil and type(guards.blockToxicity) == "boolean" then
                c.blockOnToxicity = guards.blockToxicity
            end
        end
        copy.config = c
        out[i] = copy
    end
    return out
end

---------------------------------------------------------------------------------------------------
-- telemetry (§2.6)

local Exec = {}
Exec.__index = Exec

-- A database failure: remembered (the job will fail and be retried) and raised.
function Exec:infra(err)
    local msg = type(err) == "table" and (err.message or util.error_text(err)) or tostring(err)
    if not self.infra_error then
        self.infra_error = msg
    end
    error({ message = msg, infra = true }, 0)
end

function Exec:warn_missing(tbl, msg, fields)
    if store.first_time("missing-table:" .. tbl) then
        log.warn(msg, fields)
    end
end

-- Checks the failures of queued statements. A failed critical row (steps, status updates,
-- cleanup) is a database failure; best-effort rows are warnings (§2.9).
local BEST_EFFORT = {
    attempts = { "Execution step attempts table not found; skipping persistence",
                 "Failed to persist execution step attempts" },
    snapshot = { "Execution context snapshot table not found; skipping persistence",
                 "Failed to persist execution context snapshot" },
    retrieval = { "Execution retrieval events table not found; skipping persistence",
                  "Failed to persist execution retrieval event" },
    guardrail = { "Guardrail events table not found; skipping persistence",
                  "Failed to persist guardrail event" },
}

function Exec:check_failures(failures)
    if #self.merged > 0 then
        failures = self:resend_merged(failures)
    end
    for _, f in ipairs(failures) do
        local be = BEST_EFFORT[f.tag]
        if be then
            if f.sqlstate == "42P01" then
                self:warn_missing(f.tag, be[1], { executionId = self.id })
            else
                log.warn(be[2], { executionId = self.id, error = f.message,
                                  sqlstate = f.sqlstate })
            end
        elseif not self.infra_error then
            self.infra_error = ("%s: %s"):format(f.tag, f.message)
        end
    end
    if self.infra_error then
        error({ message = self.infra_error, infra = true }, 0)
    end
end

function Exec:sync()
    local ok, failures = pcall(self.db.sync, self.db)
    if not ok then
        self:infra(failures)
    end
    self:check_failures(failures)
end

function Exec:send(sql, params, tag)
    local ok, err = pcall(self.db.send, self.db, sql, params, tag)
    if not ok then
        self:infra(err)
    end
end

local function int(v)
    v = tonumber(v)
    if not v or v ~= v then
        return 0
    end
    return floor(v)
end

local function opt_string(v)
    return type(v) == "string" and v or null
end

-- Telemetry rows are buffered per table and written as one multi-row INSERT per table
-- (jsonb_array_elements over a JSON array parameter, in order) whenever REX_TELEMETRY_FLUSH_MS
-- (default 100) has passed since the last flush, before every cancel check and at the end. With
-- REX_TELEMETRY_FLUSH_MS=0 every row is its own statement (still pipelined).
--
-- Runs and their fence. BullMQ runs a job at least once: a worker that was frozen past its lock
-- (a VM pause, a lost network) goes on running an execution that another worker has picked up
-- again. So each run has a token, PostgreSQL's now() at its pickup read, which its "running"
-- update stores in started_at only if started_at is still what the pickup read (a newer run has
-- not started meanwhile). Every later write of the run is fenced on started_at = token:
--   - telemetry rows are inserted only while the fence holds, and the check locks the execution
--     row (FOR SHARE) until the rows commit, so a newer run's "running" update waits for them and
--     its cleanup, in the same transaction after that update, removes them;
--   - the final status update is itself the fence (and the rows sent with it are written only
--     when it updated the row);
--   - the cancel check sees a lost fence and stops the run; failure marks and the pending-final
--     journal leave a row alone once another run has started.
-- A run that lost its fence writes nothing more and its job completes (its Redis lock is gone
-- anyway, or a newer job owns the execution).
local FENCE = "EXISTS (SELECT 1 FROM executions WHERE id = $1 AND started_at = $4::timestamptz "
    .. "FOR SHARE)"
local IN_FINAL = "EXISTS (SELECT 1 FROM u)" -- inside the final statement (below)

-- Each part's SQL, given the condition its rows are written under. Parameters: $1 execution
-- id, $2 tenant, $3 the rows (a JSON array), $4 the run's token when `cond` is FENCE.
local FLUSH_SQL = {
    steps = function(x, cond)
        local tcol, tval = "", ""
        if x.cols.steps_tenant then
            tcol, tval = "tenant_id, ", "$2, "
        end
        return "INSERT INTO execution_steps (" .. tcol .. "execution_id, node_id, node_type, "
            .. "status, input, output, duration_ms, error) SELECT " .. tval .. "$1, "
            .. "x.e->>'node_id', x.e->>'node_type', x.e->>'status', x.e->'input', "
            .. "NULLIF(x.e->'output', 'null'::jsonb), (x.e->>'duration_ms')::int, x.e->>'error' "
            .. "FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS x(e, o) WHERE " .. cond
            .. (tval == "" and " AND $2::text IS NOT NULL" or "") .. " ORDER BY x.o"
    end,
    attempts = function(_, cond)
        return "INSERT INTO execution_step_attempts (execution_id, node_id, node_type, attempt, "
            .. "status, duration_ms, reason) SELECT $1, x.e->>'node_id', x.e->>'node_type', "
            .. "(x.e->>'attempt')::int, x.e->>'status', (x.e->>'duration_ms')::int, "
            .. "x.e->>'reason' FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS x(e, o) "
            .. "WHERE " .. cond .. " AND $2::text IS NOT NULL ORDER BY x.o"
    end,
    snapshot = function(x, cond)
        local tcol, tval = "", ""
        if x.cols.snapshots_tenant then
            tcol, tval = "tenant_id, ", "$2, "
        end
        return "INSERT INTO execution_context_snapshots (" .. tcol .. "execution_id, sequence, "
            .. "reason, node_id, node_type, state) SELECT " .. tval .. "$1, "
            .. "(x.e->>'sequence')::int, x.e->>'reason', x.e->>'node_id', x.e->>'node_type', "
            .. "x.e->'state' FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS x(e, o) "
            .. "WHERE " .. cond .. (tval == "" and " AND $2::text IS NOT NULL" or "")
            .. " ORDER BY x.o"
    end,
    retrieval = function(_, cond)
        return "INSERT INTO execution_retrieval_events (execution_id, node_id, node_type, query, "
            .. "top_k, attempt, max_attempts, status, matches_count, duration_ms, error_message, "
            .. "scope_type, corpus_id, workflow_id_scope, execution_id_scope, strategy, "
            .. "retriever_key, branch_index, selected) SELECT $1, x.e->>'node_id', "
            .. "x.e->>'node_type', x.e->>'query', (x.e->>'top_k')::int, (x.e->>'attempt')::int, "
            .. "(x.e->>'max_attempts')::int, x.e->>'status', (x.e->>'matches_count')::int, "
            .. "(x.e->>'duration_ms')::int, x.e->>'error_message', x.e->>'scope_type', "
            .. "(x.e->>'corpus_id')::uuid, (x.e->>'workflow_id_scope')::uuid, "
            .. "(x.e->>'execution_id_scope')::uuid, x.e->>'strategy', x.e->>'retriever_key', "
            .. "(x.e->>'branch_index')::int, (x.e->>'selected')::boolean "
            .. "FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS x(e, o) "
            .. "WHERE " .. cond .. " AND $2::text IS NOT NULL ORDER BY x.o"
    end,
    guardrail = function(_, cond)
        return "INSERT INTO guardrail_events (tenant_id, user_id, workflow_id, execution_id, "
            .. "node_id, node_type, guard_type, severity, reason, payload) SELECT $2, "
            .. "(x.e->>'user_id')::uuid, (x.e->>'workflow_id')::uuid, $1, x.e->>'node_id', "
            .. "x.e->>'node_type', x.e->>'guard_type', x.e->>'severity', x.e->>'reason', "
            .. "x.e->'payload' FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS x(e, o) "
            .. "WHERE " .. cond .. " ORDER BY x.o"
    end,
}
local FLUSH_ORDER = { "steps", "attempts", "guardrail", "snapshot", "retrieval" }

-- The final status update, fenced on the run's token ($4). A row canceled meanwhile keeps its
-- status, finish time and message unless the run ends canceled itself.
local KEEP = "status = 'canceled' AND $2::varchar <> 'canceled'"
local FINAL_UPDATE = "UPDATE executions SET status = CASE WHEN " .. KEEP .. " THEN status ELSE "
    .. "$2::varchar END, finished_at = CASE WHEN " .. KEEP .. " THEN finished_at ELSE now() END, "
    .. "error_message = CASE WHEN " .. KEEP .. " THEN error_message ELSE $3::varchar END "
    .. "WHERE id = $1 AND started_at = $4::timestamptz RETURNING 1"
-- `ours` is 1 when the update went through, 0 when another run holds the execution (or the row
-- is gone)
local FINAL_ONLY = "WITH u AS (" .. FINAL_UPDATE .. ") SELECT count(*) AS ours FROM u"

function Exec:push(kind, row)
    local b = self.buf[kind]
    b[#b + 1] = row
    if self.flush_interval <= 0 or rex.monotonic_ms() - self.last_flush >= self.flush_interval then
        self:flush()
    end
end

-- The statement writing the rows of `kinds` (FLUSH_ORDER), each table's INSERT a data-modifying
-- WITH query with parameters of its own (so they are typed exactly as in their own statement).
-- Without `final` each part is fenced itself (4 parameters each) and the last part is the main
-- statement; with `final` the final update comes first (u, 4 parameters), the parts (3 each) are
-- written only if it went through, and the main statement returns `ours`. Built once per
-- combination (tables present, tenant columns, final) in this Lua state.
local sql_cache = {}
local function build_sql(x, kinds, final)
    local head, n = {}, 0
    if final then
        head[1], n = "u AS (" .. FINAL_UPDATE .. ")", 4
    end
    for _, kind in ipairs(kinds) do
        local base = n
        head[#head + 1] = FLUSH_SQL[kind](x, final and IN_FINAL or FENCE):gsub("%$(%d)",
            function(d)
                return "$" .. (base + tonumber(d))
            end)
        n = n + (final and 3 or 4)
    end
    if #head == 1 then
        return final and FINAL_ONLY or head[1]
    end
    local main = final and "SELECT count(*) AS ours FROM u" or table.remove(head)
    for i = final and 2 or 1, #head do
        head[i] = ("t%d AS (%s)"):format(i, head[i])
    end
    return "WITH " .. table.concat(head, ", ") .. " " .. main
end

local function flush_sql(x, kinds, final)
    local key = table.concat(kinds, ",") .. (x.cols.steps_tenant and "|t" or "|-")
        .. (x.cols.snapshots_tenant and "t" or "-") .. (final and "|final" or "")
    local sql = sql_cache[key]
    if not sql then
        sql = build_sql(x, kinds, final)
        sql_cache[key] = sql
    end
    return sql
end

-- Takes the buffered rows: kinds (in FLUSH_ORDER) and their rows, or nil when there are none.
function Exec:take_rows()
    local kinds, rows
    for _, kind in ipairs(FLUSH_ORDER) do
        local b = self.buf[kind]
        if #b > 0 then
            self.buf[kind] = {}
            kinds = kinds or {}
            rows = rows or {}
            kinds[#kinds + 1] = kind
            rows[#rows + 1] = array(b)
        end
    end
    return kinds, rows
end

-- One statement for the rows of several tables and, with `final` (the final update's status
-- and message), the final status update. Returns sql, params and the entry that lets the parts
-- be sent again one by one (Exec:resend_merged) if the statement fails.
function Exec:merged_statement(kinds, rows, final)
    local params, n = {}, 0
    if final then
        params[1], params[2], params[3], params[4], n = self.id, final[1], final[2], self.run, 4
    end
    local jsons = {}
    for i = 1, #kinds do
        local encoded, err = json.encode(rows[i])
        if not encoded then
            error(err, 0)
        end
        jsons[i] = encoded
        params[n + 1], params[n + 2], params[n + 3], n = self.id, self.tenant, encoded, n + 3
        if not final then
            params[n + 1], n = self.run, n + 1
        end
    end
    params.n = n
    return flush_sql(self, kinds, final), params, { kinds = kinds, jsons = jsons }
end

-- Queues the buffered rows (pipeline mode: no wait; failures surface at the next sync). Rows of
-- several tables go as one statement (one transaction instead of one per table); if it fails,
-- Exec:resend_merged sends each table's rows again as its own statement, so a failing
-- best-effort table still costs only its own rows, as when every table had its own statement.
function Exec:flush()
    self.last_flush = rex.monotonic_ms()
    local kinds, rows = self:take_rows()
    if not kinds then
        return
    end
    local sql, params, entry = self:merged_statement(kinds, rows)
    if #kinds == 1 then
        self:send(sql, params, kinds[1])
        return
    end
    local merged = self.merged
    merged[#merged + 1] = entry
    self:send(sql, params, "telemetry:" .. #merged)
end

-- Sends the rows of a failed merged statement again, one statement per table.
function Exec:send_parts(entry)
    for i, kind in ipairs(entry.kinds) do
        self:send(flush_sql(self, { kind }), { self.id, self.tenant, entry.jsons[i], self.run },
            kind)
    end
end

-- Called with the failures of a sync: every merged telemetry statement has been answered by now.
-- Those that failed are sent again, one statement per table; returns the failures with theirs in
-- place of the merged statements'.
function Exec:resend_merged(failures)
    local merged = self.merged
    self.merged = {}
    local rest, again = {}, false
    for _, f in ipairs(failures) do
        local m = merged[tonumber(f.tag:match("^telemetry:(%d+)$"))]
        if m then
            self:send_parts(m)
            again = true
        else
            rest[#rest + 1] = f
        end
    end
    if not again then
        return failures
    end
    local ok, more = pcall(self.db.sync, self.db)
    if not ok then
        self:infra(more)
    end
    for _, f in ipairs(more) do
        rest[#rest + 1] = f
    end
    return rest
end

function Exec:on_step_complete(step)
    local db = self.db
    local out = step.output
    local err = step.error
    if type(err) == "string" then
        err = clean_message(err)
    else
        err = null
    end
    self:push("steps", { node_id = step.nodeId, node_type = step.nodeType, status = step.status,
        input = is_record(step.input) and step.input or {},
        output = type(out) == "table" and out or null, duration_ms = int(step.durationMs),
        error = err })
    self.steps_written = self.steps_written + 1
    -- attempts: the valid elements of output._attempts
    if type(out) == "table" and type(out._attempts) == "table" then
        local has = db:has_table("execution_step_attempts")
        for _, a in ipairs(out._attempts) do
            if type(a) == "table" and type(a.attempt) == "number" and a.attempt >= 1
                and a.attempt == floor(a.attempt) and type(a.durationMs) == "number"
                and a.durationMs >= 0 and a.durationMs < math.huge
                and (a.status == "completed" or a.status == "retry" or a.status == "failed") then
                if not has then
                    self:warn_missing("attempts",
                        "Execution step attempts table not found; skipping persistence",
                        { executionId = self.id, nodeId = step.nodeId })
                    break
                end
                self:push("attempts", { node_id = step.nodeId, node_type = step.nodeType,
                    attempt = a.attempt, status = a.status, duration_ms = floor(a.durationMs),
                    reason = type(a.reason) == "string" and clean_message(a.reason) or null })
            end
        end
    end
    -- guardrail events
    local nt = step.nodeType
    if nt == "input-guard" or nt == "output-guard" then
        local guard = type(out) == "table" and is_record(out._guard) and out._guard or {}
        if guard.triggered == true or step.status == "failed" then
            if db:has_table("guardrail_events") then
                local reason = type(guard.reason) == "string" and guard.reason
                    or (type(step.error) == "string" and step.error) or "Guardrail triggered"
                self:push("guardrail", { user_id = self.user_id, workflow_id = self.workflow_id,
                    node_id = step.nodeId, node_type = nt,
                    guard_type = nt == "input-guard" and "input" or "output",
                    severity = step.status == "failed" and "block" or "warn",
                    reason = clean_message(reason, 1024),
                    payload = step.status == "failed" and {} or guard })
            else
                self:warn_missing("guardrail", "Guardrail events table not found; skipping "
                    .. "persistence", { executionId = self.id, nodeId = step.nodeId })
            end
        end
    end
end

function Exec:on_context_update(upd)
    self.sequence = self.sequence + 1
    if not self.db:has_table("execution_context_snapshots") then
        self:warn_missing("snapshot", "Execution context snapshot table not found; skipping "
            .. "persistence", { executionId = self.id, sequence = self.sequence,
                                reason = upd.reason })
        return
    end
    self:push("snapshot", { sequence = self.sequence, reason = upd.reason,
        node_id = type(upd.nodeId) == "string" and upd.nodeId or null,
        node_type = type(upd.nodeType) == "string" and upd.nodeType or null,
        state = upd.state })
end

local function uuid_or_null(v)
    -- the columns are uuid: a non-UUID scope id from a node config is stored as NULL rather
    -- than losing the whole event (the original's insert failed)
    return is_uuid(v) and v or null
end

function Exec:on_retrieval_event(ev)
    if not self.db:has_table("execution_retrieval_events") then
        self:warn_missing("retrieval", "Execution retrieval events table not found; skipping "
            .. "persistence", { executionId = self.id, nodeId = ev.nodeId, attempt = ev.attempt })
        return
    end
    local function s(v, limit)
        return type(v) == "string" and (limit and clean_message(v, limit) or v) or null
    end
    self:push("retrieval", { node_id = tostring(ev.nodeId), node_type = tostring(ev.nodeType),
        query = tostring(ev.query or ""), top_k = int(ev.topK), attempt = int(ev.attempt),
        max_attempts = int(ev.maxAttempts), status = tostring(ev.status),
        matches_count = int(ev.matchesCount), duration_ms = int(ev.durationMs),
        error_message = s(ev.errorMessage, MSG_LIMIT), scope_type = s(ev.scopeType, 30),
        corpus_id = uuid_or_null(ev.corpusId), workflow_id_scope = uuid_or_null(ev.workflowIdScope),
        execution_id_scope = uuid_or_null(ev.executionIdScope), strategy = s(ev.strategy, 40),
        retriever_key = s(ev.retrieverKey, 100),
        branch_index = type(ev.branchIndex) == "number" and floor(ev.branchIndex) or null,
        selected = type(ev.selected) == "boolean" and ev.selected or null })
end

-- Re-reads the execution's status (flushing queued telemetry in the same round trip); raises the
-- engine's cancel error when it is missing or canceled.
function Exec:check_cancel(force)
    local now = rex.monotonic_ms()
    if not force and now - self.last_check < self.check_interval then
        return
    end
    self.last_check = now
    self:flush()
    local ok, res = pcall(self.db.batch, self.db,
        { { "SELECT status, started_at = $2::timestamptz AS ours FROM executions WHERE id = $1",
            { self.id, self.run } } })
    if not ok then
        self:infra(res)
    end
    self:sync() -- failures of the statements flushed with it
    local r = res[1]
    if r.error then
        self:infra(r.error)
    end
    local row = r.rows[1]
    if row and row.ours ~= "t" then
        -- another run started this execution (see "Runs and their fence"): stop here
        self.superseded = true
        error({ canceled = true, message = "Superseded by a newer run" }, 0)
    end
    if not row or row.status == "canceled" then
        log.info("Execution stopped by user request", { executionId = self.id })
        error({ canceled = true, message = "Stopped by user" }, 0)
    end
end

function Exec:get_api_key(provider)
    provider = tostring(provider)
    local cached = self.keys[provider]
    if cached then
        return cached
    end
    if not self.db:has_table("api_keys") then
        error(("No %s API key found for user. Please add your API key in settings."):format(
            provider), 0)
    end
    local params, where = { self.user_id, provider }, "user_id = $1 AND provider = $2"
    if self.db:has_column("api_keys", "tenant_id") then
        params[3] = self.tenant
        where = where .. " AND tenant_id = $3"
    end
    local ok, res = pcall(self.db.batch, self.db, { {
        "SELECT encrypted_key FROM api_keys WHERE " .. where
            .. " ORDER BY created_at DESC, id LIMIT 1", params } })
    if not ok then
        self:infra(res)
    end
    if res[1].error then
        self:infra(res[1].error)
    end
    local row = res[1].rows[1]
    if not row then
        error(("No %s API key found for user. Please add your API key in settings."):format(
            provider), 0)
    end
    local key = store.provider_key(provider, row.encrypted_key)
    self.keys[provider] = key
    return key
end

---------------------------------------------------------------------------------------------------
-- alert rules (§2.7), best effort

function Exec:alert_rules_sql()
    return "SELECT id, rule_type, severity, threshold, window_minutes FROM alert_rules WHERE "
        .. "tenant_id = $1 AND user_id = $2 AND is_active = true AND (workflow_id = $3 OR "
        .. "workflow_id IS NULL) ORDER BY created_at, id", { self.tenant, self.user_id,
                                                          self.workflow_id }
end

function Exec:evaluate_alerts()
    local db = self.db
    if not (db:has_table("alert_rules") and db:has_table("alert_events")) then
        self:warn_missing("alerts", "Alert tables missing; skipping alert evaluation",
            { userId = self.user_id, workflowId = self.workflow_id, executionId = self.id })
        return
    end
    local ok, err = pcall(function()
        local r = self.alert_rules or db:batch({ { self:alert_rules_sql() } })[1]
        if r.error then
            error(r.error, 0)
        end
        for _, rule in ipairs(r.rows) do
            local threshold = tonumber(rule.threshold) or 1
            local base = { self.tenant, self.user_id, rule.id, rule.rule_type, rule.severity }
            if rule.rule_type == "latency-breach" then
                db:send("INSERT INTO alert_events (tenant_id, user_id, workflow_id, alert_rule_id, "
                    .. "rule_type, severity, message, payload) SELECT $1::uuid, $2::uuid, "
                    .. "$6::uuid, $3::uuid, $4::text, $5::text, "
                    .. "'Latency threshold breached on execution ' || $7::text, "
                    .. "jsonb_build_object('executionId', $7::text, 'thresholdMs', $8::int) "
                    .. "WHERE EXISTS (SELECT 1 FROM execution_steps WHERE execution_id = "
                    .. "$7::text::uuid AND duration_ms >= $8::int)",
                    { base[1], base[2], base[3], base[4], base[5], self.workflow_id, self.id,
                      threshold }, "alert")
            elseif rule.rule_type == "guardrail-triggered" and db:has_table("guardrail_events") then
                db:send("INSERT INTO alert_events (tenant_id, user_id, workflow_id, alert_rule_id, "
                    .. "rule_type, severity, message, payload) SELECT $1::uuid, $2::uuid, "
                    .. "$6::text::uuid, $3::uuid, $4::text, $5::text, "
                    .. "'Guardrail threshold reached (' || c.n || ')', jsonb_build_object("
                    .. "'workflowId', $6::text, 'executionId', $7::text, 'count', c.n, "
                    .. "'threshold', $8::int, 'windowMinutes', $9::int) FROM (SELECT count(*) AS n "
                    .. "FROM guardrail_events WHERE tenant_id = $1::uuid AND user_id = $2::uuid "
                    .. "AND workflow_id = $6::text::uuid AND created_at >= now() - "
                    .. "make_interval(mins => $9::int)) c WHERE c.n >= $8::int",
                    { base[1], base[2], base[3], base[4], base[5], self.workflow_id, self.id,
                      threshold, tonumber(rule.window_minutes) or 60 }, "alert")
            elseif rule.rule_type == "corpus-health-alert" and db:has_table("knowledge_documents") then
                db:send("INSERT INTO alert_events (tenant_id, user_id, workflow_id, alert_rule_id, "
                    .. "rule_type, severity, message, payload) SELECT $1::uuid, $2::uuid, NULL, "
                    .. "$3::uuid, $4::text, $5::text, "
                    .. "'Corpus health threshold breached (' || to_char(c.pct, 'FM9999990.00') "
                    .. "|| '% failed)', jsonb_build_object('failedDocuments', c.failed, "
                    .. "'totalDocuments', c.total, 'failurePct', c.pct, 'thresholdPct', $6::int) "
                    .. "FROM (SELECT count(*) FILTER (WHERE status = 'failed') AS failed, "
                    .. "count(*) AS total, CASE WHEN count(*) = 0 THEN 0 ELSE count(*) FILTER "
                    .. "(WHERE status = 'failed') * 100.0 / count(*) END AS pct FROM "
                    .. "knowledge_documents WHERE tenant_id = $1::uuid AND user_id = $2::uuid) c "
                    .. "WHERE c.pct >= $6::int",
                    { base[1], base[2], base[3], base[4], base[5], threshold }, "alert")
            end
        end
        for _, f in ipairs(db:sync()) do
            log.warn("Failed to evaluate alert rules for execution", { executionId = self.id,
                                                                     error = f.message })
        end
    end)
    if not ok then
        log.warn("Failed to evaluate alert rules for execution", { executionId = self.id,
            error = util.error_text(err) })
    end
end

---------------------------------------------------------------------------------------------------
-- schema check: the columns the worker writes must have the types it writes (a table built by
-- hand or by another tool with, say, a text `output` would otherwise fail in odd ways)

local EXPECTED = {
    executions = { status = "varchar", error_message = "varchar", started_at = "timestamptz",
                   finished_at = "timestamptz" },
    execution_steps = { input = "jsonb", output = "jsonb", duration_ms = "int4",
                        status = "varchar", error = "varchar" },
    execution_context_snapshots = { state = "jsonb", sequence = "int4" },
    execution_step_attempts = { attempt = "int4", duration_ms = "int4" },
    workflows = { nodes = "jsonb", edges = "jsonb" },
}

-- nil when the schema fits, else a message naming every mismatch
function M.schema_problems(db)
    local problems = {}
    for _, t in ipairs({ "executions", "execution_steps", "execution_context_snapshots",
                         "execution_step_attempts", "workflows" }) do
        if db:has_table(t) then
            for col, want in pairs(EXPECTED[t]) do
                local got = db:column_type(t, col)
                if got == nil then
                    problems[#problems + 1] = ("%s.%s is missing"):format(t, col)
                elseif got ~= want then
                    problems[#problems + 1] = ("%s.%s has type %s, expected %s"):format(t, col,
                        got, want)
                end
            end
        elseif t ~= "execution_context_snapshots" and t ~= "execution_step_attempts" then
            problems[#problems + 1] = ("table %s is missing"):format(t)
        end
    end
    if #problems == 0 then
        return nil
    end
    table.sort(problems)
    return "Database schema does not fit rex-worker (run `rex-worker migrate`): "
        .. table.concat(problems, "; ")
end

---------------------------------------------------------------------------------------------------
-- the handler

local function fail_job(msg)
    error(msg, 0)
end

-- Best effort after a database failure: record the failure so no execution stays `running`
-- when the database still answers (a retry sets it running again). On the last attempt a row
-- still `pending` (the pickup never got through) is ended too. Returns true and the number of
-- rows updated when the database took the update, else false and the error.
-- The fence of a run: its row is this run's, or still as its pickup read it (the run's own
-- "running" update may not have gone through); anything when the run has no token yet. $4 the
-- run's token, $5 started_at as the pickup read it.
local UNFENCED_OR_OURS = "($4::timestamptz IS NULL OR started_at = $4::timestamptz OR "
    .. "started_at IS NOT DISTINCT FROM $5::timestamptz)"

local function mark_failed_after_fault(id, msg, last, fence)
    local ok, db = pcall(store.get)
    if not ok then
        return false, db
    end
    pcall(db.sync, db)
    local done, res, affected = pcall(db.exec, db, "UPDATE executions SET status = 'failed', "
        .. "finished_at = now(), error_message = $2 WHERE id = $1 AND status IN ('running', $3) "
        .. "AND " .. UNFENCED_OR_OURS, { id, clean_message(msg), last and "pending" or "running",
            fence and fence.run or null, fence and fence.prev or null, n = 5 })
    if not done then
        return false, res
    end
    return true, tonumber(affected) or 0
end

---------------------------------------------------------------------------------------------------
-- the pending-final journal: no execution left `running` forever
--
-- When an attempt fails for an infrastructure reason, the execution is marked failed if
-- PostgreSQL still answers (above). When it does not answer and that attempt was the job's last
-- (BullMQ will not run it again), nothing else would ever end the row, so the terminal update is
-- written to Redis instead (rex.journal), where the job's own failure is being recorded at the
-- same moment:
--
--   <prefix>:<queue>:rex:pending-final   hash: executionId -> JSON {status, error, jobId,
--                                        attempts, at (ms since the epoch)}
--
-- Every execute-workflow job, on any worker thread of the queue, applies the journal as soon as
-- it has a PostgreSQL connection (one HGETALL; the hash is empty in normal operation): each entry
-- becomes `UPDATE executions SET status = 'failed', finished_at = <at>, error_message = <error>
-- WHERE id = ... AND status IN ('pending', 'running')` and is deleted once PostgreSQL took it.
-- A row that moved on meanwhile (canceled, or re-run and finished) is left as it is. Why Redis and
-- not a sweep of `running` rows against BullMQ job states: the worker that saw the failure knows
-- exactly which execution and why, whereas a sweep cannot tell a job of another queue, another
-- job-id scheme or a removed failed job (removeOnFail) from a lost one. The key lives under the
-- queue's prefix so it goes with the queue (Queue.obliterate).

local PENDING_FINAL = "pending-final"
M.PENDING_FINAL_SUFFIX = ":rex:" .. PENDING_FINAL
local is_last_attempt = journal.is_last_attempt

-- Records the terminal update PostgreSQL could not take. Returns true when Redis has it.
function M.record_pending_final(job, id, msg, fence)
    local attempts = (job.attempts_made or 0) + 1
    local ok, err = journal.put(PENDING_FINAL, id, { status = "failed", jobId = job.id,
        run = fence and fence.run or nil, prev = fence and fence.prev or nil,
        attempts = attempts, at = rex.now_ms(), error = clean_message(("Execution failed after "
            .. "%d attempt%s; the failure was recorded while PostgreSQL was unreachable: %s")
            :format(attempts, attempts == 1 and "" or "s", util.error_text(msg))) })
    if not ok then
        log.error("Execution left unfinished: neither PostgreSQL nor a Redis journal took its "
            .. "final status", { executionId = id, error = msg, redisError = err })
        return false
    end
    log.warn("Execution final status kept in Redis until PostgreSQL answers",
        { executionId = id, journal = journal.key(PENDING_FINAL), error = msg })
    return true
end

-- Applies the journal through `db` (a live connection). Never raises; returns the number of
-- executions updated and whether the whole journal went through.
function M.apply_pending_final(db)
    local applied = 0
    local complete, err = journal.each(PENDING_FINAL, function(id, entry)
        if not (is_uuid(id) and entry and type(entry.error) == "string") then
            log.warn("Dropping an invalid pending-final journal entry",
                { journal = journal.key(PENDING_FINAL), field = id })
            return true
        end
        local str = function(v)
            return type(v) == "string" and v or null
        end
        local ok, res, affected = pcall(db.exec, db, "UPDATE executions SET status = "
            .. "'failed', finished_at = COALESCE(to_timestamp($3::float8 / 1000), now()), "
            .. "error_message = $2 WHERE id = $1 AND status IN ('pending', 'running') AND "
            .. UNFENCED_OR_OURS, { id, clean_message(entry.error),
              type(entry.at) == "number" and entry.at or null, str(entry.run), str(entry.prev),
              n = 5 })
        if not ok then
            log.warn("Cannot apply a pending final status yet", { executionId = id,
                error = util.error_text(res) })
            return false -- PostgreSQL is failing again: keep the rest for later
        end
        local n = tonumber(affected) or 0
        applied = applied + (n > 0 and 1 or 0)
        log.info(n > 0 and "Pending final status applied to execution"
            or "Pending final status dropped; the execution has moved on",
            { executionId = id, jobId = entry.jobId })
        return true
    end)
    if err and store.first_time("pending-final-read") then
        log.warn("Cannot read the pending-final journal", { journal = journal.key(PENDING_FINAL),
            error = err })
    end
    return applied, complete
end

-- Applied by every job, at most once a second per worker thread (rex.journal.throttled).
local apply_journal_throttled = journal.throttled(function(db)
    local _, complete = M.apply_pending_final(db)
    return complete
end)

-- The job failed for good without the handler running (rex.worker: a deferred failure such as
-- BullMQ's stalled limit, or the started-attempts limit). The attempt that was running it died
-- with its worker, so nothing else would end the execution: it is marked failed here, or
-- journaled when PostgreSQL does not answer. A row already finished or canceled is left alone.
function M.failed_without_run(job, reason)
    local data = job.data
    local id = is_record(data) and data.executionId
    if not is_uuid(id) or not store.configured() then
        return
    end
    local done, info = mark_failed_after_fault(id, ("Execution failed: %s"):format(reason), true)
    if done then
        if info > 0 then
            log.warn("Execution failed: its job failed without running", { executionId = id,
                jobId = job.id, reason = reason })
        end
        return
    end
    log.warn("PostgreSQL did not take the final status of an execution whose job failed "
        .. "without running", { executionId = id, error = util.error_text(info) })
    M.record_pending_final(job, id, reason)
end

-- rex.worker calls this every REX_IDLE_INTERVAL_MS: a journal written while
-- PostgreSQL was down is applied without waiting for the next job (one HLEN when it is empty).
function M.idle()
    if not store.configured() then
        return
    end
    local n = journal.length(PENDING_FINAL)
    if not n or n == 0 then
        return
    end
    local ok, db = pcall(store.get)
    if ok then
        M.apply_pending_final(db)
    end
end

-- An infrastructure failure of this attempt: the execution is marked failed where PostgreSQL
-- answers, else journaled on the last attempt (above); then the attempt fails so BullMQ retries.
-- `fence` (the run, once its pickup read went through) keeps both from ending a row another run
-- has started since.
local function fail_after_fault(job, id, msg, fence)
    local last = is_last_attempt(job)
    if not mark_failed_after_fault(id, msg, last, fence) and last then
        M.record_pending_final(job, id, msg, fence)
    end
    fail_job(clean_message(msg))
end

-- The pickup read: one row whatever exists. Parameters: $1 execution, $2 workflow, $3 user,
-- $4 the authorization (with_auth). Columns: status, started_at, run (now(): this run's token,
-- see "Runs and their fence") and e_id (NULL: no execution row); w_id (NULL: no workflow),
-- tenant_id, nodes, edges; a_id, a_validated_at (the authorization, when valid);
-- domain_configs (a JSON array of {config (its JSON text), user_id, workflow_id}, in REX's
-- order). Built once per shape in this Lua state.
local pickup_cache = {}
local function pickup_sql(db, with_auth, has_dc)
    local wf_tenant = db:has_column("workflows", "tenant_id")
    local key = (with_auth and "a" or "-") .. (has_dc and "d" or "-") .. (wf_tenant and "t" or "-")
    local sql = pickup_cache[key]
    if sql then
        return sql
    end
    local cols = { "e.id AS e_id, e.status, e.started_at, now() AS run",
                   "w.id AS w_id, " .. (wf_tenant and "w.tenant_id" or "NULL AS tenant_id")
                       .. ", w.nodes::text AS nodes, w.edges::text AS edges" }
    local from = { "(SELECT 1) AS one LEFT JOIN executions e ON e.id = $1",
                   "LEFT JOIN workflows w ON w.id = $2" }
    if with_auth then
        cols[#cols + 1] = "a.id AS a_id, a.validated_at AS a_validated_at"
        from[#from + 1] = "LEFT JOIN LATERAL (SELECT id, validated_at FROM "
            .. "execution_authorizations WHERE id = $4 AND execution_id = $1 AND workflow_id = $2 "
            .. "AND user_id = $3 AND revoked = false AND expires_at > now() LIMIT 1) a ON true"
    end
    if has_dc then
        cols[#cols + 1] = "d.domain_configs"
        from[#from + 1] = "LEFT JOIN LATERAL (SELECT json_agg(json_build_object('config', "
            .. "config::text, 'user_id', user_id, 'workflow_id', workflow_id) ORDER BY created_at, "
            .. "id)::text AS domain_configs FROM domain_configs WHERE is_active = true AND "
            .. "((user_id IS NULL AND workflow_id IS NULL) OR (user_id = $3 AND workflow_id IS "
            .. "NULL) OR (user_id IS NULL AND workflow_id = $2) OR (user_id = $3 AND workflow_id "
            .. "= $2))) d ON true"
    end
    sql = "SELECT " .. table.concat(cols, ", ") .. " FROM " .. table.concat(from, " ")
    pickup_cache[key] = sql
    return sql
end

-- The domain_configs column of the pickup read as the rows resolve_domain_config takes
-- ({config = JSON text or nil, user_id, workflow_id}, JSON nulls as nil).
local function domain_config_rows(text)
    local list = text and json.decode(text)
    local rows = {}
    if type(list) ~= "table" then
        return rows
    end
    local function v(x)
        if x == json.null then
            return nil
        end
        return x
    end
    for i, r in ipairs(list) do
        rows[i] = { config = v(r.config), user_id = v(r.user_id), workflow_id = v(r.workflow_id) }
    end
    return rows
end

function M.process(job)
    local data = job.data
    if not is_record(data) then
        rex.unrecoverable("execute-workflow: job data must be an object")
    end
    for _, k in ipairs({ "executionId", "workflowId", "userId" }) do
        if not is_uuid(data[k]) then
            rex.unrecoverable(("execute-workflow: job data %s must be a UUID string"):format(k))
        end
    end
    if not store.configured() then
        rex.unrecoverable("execute-workflow needs DATABASE_URL (PostgreSQL) and it is not set")
    end
    local id, workflow_id, user_id = data.executionId, data.workflowId, data.userId
    log.info("Processing execution job", { jobId = job.id, executionId = id,
                                          workflowId = workflow_id,
                                          attempt = job.attempts_made + 1 })

    local ok, db = pcall(store.get)
    if not ok then
        fail_after_fault(job, id, "PostgreSQL unavailable: " .. util.error_text(db))
    end
    if db.schema_problems == nil then -- checked once per connection
        db.schema_problems = M.schema_problems(db) or false
    end
    if db.schema_problems then
        log.error("Execution failed", { executionId = id, error = db.schema_problems })
        if db:has_table("executions") then
            pcall(db.exec, db, "UPDATE executions SET status = 'failed', finished_at = now(), "
                .. "error_message = $2 WHERE id = $1 AND status <> 'canceled'",
                { id, clean_message(db.schema_problems) })
        end
        rex.unrecoverable(db.schema_problems)
    end
    apply_journal_throttled(db)

    local stats0 = db:stats()
    local x = setmetatable({
        db = db, id = id, workflow_id = workflow_id, user_id = user_id,
        tenant = DEFAULT_TENANT, sequence = 0, steps_written = 0, keys = {},
        cols = {
            steps_tenant = db:has_column("execution_steps", "tenant_id"),
            snapshots_tenant = db:has_column("execution_context_snapshots", "tenant_id"),
        },
        last_check = rex.monotonic_ms(),
        last_flush = rex.monotonic_ms(),
        flush_interval = env_number("REX_TELEMETRY_FLUSH_MS", 100),
        buf = { steps = {}, attempts = {}, snapshot = {}, retrieval = {}, guardrail = {} },
        merged = {},
        check_interval = env_number("REX_CANCEL_CHECK_MS", 200),
    }, Exec)

    -- pickup reads: one statement, so one transaction, one reply and one wake-up (four
    -- statements, each with its own Sync, cost PostgreSQL four transactions and four flushes and
    -- woke this thread up to four times; bench/e2e)
    local has_auth = db:has_table("execution_authorizations")
    local has_dc = db:has_table("domain_configs")
    local auth_id = data.executionAuthorizationId
    local with_auth = has_auth and is_uuid(auth_id)
    if not has_auth then
        x:warn_missing("authorizations", "Execution authorizations table not found; "
            .. "authorization is not enforced", { executionId = id })
    end
    -- (a parameter the statement does not use could not be typed: $3 only with either lateral)
    local params = { id, workflow_id, user_id, with_auth and auth_id or nil,
                     n = with_auth and 4 or has_dc and 3 or 2 }
    local rok, res = pcall(db.batch, db, { { pickup_sql(db, with_auth, has_dc), params } })
    if not rok then
        fail_after_fault(job, id, "PostgreSQL failure at pickup: " .. util.error_text(res))
    end
    if res[1].error then
        fail_after_fault(job, id, "PostgreSQL failure at pickup: " .. res[1].error.message)
    end
    local p = res[1].rows[1] or {}
    local erow = p.e_id and { status = p.status, started_at = p.started_at, run = p.run }
    local wrow = p.w_id and { tenant_id = p.tenant_id, nodes = p.nodes, edges = p.edges }
    local arow = p.a_id and { id = p.a_id, validated_at = p.a_validated_at }
    local dc_rows = domain_config_rows(p.domain_configs)
    if not erow or erow.status == "canceled" then
        log.info("Skipping execution job; execution is missing or canceled",
            { jobId = job.id, executionId = id })
        return nil
    end
    x.run, x.prev = erow.run, erow.started_at or null

    -- the final status, with the queued telemetry and the alert rules read, in one round trip;
    -- the rows still buffered and the status update are one statement (one transaction) and, if
    -- it fails, are sent again one by one so each part fails or succeeds as on its own
    local function finish(status, message)
        local final = { status, message == nil and null or clean_message(message) }
        local final_params = { id, final[1], final[2], x.run, n = 4 }
        x.last_flush = rex.monotonic_ms()
        local kinds, rows = x:take_rows()
        local entry
        local list = { { FINAL_ONLY, final_params } }
        if kinds then
            list[1][1], list[1][2], entry = x:merged_statement(kinds, rows, final)
        end
        if db:has_table("alert_rules") and db:has_table("alert_events") then
            list[2] = { x:alert_rules_sql() }
        end
        local bok, res = pcall(db.batch, db, list)
        if not bok then
            x:infra(res)
        end
        if res[1].error and entry then
            x:send_parts(entry)
            bok, res[1] = pcall(function()
                return db:batch({ { FINAL_ONLY, final_params } })[1]
            end)
            if not bok then
                x:infra(res[1])
            end
        end
        x:sync() -- no round trip: collects the failures of the flushed rows
        if res[1].error then
            x:infra(res[1].error)
        end
        if tonumber(res[1].rows[1] and res[1].rows[1].ours) ~= 1 then
            x.superseded = true
        end
        x.alert_rules = res[2]
    end

    -- The run's start (see "Runs and their fence" above): the execution becomes this run's
    -- unless another run started after the pickup read, or a stop request came in between
    -- (then the run owns nothing and writes nothing; the row stays `canceled`). On a re-run
    -- (BullMQ retry, stalled recovery) the earlier telemetry is removed in the same
    -- transaction, after the update, so rows a previous run was still writing are either
    -- removed or not written at all.
    local RUNNING = "UPDATE executions SET status = 'running', started_at = $2::timestamptz, "
        .. "finished_at = NULL, error_message = NULL WHERE id = $1 AND started_at IS NOT "
        .. "DISTINCT FROM $3::timestamptz AND status <> 'canceled'"
    local rerun = erow.status ~= "pending" or job.attempts_made > 0
    local function start_run(validate_auth)
        if rerun then
            x:send("BEGIN", nil, "cleanup")
        end
        if validate_auth then
            -- a first use of the authorization is marked in the same statement
            x:send("WITH a AS (UPDATE execution_authorizations SET validated_at = now() "
                .. "WHERE id = $4) " .. RUNNING, { id, x.run, x.prev, auth_id, n = 4 }, "running")
        else
            x:send(RUNNING, { id, x.run, x.prev, n = 3 }, "running")
        end
        if not rerun then
            return
        end
        for _, t in ipairs({ "execution_step_attempts", "execution_context_snapshots",
                             "execution_retrieval_events", "guardrail_events",
                             "execution_steps" }) do
            if db:has_table(t) then
                x:send("DELETE FROM " .. t .. " WHERE execution_id = $1 AND EXISTS (SELECT 1 "
                    .. "FROM executions WHERE id = $1 AND started_at = $2::timestamptz)",
                    { id, x.run }, "cleanup")
            end
        end
        x:send("COMMIT", nil, "cleanup")
        log.info("Re-run of an execution: earlier telemetry removed",
            { executionId = id, previousStatus = erow.status, attempt = job.attempts_made + 1 })
    end

    local pres = { pcall(function()
        -- the execution is `running` from here on, whatever follows
        -- authorization (§2.2)
        if has_auth then
            if not is_uuid(auth_id) then
                start_run(false)
                return "unauthorized", (type(auth_id) == "string" and auth_id ~= "")
                    and "Execution authorization is invalid, revoked, or expired"
                    or "Execution authorization token missing from job payload"
            end
            if not arow then
                start_run(false)
                return "unauthorized", "Execution authorization is invalid, revoked, or expired"
            end
            start_run(not arow.validated_at)
        else
            start_run(false)
        end

        -- workflow
        if not wrow then
            return "failed", ("Workflow %s not found"):format(workflow_id)
        end
        if wrow.tenant_id then
            x.tenant = wrow.tenant_id
        end
        local domain_config = M.resolve_domain_config(dc_rows, data.domainConfig)
        local node_list = json.decode(wrow.nodes or "[]")
        local edge_list = json.decode(wrow.edges or "[]")
        local wf = { id = workflow_id, edges = edge_list }
        if type(node_list) == "table" and (util.is_array(node_list) or next(node_list) == nil) then
            wf.nodes = M.apply_domain_config(node_list, domain_config)
        else
            wf.nodes = node_list -- the engine's validation reports it
        end

        local trigger = is_record(data.triggerPayload) and data.triggerPayload or {}
        -- knowledge in PostgreSQL (rex.knowledge.pg), with the retrieval settings of the
        -- resolved domain config (6.5 step 1); created on first use only
        local kn
        local function knowledge()
            if not kn then
                local retr = is_record(domain_config.retrieval) and domain_config.retrieval or false
                kn = require("rex.knowledge.pg").new(x.db, {
                    tenant_id = x.tenant, retrieval = retr,
                    candidate_multiplier = retr and finite_number(retr.candidateMultiplier),
                    get_api_key = function(provider)
                        return x:get_api_key(provider)
                    end,
                    http_allowlist = os.getenv("REX_HTTP_ALLOWLIST"),
                })
            end
            return kn
        end
        -- the database failing under a knowledge call fails the job (BullMQ retries it), as for
        -- telemetry; anything else fails the node
        local function knowledge_call(method, p)
            local ok, res = pcall(method, knowledge(), p)
            if ok then
                return res
            end
            if require("rex.knowledge.pg").is_transient(res) then
                x:infra(res)
            end
            error(type(res) == "table" and tostring(res.message) or res, 0)
        end
        local result = get_engine():run(wf, {
            trigger_payload = trigger, execution_id = id, workflow_id = workflow_id,
            user_id = user_id,
            initial_context = { memory = { triggerPayload = trigger, domainConfig = domain_config } },
            settings = { http_allowlist = os.getenv("REX_HTTP_ALLOWLIST") },
            runtime = {
                on_step_start = function()
                    x:check_cancel(false)
                end,
                on_step_complete = function(step)
                    x:on_step_complete(step)
                end,
                on_context_update = function(upd)
                    x:on_context_update(upd)
                end,
                on_retrieval_event = function(ev)
                    x:on_retrieval_event(ev)
                end,
                retrieve_knowledge = function(p)
                    return knowledge_call(require("rex.knowledge.pg").PG.retrieve, p)
                end,
                ingest_knowledge = function(p)
                    return knowledge_call(require("rex.knowledge.pg").PG.ingest, p)
                end,
                get_api_key = function(provider)
                    return x:get_api_key(provider)
                end,
            },
        })
        x.keys = {}
        if x.infra_error then
            error({ message = x.infra_error, infra = true }, 0)
        end
        return result.status, result.status ~= "completed" and result.errorMessage or nil, result
    end) }
    local main_ok, main_err = pres[1], pres[2]

    local function superseded()
        log.warn("Execution run superseded (taken over by a newer run, stopped before it "
            .. "started, or its row is gone); this run's results are not written",
            { executionId = id, jobId = job.id, attempt = job.attempts_made + 1 })
        return nil
    end
    if not main_ok then
        local msg = util.error_text(main_err)
        log.error("Execution failed", { executionId = id, workflowId = workflow_id, error = msg,
                                       attempt = job.attempts_made + 1 })
        fail_after_fault(job, id, msg, x)
    end
    if x.superseded then
        return superseded()
    end
    local status, message, result = pres[2], pres[3], pres[4]
    local fok, ferr = pcall(finish, status == "unauthorized" and "failed" or status, message)
    if not fok then
        local msg = util.error_text(ferr)
        log.error("Execution failed", { executionId = id, workflowId = workflow_id, error = msg,
                                       attempt = job.attempts_made + 1 })
        fail_after_fault(job, id, msg, x)
    end
    if x.superseded then
        return superseded()
    end
    x:evaluate_alerts()
    if status == "unauthorized" then
        log.error("Execution failed", { executionId = id, workflowId = workflow_id,
                                       error = message, attempt = job.attempts_made + 1 })
        rex.unrecoverable(message)
    end
    local completed = 0
    for _, st in ipairs(result and result.steps or {}) do
        if st.status == "completed" then
            completed = completed + 1
        end
    end
    local stats1 = x.db.conn and x.db:stats() or stats0
    log.info("Execution completed", { executionId = id, status = status,
        totalDurationMs = result and result.totalDurationMs or 0, stepsCompleted = completed,
        statements = stats1.statements - stats0.statements,
        roundTrips = stats1.roundtrips - stats0.roundtrips })
    return nil
end

return M
