-- nodes/file-upload.lua: turns a file given in the config (parsedData or fileContent, raw or
-- base64) into data; the output replaces the input: {fileName, fileFormat, data, rowCount, preview}.
local util = require("rex.util")
local json = require("rex").json

local FORMATS = { csv = true, json = true, txt = true, pdf = true }

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local B64IDX = {}
for i = 1, 64 do
    B64IDX[B64:byte(i)] = i - 1
end

local function b64decode(s)
    s = s:gsub("[^%w%+/=]", "")
    local out, bits, nbits = {}, 0, 0
    for i = 1, #s do
        local c = s:byte(i)
        if c == 61 then
            break
        end
        local v = B64IDX[c]
        if v then
            bits = bits * 64 + v
            nbits = nbits + 6
            if nbits >= 8 then
                nbits = nbits - 8
                local b = math.floor(bits / 2 ^ nbits) % 256
                out[#out + 1] = string.char(b)
                bits = bits % 2 ^ nbits
            end
        end
    end
    return table.concat(out)
end

local function looks_base64(s)
    if #s < 20 then
        return false
    end
    local head = s:sub(1, 100)
    return head:match("^[A-Za-z0-9+/\r\n]*=*$") ~= nil
end

local function count_lines(s)
    local n = 1
    for _ in s:gmatch("\n") do
        n = n + 1
    end
    return n
end

local function split_fields(line, delim)
    local fields, cur, inq, i = {}, {}, false, 1
    while i <= #line do
        local c = line:sub(i, i)
        if inq then
            if c == '"' then
                if line:sub(i + 1, i + 1) == '"' then
                    cur[#cur + 1] = '"'
                    i = i + 1
                else
                    inq = false
                end
            else
                cur[#cur + 1] = c
            end
        elseif c == '"' then
            inq = true
        elseif c == delim then
            fields[#fields + 1] = table.concat(cur)
            cur = {}
        else
            cur[#cur + 1] = c
        end
        i = i + 1
    end
    fields[#fields + 1] = table.concat(cur)
    return fields
end

local function parse_csv(text)
    local lines = {}
    for line in (text .. "\n"):gmatch("(.-)\r?\n") do
        line = util.trim(line)
        if line ~= "" then
            lines[#lines + 1] = line
        end
    end
    local rows = util.array()
    if #lines == 0 then
        return rows, 0
    end
    local first = lines[1]
    local delim = ","
    if first:find("\t", 1, true) then
        delim = "\t"
    elseif #split_fields(first, ";") > #split_fields(first, ",") then
        delim = ";"
    end
    local header = split_fields(first, delim)
    for i = 1, #header do
        header[i] = util.trim(header[i])
    end
    for li = 2, #lines do
        local f = split_fields(lines[li], delim)
        local row = {}
        for i, h in ipairs(header) do
            row[h] = util.trim(f[i] or "")
        end
        rows[#rows + 1] = row
    end
    return rows, #header
end

return {
    type = "file-upload",
    version = 1,
    schema = {
        fileName = { type = "any", doc = "default unknown" },
        fileFormat = { type = "any", doc = "csv, json, txt (default) or pdf" },
        parsedData = { type = "any", doc = "already parsed content (preferred)" },
        fileContent = { type = "any", doc = "raw or base64 content" },
    },
    validate = function(config)
        local errs = {}
        if not util.truthy(config.parsedData) and not util.truthy(config.fileContent) then
            errs[#errs + 1] = "FileUploadNode: no file uploaded. Please upload a file in the node config panel."
        end
        if config.fileFormat ~= nil and not FORMATS[config.fileFormat] then
            errs[#errs + 1] = ('FileUploadNode: unsupported format "%s". Supported: csv, json, txt, pdf')
                :format(util.js_string(config.fileFormat))
        end
        return #errs == 0 or nil, errs
    end,
    execute = function(ctx, input, config)
        local name = util.truthy(config.fileName) and util.js_string(config.fileName) or "unknown"
        local fmt = util.truthy(config.fileFormat) and config.fileFormat or "txt"
        local out = { fileName = name, fileFormat = fmt }
        local pd = config.parsedData
        if util.truthy(pd) then
            out.data = pd
            if util.is_array(pd) then
                out.rowCount = #pd
                local p = ("%d rows"):format(#pd)
                if util.is_record(pd[1]) and next(pd[1]) ~= nil then
                    p = p .. (", %d columns"):format(#util.sorted_keys(pd[1]))
                end
                out.preview = p
            elseif type(pd) == "string" then
                out.preview = fmt == "pdf" and ("PDF text: %d lines"):format(count_lines(pd))
                    or ("%d lines, %d characters"):format(count_lines(pd), util.js_len(pd))
            elseif util.is_record(pd) then
                out.preview = ("JSON object with %d keys"):format(#util.sorted_keys(pd))
            else
                out.preview = "File data loaded"
            end
            return out
        end
        local content = util.js_string(config.fileContent)
        if looks_base64(content) then
            content = b64decode(content)
        end
        if fmt == "csv" then
            local rows, cols = parse_csv(content)
            out.data, out.rowCount = rows, #rows
            out.preview = ("%d rows, %d columns"):format(#rows, cols)
        elseif fmt == "json" then
            local v = json.decode(content)
            if v == nil then
                return nil, "FileUploadNode: invalid JSON content"
            end
            out.data = v
            if util.is_array(v) then
                out.rowCount = #v
                out.preview = ("JSON array with %d items"):format(#v)
            else
                out.preview = "JSON object"
            end
        elseif fmt == "txt" then
            out.data = content
            out.preview = ("%d lines, %d characters"):format(count_lines(content), util.js_len(content))
        elseif fmt == "pdf" then
            out.data = content
            out.preview = ("PDF text: %d lines, %d characters"):format(count_lines(content),
                util.js_len(content))
        else
            out.data = content
            out.preview = ("%d characters"):format(util.js_len(content))
        end
        return out
    end,
}
