-- rex.hooks: lifecycle hook scripts from REX_HOOKS_PATH (interface.md). Each *.lua file returns
-- a table with any of on_job_active(job), on_job_completed(job, result), on_job_failed(job, err),
-- on_execution_start(execution), on_step_complete(step), on_context_update(update),
-- on_retrieval_event(event), on_execution_finish(execution, result).
--
-- Hooks run under pcall: an error is logged and never fails anything. A hook fails the job (or
-- the execution) only by returning an explicit failure: `return false, "reason"` or
-- `return { fail = "reason" }`. Hook scripts are the operator's code: full Lua environment.
local rex = require("rex")
local util = require("rex.util")

local hooks = {}

hooks.EVENTS = { "on_job_active", "on_job_completed", "on_job_failed", "on_execution_start",
                 "on_step_complete", "on_context_update", "on_retrieval_event",
                 "on_execution_finish" }

local Set = {}
Set.__index = Set

local list_dir = require("rex.core").listdir -- sorted names, or nil and a message


-- Loads hooks. opts.paths: list or colon-separated string (default REX_HOOKS_PATH);
-- opts.scripts: list of already-loaded hook tables (tests); opts.log.
function hooks.load(opts)
    opts = opts or {}
    local self = setmetatable({ entries = {}, log = opts.log or rex.log, problems = {} }, Set)
    local paths = opts.paths
    if paths == nil then
        paths = os.getenv("REX_HOOKS_PATH")
    end
    if type(paths) == "string" then
        local list = {}
        for p in paths:gmatch("[^:]+") do
            list[#list + 1] = p
        end
        paths = list
    end
    for _, dir in ipairs(paths or {}) do
        for _, name in ipairs(list_dir(dir) or {}) do
            if name:sub(-4) == ".lua" then
                local path = dir .. "/" .. name
                local chunk, err = loadfile(path)
                local ok, t = false, nil
                if chunk then
                    ok, t = pcall(chunk)
                    if not ok then
                        err = util.error_text(t)
                    elseif type(t) ~= "table" then
                        ok, err = false, "a hook file must return a table"
                    end
                end
                if ok then
                    self.entries[#self.entries + 1] = { file = path, hooks = t }
                else
                    self.problems[#self.problems + 1] = path .. ": " .. tostring(err)
                    self.log.error("Hook file could not be loaded", { file = path,
                                                                     error = tostring(err) })
                end
            end
        end
    end
    for i, t in ipairs(opts.scripts or {}) do
        self.entries[#self.entries + 1] = { file = "script#" .. i, hooks = t }
    end
    -- one function per event, present only when some hook defines it
    for _, ev in ipairs(hooks.EVENTS) do
        local any = false
        for _, e in ipairs(self.entries) do
            if type(e.hooks[ev]) == "function" then
                any = true
            end
        end
        if any then
            self[ev] = function(...)
                return self:call(ev, ...)
            end
        end
    end
    return self
end

-- Calls every hook of an event in load order. Returns nil, or the first explicit failure text.
function Set:call(ev, ...)
    local failure
    for _, e in ipairs(self.entries) do
        local f = e.hooks[ev]
        if type(f) == "function" then
            local ok, r1, r2 = pcall(f, ...)
            if not ok then
                self.log.error("Lifecycle hook failed", { hook = ev, file = e.file,
                                                          error = util.error_text(r1) })
            elseif r1 == false then
                failure = failure or (type(r2) == "string" and r2 or ("hook " .. ev .. " failed"))
            elseif type(r1) == "table" and r1.fail ~= nil then
                failure = failure or util.error_text(r1.fail)
            end
        end
    end
    return failure
end

function Set:count()
    return #self.entries
end

return hooks
