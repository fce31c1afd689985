-- rex.tz: UTC offsets of IANA time zones, read from the system's compiled zone files (TZif,
-- /usr/share/zoneinfo, Debian's tzdata). Debian ships "fat" files whose transition tables run to
-- 2037; past the last transition the last offset is kept (the POSIX rule in the file's footer is
-- not evaluated).
local floor = math.floor
local byte, sub = string.byte, string.sub

local M = {}

local ZONEINFO = "/usr/share/zoneinfo"
local cache = {}

local function u32(s, i)
    local a, b, c, d = byte(s, i, i + 3)
    return ((a * 256 + b) * 256 + c) * 256 + d
end

local function i32(s, i)
    local v = u32(s, i)
    if v >= 2147483648 then
        v = v - 4294967296
    end
    return v
end

local function i64(s, i)
    local hi, lo = u32(s, i), u32(s, i + 4)
    if hi >= 2147483648 then
        return (hi - 4294967296) * 4294967296 + lo
    end
    return hi * 4294967296 + lo
end

-- Parses a TZif image: returns {times = {...}, offsets = {...} (per transition), initial = n}.
local function parse(data)
    if sub(data, 1, 4) ~= "TZif" then
        return nil, "not a TZif file"
    end
    local version = sub(data, 5, 5)
    local function header(at)
        return {
            isutcnt = u32(data, at + 20), isstdcnt = u32(data, at + 24),
            leapcnt = u32(data, at + 28), timecnt = u32(data, at + 32),
            typecnt = u32(data, at + 36), charcnt = u32(data, at + 40),
        }
    end
    local h = header(1)
    local pos = 45
    local tsize = 4
    if version >= "2" then
        -- skip the v1 block, use the 64-bit one
        pos = pos + h.timecnt * 4 + h.timecnt + h.typecnt * 6 + h.charcnt + h.leapcnt * 8
            + h.isstdcnt + h.isutcnt
        h = header(pos)
        pos = pos + 44
        tsize = 8
    end
    local times, idx = {}, {}
    for k = 1, h.timecnt do
        times[k] = tsize == 8 and i64(data, pos) or i32(data, pos)
        pos = pos + tsize
    end
    for k = 1, h.timecnt do
        idx[k] = byte(data, pos) + 1
        pos = pos + 1
    end
    local types = {}
    for k = 1, h.typecnt do
        types[k] = { utoff = i32(data, pos), isdst = byte(data, pos + 4) }
        pos = pos + 6
    end
    if #types == 0 then
        return nil, "a zone file without types"
    end
    local offsets = {}
    for k = 1, h.timecnt do
        offsets[k] = types[idx[k]].utoff
    end
    -- before the first transition: the first standard-time type (RFC 8536 §3.2)
    local initial = types[1].utoff
    for _, t in ipairs(types) do
        if t.isdst == 0 then
            initial = t.utoff
            break
        end
    end
    return { times = times, offsets = offsets, initial = initial }
end

local function load(name)
    if name == nil or name == "" or name == "UTC" or name == "Etc/UTC" or name == "Z" then
        return { times = {}, offsets = {}, initial = 0 }
    end
    if type(name) ~= "string" or not name:match("^[%w_+%-/]+$") or name:find("..", 1, true) then
        return nil, ("invalid time zone %q"):format(tostring(name))
    end
    local f = io.open(ZONEINFO .. "/" .. name, "rb")
    if not f then
        return nil, ("unknown time zone %q"):format(name)
    end
    local data = f:read("*a")
    f:close()
    local z, err = parse(data)
    if not z then
        return nil, ("time zone %q: %s"):format(name, err)
    end
    return z
end

function M.zone(name)
    local key = name or "UTC"
    local z = cache[key]
    if not z then
        local err
        z, err = load(name)
        if not z then
            return nil, err
        end
        cache[key] = z
    end
    return z
end

-- Offset from UTC in seconds at UTC time t (seconds).
function M.offset(z, t)
    local times = z.times
    local n = #times
    if n == 0 or t < times[1] then
        return z.initial
    end
    local lo, hi = 1, n
    while lo < hi do
        local mid = floor((lo + hi + 1) / 2)
        if times[mid] <= t then
            lo = mid
        else
            hi = mid - 1
        end
    end
    return z.offsets[lo]
end

-- Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
function M.civil(days)
    days = days + 719468
    local era = floor(days / 146097)
    local doe = days - era * 146097
    local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365)
    local y = yoe + era * 400
    local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
    local mp = floor((5 * doy + 2) / 153)
    local d = doy - floor((153 * mp + 2) / 5) + 1
    local m = mp < 10 and mp + 3 or mp - 9
    if m <= 2 then
        y = y + 1
    end
    return y, m, d
end

-- Days since 1970-01-01 of a civil date.
function M.days(y, m, d)
    if m <= 2 then
        y = y - 1
    end
    local era = floor(y / 400)
    local yoe = y - era * 400
    local mp = m > 2 and m - 3 or m + 9
    local doy = floor((153 * mp + 2) / 5) + d - 1
    local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
    return era * 146097 + doe - 719468
end

return M
