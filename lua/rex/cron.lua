-- rex.cron: the next time a cron pattern fires, in a time zone, as BullMQ's job schedulers
-- compute it (cron-parser 5: 5 fields, or 6 with seconds first; names for months and days;
-- `*`, `?`, lists, ranges, steps, `L` in day-of-month, `L` and `#` in day-of-week; day-of-month
-- and day-of-week are OR-ed when both are restricted). Times are ms since the epoch; `next`
-- returns the first whole second strictly after `after` that matches.
local tz = require("rex.tz")

local floor, tonumber = math.floor, tonumber

local M = {}

local MONTHS = { jan = 1, feb = 2, mar = 3, apr = 4, may = 5, jun = 6, jul = 7, aug = 8, sep = 9,
    oct = 10, nov = 11, dec = 12 }
local DAYS = { sun = 0, mon = 1, tue = 2, wed = 3, thu = 4, fri = 5, sat = 6 }

local FIELDS = {
    { name = "second", min = 0, max = 59 },
    { name = "minute", min = 0, max = 59 },
    { name = "hour", min = 0, max = 23 },
    { name = "day of month", min = 1, max = 31 },
    { name = "month", min = 1, max = 12, names = MONTHS },
    { name = "day of week", min = 0, max = 7, names = DAYS },
}

local function parse_value(text, spec)
    local v = tonumber(text)
    if not v and spec.names then
        v = spec.names[text:lower()]
    end
    if not v or v ~= floor(v) or v < spec.min or v > spec.max then
        return nil
    end
    return v
end

-- Returns {set = {[v] = true}, wildcard = bool, last = bool, nth = {[dow] = n}, last_dow = {}}
local function parse_field(text, spec)
    local f = { set = {}, wildcard = false, nth = {}, last_dow = {} }
    if text == "*" or text == "?" then
        f.wildcard = true
    end
    for part in text:gmatch("[^,]+") do
        local body, step = part:match("^(.-)/(%d+)$")
        body = body or part
        step = tonumber(step) or 1
        if step < 1 then
            return nil, ("bad step in %s field %q"):format(spec.name, part)
        end
        local lo, hi
        if body == "*" or body == "?" then
            lo, hi = spec.min, spec.max
            if spec.name == "day of week" then
                hi = 6
            end
        elseif body == "L" and spec.name == "day of month" then
            f.last = true
        elseif spec.name == "day of week" and body:match("^%w+L$") then
            local d = parse_value(body:sub(1, -2), spec)
            if not d then
                return nil, ("bad %s %q"):format(spec.name, part)
            end
            f.last_dow[d % 7] = true
        elseif spec.name == "day of week" and body:match("^%w+#%d$") then
            local d, n = body:match("^(%w+)#(%d)$")
            d, n = parse_value(d, spec), tonumber(n)
            if not d or n < 1 or n > 5 then
                return nil, ("bad %s %q"):format(spec.name, part)
            end
            f.nth[d % 7] = n
        else
            local a, b = body:match("^(%w+)%-(%w+)$")
            if a then
                lo, hi = parse_value(a, spec), parse_value(b, spec)
            else
                lo = parse_value(body, spec)
                hi = lo
                if lo and part:find("/", 1, true) then
                    hi = spec.max
                end
            end
            if not lo or not hi or lo > hi then
                return nil, ("bad %s %q"):format(spec.name, part)
            end
        end
        if lo then
            for v = lo, hi, step do
                f.set[spec.name == "day of week" and v % 7 or v] = true
            end
        end
    end
    return f
end

function M.parse(pattern)
    if type(pattern) ~= "string" then
        return nil, "a cron pattern must be a string"
    end
    local parts = {}
    for p in pattern:gmatch("%S+") do
        parts[#parts + 1] = p
    end
    if #parts == 5 then
        table.insert(parts, 1, "0")
    elseif #parts ~= 6 then
        return nil, ("a cron pattern has 5 or 6 fields, %q has %d"):format(pattern, #parts)
    end
    local c = {}
    for i, spec in ipairs(FIELDS) do
        local f, err = parse_field(parts[i], spec)
        if not f then
            return nil, err
        end
        c[i] = f
    end
    return c
end

local function days_in_month(y, m)
    return tz.days(m == 12 and y + 1 or y, m == 12 and 1 or m + 1, 1) - tz.days(y, m, 1)
end

local function day_matches(c, y, m, d, days)
    local dom, dow = c[4], c[6]
    local wd = (days + 4) % 7 -- 1970-01-01 was a Thursday
    local ndays = days_in_month(y, m)
    local m_dom = dom.set[d] or (dom.last and d == ndays) or false
    local m_dow = dow.set[wd] or (dow.nth[wd] ~= nil and floor((d - 1) / 7) + 1 == dow.nth[wd])
        or (dow.last_dow[wd] and d + 7 > ndays) or false
    local r_dom, r_dow = not dom.wildcard, not dow.wildcard
    if r_dom and r_dow then
        return m_dom or m_dow
    elseif r_dom then
        return m_dom
    elseif r_dow then
        return m_dow
    end
    return true
end

-- UTC seconds for a local wall-clock time (seconds since the epoch as if local were UTC), or nil
-- when that local time does not exist (a DST gap). Of two (a DST overlap), the earlier.
local function to_utc(z, loc)
    local o1 = tz.offset(z, loc - 86400)
    local o2 = tz.offset(z, loc + 86400)
    local best
    for _, o in ipairs({ o1, o2 }) do
        local u = loc - o
        if tz.offset(z, u) == o and (not best or u < best) then
            best = u
        end
    end
    return best
end

local function sorted(set, lo, hi)
    local out = {}
    for v = lo, hi do
        if set[v] then
            out[#out + 1] = v
        end
    end
    return out
end

-- The first matching time strictly after `after_ms`, in zone `zone` (IANA name; nil = UTC).
-- Returns ms, or nil and a message.
function M.next(pattern, after_ms, zone)
    local c, err = pattern, nil
    if type(pattern) ~= "table" then
        c, err = M.parse(pattern)
    end
    if not c then
        return nil, err
    end
    local z, zerr = tz.zone(zone)
    if not z then
        return nil, zerr
    end
    local after = floor(after_ms / 1000) -- whole seconds; the result must be > after_ms
    local secs, mins, hours = sorted(c[1].set, 0, 59), sorted(c[2].set, 0, 59), sorted(c[3].set, 0, 23)
    if #secs == 0 or #mins == 0 or #hours == 0 then
        return nil, "the pattern never matches"
    end
    local loc0 = after + tz.offset(z, after)
    local day = floor(loc0 / 86400) - 1 -- one day early: offsets can move the local date back
    for _ = 1, 366 * 8 do
        local y, m, d = tz.civil(day)
        if c[5].set[m] and day_matches(c, y, m, d, day) then
            local base = day * 86400
            for _, h in ipairs(hours) do
                for _, mi in ipairs(mins) do
                    for _, s in ipairs(secs) do
                        local u = to_utc(z, base + h * 3600 + mi * 60 + s)
                        if u and u * 1000 > after_ms then
                            return u * 1000
                        end
                    end
                end
            end
        end
        day = day + 1
    end
    return nil, "the pattern does not match within 8 years"
end

return M
