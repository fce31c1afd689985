-- rex.native: loads the C modules that have no .so of their own (rex.http_c, rex.sandbox_c).
-- In the rex-worker binary they are in package.preload; under a plain luajit (busted specs,
-- LuaRocks) they live in the rex.core library and are opened with package.loadlib.
local native = {}

local cache = {}

function native.load(name)
    if cache[name] then
        return cache[name]
    end
    local ok, mod = pcall(require, name)
    if ok then
        cache[name] = mod
        return mod
    end
    local path = package.searchpath and package.searchpath("rex.core", package.cpath)
    if not path then
        return nil, ("C module %s is not available (no rex.core library on package.cpath)"):format(name)
    end
    local sym = "luaopen_" .. name:gsub("%.", "_")
    local open, err = package.loadlib(path, sym)
    if not open then
        return nil, ("C module %s is not available: %s"):format(name, tostring(err))
    end
    mod = open()
    package.loaded[name] = mod
    cache[name] = mod
    return mod
end

return native
