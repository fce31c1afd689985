-- rex.textscan: a tiny backtracking matcher for the fixed JavaScript regular expressions the
-- original's data-cleaner and guard nodes use (character classes with counts, word boundaries,
-- alternatives). Patterns are built in Lua code, never from user input.
--
--   local ts = require("rex.textscan")
--   local p = ts.pattern({ { ts.rep(ts.set("0-9"), 3, 3), ts.lit("-"), ... } }, { ci = true })
--   for s, e in ts.each(p, text) do ... end   -- 1-based inclusive spans, non-overlapping
local byte, sub, lower = string.byte, string.sub, string.lower

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
    for c = count, it.min, -1 do
        local e = match_items(s, n, i + c, items, k + 1)
        if e then
            return e
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

-- Iterates non-overlapping matches: yields start, end (inclusive).
function M.each(alts, s)
    local i, n = 1, #s
    return function()
        while i <= n do
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

function M.first(alts, s)
    local it = M.each(alts, s)
    return it()
end

return M
