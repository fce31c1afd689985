-- rex.store: PostgreSQL for Lua job handlers (one connection per Lua state, i.e. per worker
-- thread, connected lazily, reconnected after a failure).
--
--   local store = require("rex.store")
--   local db = store.get()                      -- raises {message, connection=true} if down
--   local rows = db:exec(sql, {p1, p2, ...})   -- one round trip (also flushes what is queued)
--   local res = db:batch({ {sql, params}, ... })  -- several statements, one round trip:
--                                               -- res[i] = {rows=..., affected=n} | {error=...}
--   db:send(sql, params, tag)                   -- queued in libpq pipeline mode, no wait
--   local failures = db:sync()                  -- waits for what was queued: {tag, sqlstate, message}
--   db:transaction(function() ... end)          -- BEGIN/COMMIT (ROLLBACK on error)
--   db:has_table(name), db:has_column(table, column), db:column_type(table, column)
--   store.decrypt_api_key(stored, master_key)   -- plaintext | nil, err (REX's format, §2.4)
--   store.migrate(conninfo)                     -- applies the embedded migrations
--   store.configured()                          -- DATABASE_URL is set (and not empty)
--
-- Parameters: strings, numbers, booleans, nil/rex.null (SQL NULL); tables are JSON-encoded.
-- Results: rows are tables keyed by column name with text values (NULL = absent).
-- Errors raised by exec/transaction are tables {message, sqlstate?, connection}; `connection`
-- true means the connection was lost (the next store.get() reconnects).
local rex = require("rex")
local native = require("rex.native")

local type, pairs, error, tostring, select, pcall = type, pairs, error, tostring, select, pcall
local json = rex.json

local store = {}
local DB = {}
DB.__index = DB

local C
local function c_mod()
    if not C then
        local mod, err = native.load("rex.store_c")
        if not mod then
            error(err, 0)
        end
        C = mod
    end
    return C
end

local function params_of(p)
    if p == nil then
        return nil
    end
    local out = { n = p.n or #p }
    for i = 1, out.n do
        local v = p[i]
        if type(v) == "table" then
            v = json.encode(v)
        end
        out[i] = v
    end
    return out
end

local function wrap(self, ok, ...)
    if ok then
        return ...
    end
    local err = ...
    if type(err) == "table" and err.connection then
        self:_drop()
    end
    error(err, 0)
end

function DB:_drop()
    if self.conn then
        pcall(self.conn.close, self.conn)
    end
    self.conn = nil
    if store._current == self then
        store._current = nil
    end
end

-- the live connection, or a connection error (after a loss, until store.get() reconnects)
local function live(self)
    local c = self.conn
    if not c then
        error({ message = "PostgreSQL connection lost (reconnecting on next use)",
                connection = true }, 0)
    end
    return c
end

function DB:exec(sql, params)
    local c = live(self)
    return wrap(self, pcall(c.exec, c, sql, params_of(params)))
end

function DB:batch(list)
    local c = live(self)
    local l = {}
    for i, s in ipairs(list) do
        l[i] = { s[1], params_of(s[2]) }
    end
    return wrap(self, pcall(c.batch, c, l))
end

function DB:send(sql, params, tag)
    local c = live(self)
    return wrap(self, pcall(c.send, c, sql, params_of(params), tag))
end

function DB:sync()
    local c = live(self)
    return wrap(self, pcall(c.sync, c))
end

function DB:pending()
    return self.conn and self.conn:pending() or 0
end

function DB:stats()
    return self.conn:stats()
end

function DB:set_per_row(on)
    self.conn:set_per_row(on and true or false)
end

function DB:transaction(fn, ...)
    live(self)
    self:exec("BEGIN")
    local res = { pcall(fn, ...) }
    if not res[1] then
        if self.conn then
            pcall(self.conn.exec, self.conn, "ROLLBACK")
        end
        error(res[2], 0)
    end
    self:exec("COMMIT")
    return select(2, unpack(res))
end

function DB:has_table(name)
    return self.schema[name] ~= nil
end

function DB:has_column(t, c)
    local cols = self.schema[t]
    return cols ~= nil and cols[c] ~= nil
end

function DB:column_type(t, c)
    local cols = self.schema[t]
    return cols and cols[c] and cols[c].type or nil
end

-- Connects (DATABASE_URL unless conninfo is given) and introspects the schema. Returns a DB or
-- nil, err.
function store.connect(conninfo, opts)
    opts = opts or {}
    local mod = c_mod()
    conninfo = conninfo or os.getenv("DATABASE_URL")
    if not conninfo or conninfo == "" then
        return nil, "DATABASE_URL is not set"
    end
    local conn, err = mod.connect(conninfo, opts.connect_timeout or 10)
    if not conn then
        return nil, err
    end
    local self = setmetatable({ conn = conn }, DB)
    local ok, schema = pcall(conn.schema, conn)
    if not ok then
        pcall(conn.close, conn)
        return nil, type(schema) == "table" and schema.message or tostring(schema)
    end
    self.schema = schema
    -- REX_PG_PER_ROW=1: one round trip per statement (the benchmark's baseline)
    if os.getenv("REX_PG_PER_ROW") == "1" then
        conn:set_per_row(true)
    end
    local timeout = tonumber(os.getenv("REX_PG_STATEMENT_TIMEOUT_MS") or "") or 30000
    if timeout > 0 then
        local sok, serr = pcall(conn.exec, conn,
            ("SET statement_timeout = %d"):format(math.floor(timeout)))
        if not sok then
            pcall(conn.close, conn)
            return nil, type(serr) == "table" and serr.message or tostring(serr)
        end
    end
    return self
end

-- The state's shared connection, connected on first use and after a failure. Raises
-- {message, connection = true} when the database cannot be reached.
-- true when DATABASE_URL names a database (set and not empty)
function store.configured()
    local url = os.getenv("DATABASE_URL")
    return url ~= nil and url ~= ""
end

function store.get()
    local cur = store._current
    if cur and cur.conn and cur.conn:ok() and cur.conn:pending() == 0 then
        return cur
    end
    if cur and cur.conn and cur.conn:ok() then
        return cur
    end
    if cur then
        cur:_drop()
    end
    local db, err = store.connect()
    if not db then
        error({ message = tostring(err), connection = true }, 0)
    end
    store._current = db
    return db
end

function store.decrypt_api_key(stored, master_key)
    return c_mod().decrypt_api_key(stored, master_key)
end

-- A provider's stored key (api_keys.encrypted_key) decrypted with ENCRYPTION_MASTER_KEY, or a
-- raised message naming the provider (never the key).
function store.provider_key(provider, encrypted)
    local master = os.getenv("ENCRYPTION_MASTER_KEY")
    if not master or master == "" then
        error(("The %s API key cannot be decrypted: ENCRYPTION_MASTER_KEY is not set"):format(
            provider), 0)
    end
    local key, err = store.decrypt_api_key(encrypted, master)
    if not key then
        error(("The %s API key cannot be decrypted: %s"):format(provider, tostring(err)), 0)
    end
    return key
end

function store.encrypt_api_key(plaintext, master_key, salt, iv)
    return c_mod().encrypt_api_key(plaintext, master_key, salt, iv)
end

function store.migrate(conninfo)
    return c_mod().migrate(conninfo or os.getenv("DATABASE_URL"))
end

-- true the first time `key` is seen in this process (all threads): warn once.
function store.first_time(key)
    return c_mod().first_time(key)
end

local _ = pairs
return store
