-- rex.nodes: the node registry. Loads every built-in node from nodes/ and custom nodes from the
-- REX_NODES_PATH directories (a custom node with a built-in's type replaces it, with a warning).
--
-- A node file returns { type, version?, schema? , validate?(config), execute(ctx, input, config) }
-- (interface.md). `schema` maps config keys to field specs:
--   { type = "string"|"number"|"integer"|"boolean"|"object"|"array"|"any" or a list of them,
--     required = bool, default = value, enum = {values}, doc = "text" }
-- The schema is checked when the file is loaded and each config against it at validation;
-- `validate(config)` (returning true, or nil/false and a list of messages or one message) adds
-- node-specific checks.
local rex = require("rex")
local util = require("rex.util")

local type, pairs, ipairs, pcall, tostring = type, pairs, ipairs, pcall, tostring
local concat, sort = table.concat, table.sort
local null = util.null

local nodes = {}

-- The original's registration order (the "Available types" list of the unknown-type error).
nodes.BUILTIN_ORDER = {
    "webhook-trigger", "manual-trigger", "schedule-trigger", "data-cleaner", "llm",
    "json-validator", "storage", "log", "http-request", "condition", "code", "transformer",
    "output", "file-upload", "memory-write", "memory-read", "execution-control", "evaluation",
    "knowledge-ingest", "knowledge-retrieve", "input-guard", "output-guard", "json-simplify",
}

local FIELD_TYPES = { string = true, number = true, integer = true, boolean = true, object = true,
                      array = true, any = true }

-- Checks a schema declaration; returns nil or an error message.
function nodes.check_schema(schema)
    if type(schema) ~= "table" then
        return "schema must be a table"
    end
    for key, spec in pairs(schema) do
        if type(key) ~= "string" then
            return "schema keys must be strings"
        end
        if type(spec) ~= "table" then
            return ("schema field '%s' must be a table"):format(key)
        end
        local t = spec.type or "any"
        local list = type(t) == "table" and t or { t }
        for _, x in ipairs(list) do
            if not FIELD_TYPES[x] then
                return ("schema field '%s' has unknown type '%s'"):format(key, tostring(x))
            end
        end
        if spec.required ~= nil and type(spec.required) ~= "boolean" then
            return ("schema field '%s': required must be a boolean"):format(key)
        end
        if spec.enum ~= nil and type(spec.enum) ~= "table" then
            return ("schema field '%s': enum must be a list"):format(key)
        end
        if spec.doc ~= nil and type(spec.doc) ~= "string" then
            return ("schema field '%s': doc must be a string"):format(key)
        end
    end
    return nil
end

local function type_ok(t, v)
    if t == "any" then
        return true
    elseif t == "string" then
        return type(v) == "string"
    elseif t == "number" then
        return type(v) == "number"
    elseif t == "integer" then
        return type(v) == "number" and v == math.floor(v)
    elseif t == "boolean" then
        return type(v) == "boolean"
    elseif t == "object" then
        return util.is_record(v)
    elseif t == "array" then
        return util.is_array(v) or (type(v) == "table" and next(v) == nil)
    end
    return false
end

-- Errors of a config against a schema (keys in sorted order).
function nodes.schema_errors(schema, config)
    local errs = {}
    local keys = {}
    for k in pairs(schema) do
        keys[#keys + 1] = k
    end
    sort(keys)
    for _, k in ipairs(keys) do
        local spec = schema[k]
        local v = config[k]
        if v == nil or v == null then
            if spec.required then
                errs[#errs + 1] = ("'%s' is required"):format(k)
            end
        else
            local t = spec.type or "any"
            local list = type(t) == "table" and t or { t }
            local ok = false
            for _, x in ipairs(list) do
                if type_ok(x, v) then
                    ok = true
                    break
                end
            end
            if not ok then
                errs[#errs + 1] = ("'%s' must be %s"):format(k, concat(list, " or "))
            elseif spec.enum then
                local found = false
                for _, e in ipairs(spec.enum) do
                    if e == v then
                        found = true
                        break
                    end
                end
                if not found then
                    local names = {}
                    for i, e in ipairs(spec.enum) do
                        names[i] = tostring(e)
                    end
                    errs[#errs + 1] = ("'%s' must be one of: %s"):format(k, concat(names, ", "))
                end
            end
        end
    end
    return errs
end

-- Markdown documentation of a node type, generated from its schema (the same source that is
-- checked at load and at validation).
function nodes.doc(def)
    local lines = { ("### %s"):format(def.type), "" }
    if def.version then
        lines[#lines + 1] = ("version %s"):format(tostring(def.version))
        lines[#lines + 1] = ""
    end
    lines[#lines + 1] = "| key | type | required | default | meaning |"
    lines[#lines + 1] = "|---|---|---|---|---|"
    local keys = {}
    for k in pairs(def.schema or {}) do
        keys[#keys + 1] = k
    end
    sort(keys)
    for _, k in ipairs(keys) do
        local spec = def.schema[k]
        local t = spec.type or "any"
        if type(t) == "table" then
            t = concat(t, " or ")
        end
        local default = ""
        if spec.default ~= nil then
            default = require("rex").json.encode(spec.default) or tostring(spec.default)
        end
        lines[#lines + 1] = ("| `%s` | %s | %s | %s | %s |"):format(k, t,
            spec.required and "yes" or "", default, spec.doc or "")
    end
    return concat(lines, "\n")
end

---------------------------------------------------------------------------------------------------

local Registry = {}
Registry.__index = Registry

local function check_def(def)
    if type(def) ~= "table" then
        return "a node file must return a table"
    end
    if type(def.type) ~= "string" or def.type == "" then
        return "node table has no 'type' string"
    end
    if type(def.execute) ~= "function" then
        return "node table has no 'execute' function"
    end
    if def.schema == nil and def.validate == nil then
        return "node table needs a 'schema' or a 'validate' function"
    end
    if def.validate ~= nil and type(def.validate) ~= "function" then
        return "'validate' must be a function"
    end
    if def.schema ~= nil then
        local err = nodes.check_schema(def.schema)
        if err then
            return err
        end
    end
    return nil
end

function Registry:register(def, origin)
    local err = check_def(def)
    if err then
        return nil, err
    end
    local has_defaults = false
    for _, spec in pairs(def.schema or {}) do
        if spec.default ~= nil then
            has_defaults = true
        end
    end
    def._has_defaults = has_defaults
    def._origin = origin
    if self.by_type[def.type] then
        if self.builtin[def.type] and origin ~= "builtin" then
            self.log.warn("Custom node replaces a built-in node type",
                { type = def.type, file = origin })
        elseif origin ~= "builtin" then
            self.log.warn("Node type defined twice; the later file wins",
                { type = def.type, file = origin })
        end
    else
        self.order[#self.order + 1] = def.type
    end
    if origin == "builtin" then
        self.builtin[def.type] = true
    end
    self.by_type[def.type] = def
    return true
end

function Registry:get(t)
    return self.by_type[t]
end

function Registry:types()
    return self.order
end

function Registry:validate_config(def, config)
    if config == nil or config == null then
        config = {}
    end
    local errs = {}
    if type(config) ~= "table" then
        return { "config must be an object" }
    end
    if def.schema then
        errs = nodes.schema_errors(def.schema, config)
    end
    if def.validate then
        local ok, res, more = pcall(def.validate, config)
        if not ok then
            errs[#errs + 1] = "validator raised an error: " .. util.error_text(res)
        elseif not (res == true or (res == nil and more == nil)) then
            local list = (res == nil or res == false) and more or res
            if type(list) == "string" then
                errs[#errs + 1] = list
            elseif type(list) == "table" then
                for _, m in ipairs(list) do
                    errs[#errs + 1] = tostring(m)
                end
            end
        end
    end
    return errs
end

-- The config a node's execute receives: schema defaults filled in for absent keys.
function Registry:apply_defaults(def, config)
    if not def._has_defaults then
        return config
    end
    local out = {}
    for k, v in pairs(config) do
        out[k] = v
    end
    for k, spec in pairs(def.schema) do
        if out[k] == nil and spec.default ~= nil then
            out[k] = spec.default
        end
    end
    return out
end

local list_dir = require("rex.core").listdir -- sorted names, or nil and a message


-- Loads every *.lua of dir. Returns the count loaded and a list of problems.
function Registry:load_dir(dir, origin_kind)
    local names = list_dir(dir)
    local problems = {}
    if not names then
        return 0, { ("cannot list %s"):format(dir) }
    end
    local n = 0
    for _, name in ipairs(names) do
        if name:sub(-4) == ".lua" then
            local path = dir .. "/" .. name
            local chunk, err = loadfile(path)
            local ok, def = false, nil
            if chunk then
                ok, def = pcall(chunk)
                if not ok then
                    err = util.error_text(def)
                end
            end
            if not chunk or not ok then
                problems[#problems + 1] = ("%s: %s"):format(path, tostring(err))
            else
                local rok, rerr = self:register(def, origin_kind == "builtin" and "builtin" or path)
                if rok then
                    n = n + 1
                else
                    problems[#problems + 1] = ("%s: %s"):format(path, rerr)
                end
            end
        end
    end
    for _, p in ipairs(problems) do
        self.log.error("Node file could not be loaded", { problem = p })
    end
    return n, problems
end

-- The project's home (holding lua/ and nodes/).
function nodes.home()
    if package.rex_home then
        return package.rex_home
    end
    local path = package.searchpath and package.searchpath("rex.nodes", package.path)
    if path then
        local home = path:gsub("/?lua/rex/nodes%.lua$", "")
        if home == "" then
            home = "."
        end
        return home
    end
    return "."
end

-- opts: builtin_dir (default <home>/nodes), paths (list of custom dirs, or a colon-separated
-- string), log.
function nodes.new(opts)
    opts = opts or {}
    local self = setmetatable({ by_type = {}, order = {}, builtin = {},
                                log = opts.log or rex.log, problems = {} }, Registry)
    -- built-ins in the original's order first, then any other file of the directory
    local dir = opts.builtin_dir or (nodes.home() .. "/nodes")
    -- the installation's own node files are parsed once per process (rex.core.load_cached)
    local load_chunk = not opts.builtin_dir and require("rex.core").load_cached or loadfile
    for _, t in ipairs(nodes.BUILTIN_ORDER) do
        local path = dir .. "/" .. t .. ".lua"
        local chunk = load_chunk(path)
        if chunk then
            local ok, def = pcall(chunk)
            if ok then
                local rok, err = self:register(def, "builtin")
                if not rok then
                    self.problems[#self.problems + 1] = path .. ": " .. err
                end
            else
                self.problems[#self.problems + 1] = path .. ": " .. util.error_text(def)
            end
        end
    end
    local names = list_dir(dir) or {}
    for _, name in ipairs(names) do
        local t = name:sub(1, -5)
        if name:sub(-4) == ".lua" and not self.by_type[t] then
            local chunk, err = load_chunk(dir .. "/" .. name)
            if chunk then
                local ok, def = pcall(chunk)
                if ok then
                    self:register(def, "builtin")
                else
                    self.problems[#self.problems + 1] = name .. ": " .. util.error_text(def)
                end
            else
                self.problems[#self.problems + 1] = tostring(err)
            end
        end
    end
    local paths = opts.paths
    if type(paths) == "string" then
        local list = {}
        for p in paths:gmatch("[^:]+") do
            list[#list + 1] = p
        end
        paths = list
    end
    for _, p in ipairs(paths or {}) do
        local _, probs = self:load_dir(p, "custom")
        for _, x in ipairs(probs) do
            self.problems[#self.problems + 1] = x
        end
    end
    return self
end

local default_registry
-- The registry of this Lua state: built-ins plus REX_NODES_PATH (loaded once).
function nodes.default()
    if not default_registry then
        default_registry = nodes.new({ paths = os.getenv("REX_NODES_PATH") })
    end
    return default_registry
end

return nodes
