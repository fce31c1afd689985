-- rex.textscan: a tiny backtracking matcher for the fixed JavaScript regular expressions the
-- original's data-cleaner and guard nodes use (character classes with counts, word boundaries,
-- alternatives). Patterns are built in Lua code, never from user input.
--
--   local ts = require("rex.textscan")
--   local p = ts.pattern({ { ts.rep(ts.set("0-9"), 3, 3), ts.lit("-"), ... } }, { ci = true })
--   for s, e in ts.each(p, text) do ... end   -- 1-based inclusive spans, non-overlapping
local byte, sub, lower, find = string.byte, string.sub, string.lower, string.find
local floor = math.floor

local M = {}

local function word_byte(c)
    return c and ((c >= 48 and c <= 57) or (c >= 65 and c <= 90) or (c >= 97 and c <= 122) or c == 95)
end
M.word_byte = word_byte

-- A byte set from a class body like "A-Za-z0-9._%+-" (a leading or trailing "-" is literal).
-- Extra named sets: "\\d", "\\s", "\\w" inside the body.
function M.set(body, ci)
    local t = {}
    local i, n = 1, #body
    while i <= n do
        local c = sub(body, i, i)
        if c == "\\" then
            local e = sub(body, i + 1, i + 1)
            if e == "d" then
                for b = 48, 57 do t[b] = true end
            elseif e == "s" then
                for _, b in ipairs({ 9, 10, 11, 12, 13, 32 }) do t[b] = true end
            elseif e == "w" then
                for b = 0, 255 do
                    if word_byte(b) then t[b] = true end
                end
            else
                t[byte(e)] = true
            end
            i = i + 2
        elseif i + 2 <= n and sub(body, i + 1, i + 1) == "-" then
            for b = byte(c), byte(body, i + 2) do
                t[b] = true
            end
            i = i + 3
        else
            t[byte(c)] = true
            i = i + 1
        end
    end
    if ci then
        for b = 65, 90 do
            if t[b] or t[b + 32] then
                t[b], t[b + 32] = true, true
            end
        end
    end
    return t
end

function M.rep(set, min, max)
    return { set = set, min = min, max = max or math.huge }
end

function M.lit(s, ci)
    local items = {}
    for i = 1, #s do
        local b = byte(s, i)
        local t = { [b] = true }
        if ci then
            t[byte(lower(sub(s, i, i)))] = true
            t[byte(sub(s, i, i):upper())] = true
        end
        items[i] = { set = t, min = 1, max = 1 }
    end
    return items
end

M.boundary = { boundary = true }

-- Flattens nested item lists into one sequence.
function M.seq(...)
    local out = {}
    local function add(x)
        if x.set or x.boundary then
            out[#out + 1] = x
        else
            for _, y in ipairs(x) do
                add(y)
            end
        end
    end
    for i = 1, select("#", ...) do
        add((select(i, ...)))
    end
    return out
end

local function match_items(s, n, i, items, k)
    local it = items[k]
    if not it then
        return i
    end
    if it.boundary then
        local a = word_byte(byte(s, i - 1))
        local b = word_byte(byte(s, i))
        if (a and not b) or (b and not a) then
            return match_items(s, n, i, items, k + 1)
        end
        return nil
    end
    local set, count = it.set, 0
    local maxc = it.max
    while count < maxc and i + count <= n and set[byte(s, i + count)] do
        count = count + 1
    end
    if count < it.min then
        return nil
    end
    -- a next item that needs a byte of its set cannot match where that byte is not: skip
    -- those lengths without the call
    local nxt = items[k + 1]
    local need = nxt and nxt.set and nxt.min >= 1 and nxt.set
    for c = count, it.min, -1 do
        if not need or need[byte(s, i + c)] then
            local e = match_items(s, n, i + c, items, k + 1)
            if e then
                return e
            end
        end
    end
    return nil
end

-- Alternatives are tried in order at each position (as a regex alternation / greedy optional).
function M.match_at(alts, s, i)
    local n = #s
    for a = 1, #alts do
        local e = match_items(s, n, i, alts[a], 1)
        if e then
            return e
        end
    end
    return nil
end

-- Iterates non-overlapping matches of alts in s: yields start, end (inclusive).
-- `first`, when given, is a Lua pattern class of the bytes a non-empty match can start with:
-- other positions are skipped (string.find, in C). They could only give no match or an empty
-- one, and both just move on by one byte.
local function scan(alts, s, first)
    local i, n = 1, #s
    return function()
        while i <= n do
            if first then
                i = find(s, first, i)
                if not i then
                    i = n + 1
                    return nil
                end
            end
            local e = M.match_at(alts, s, i)
            if e then
                local st = i
                if e == i then
                    i = i + 1
                    if e > st then
                        return st, e - 1
                    end
                else
                    i = e
                    return st, e - 1
                end
            else
                i = i + 1
            end
        end
        return nil
    end
end

-- A byte set as a Lua pattern class ("[...]"; runs of letters or digits as ranges, other bytes
-- escaped), or nil when it holds every byte (no filtering to gain).
local function ascii_alnum(b)
    return (b >= 48 and b <= 57) or (b >= 65 and b <= 90) or (b >= 97 and b <= 122)
end

local function class_of(set)
    local parts, count, b = {}, 0, 0
    while b <= 255 do
        if set[b] then
            local c = string.char(b)
            if ascii_alnum(b) then
                local e = b
                while e < 255 and set[e + 1] and ascii_alnum(e + 1) do
                    e = e + 1
                end
                parts[#parts + 1] = e - b >= 2 and c .. "-" .. string.char(e)
                    or c .. (e > b and string.char(e) or "")
                count = count + e - b + 1
                b = e
            else
                parts[#parts + 1] = b == 0 and "%z" or "%" .. c
                count = count + 1
            end
        end
        b = b + 1
    end
    if count == 256 then
        return nil
    end
    return "[" .. table.concat(parts) .. "]"
end

-- What each alternative needs (the classes of its items that consume at least one byte: a
-- string without a byte of one of them cannot match it) and the bytes it can start with (the
-- items up to the first that consumes at least one byte; boundaries consume none). Computed once
-- per pattern.
local plans = setmetatable({}, { __mode = "k" })
local function plan_of(alts)
    local p = plans[alts]
    if p then
        return p
    end
    assert(#alts <= 50, "textscan: at most 50 alternatives per pattern") -- M.each's bit key
    p = { scans = {} }
    for a, items in ipairs(alts) do
        local need, start = {}, {}
        local open = true -- still before the first item that must consume a byte
        for _, it in ipairs(items) do
            if it.set then
                if open then
                    for b in pairs(it.set) do
                        start[b] = true
                    end
                end
                if it.min >= 1 then
                    open = false
                    local cls = class_of(it.set)
                    if cls then
                        need[#need + 1] = cls
                    end
                end
            end
        end
        p[a] = { items = items, need = need, start = start }
    end
    plans[alts] = p
    return p
end

-- Iterates non-overlapping matches: yields start, end (inclusive). Alternatives the string
-- cannot match (it lacks a byte they need) are left out first, and positions no remaining
-- alternative can start at are skipped; what is found is what trying every alternative at
-- every position finds.
function M.each(alts, s)
    local plan = plan_of(alts)
    local key = 0 -- the viable alternatives as bits (patterns have a handful)
    for i, a in ipairs(plan) do
        local ok = true
        for _, cls in ipairs(a.need) do
            if not find(s, cls) then
                ok = false
                break
            end
        end
        if ok then
            key = key + 2 ^ (i - 1)
        end
    end
    local scan_of = plan.scans[key]
    if scan_of == nil then -- the viable alternatives and where they can start, once per subset
        local viable, start = {}, {}
        for i, a in ipairs(plan) do
            if floor(key / 2 ^ (i - 1)) % 2 == 1 then
                viable[#viable + 1] = a.items
                for b in pairs(a.start) do
                    start[b] = true
                end
            end
        end
        -- none, or only empty matches (never yielded): false
        scan_of = next(start) ~= nil and { alts = viable, first = class_of(start) } or false
        plan.scans[key] = scan_of
    end
    if not scan_of then
        return function()
            return nil
        end
    end
    return scan(scan_of.alts, s, scan_of.first)
end

-- The same without the filtering (the reference the spec compares M.each with).
function M.each_unfiltered(alts, s)
    return scan(alts, s, nil)
end

function M.first(alts, s)
    local it = M.each(alts, s)
    return it()
end

return M
