-- rex.engine.template: the `{{path}}` interpolation variants of rex-behaviour §4.13.
local util = require("rex.util")

local null = util.null
local js_string = util.js_string
local type, gsub, find = type, string.gsub, string.find
local encode = util.json_text
local trim = util.trim

local template = {}

local function valid_path(p)
    return not find(p, "^%.") and not find(p, "%.$") and not find(p, "%.%.")
end

-- Walks the path; returns the value or nil (a non-object intermediate stops the walk).
local walk = util.get_path
template.walk = walk

local function keep_missing(v)
    local t = type(v)
    if v == nil or v == null then
        return nil
    elseif t == "string" then
        return v
    end
    return js_string(v)
end

local function empty_json(v)
    local t = type(v)
    if v == nil or v == null then
        return ""
    elseif t == "string" then
        return v
    elseif t == "number" or t == "boolean" then
        return js_string(v)
    end
    return encode(v) or ""
end

local function empty_json_trim(v)
    if type(v) == "string" then
        return trim(v)
    end
    return empty_json(v)
end

local function renderer(conv)
    return function(tpl, data)
        if type(tpl) ~= "string" then
            return ""
        end
        if not find(tpl, "{{", 1, true) then
            return tpl
        end
        return (gsub(tpl, "{{([%w_%.]+)}}", function(path)
            if not valid_path(path) then
                return nil
            end
            local v = conv(walk(data, path))
            if v == nil then
                return nil -- keep the placeholder
            end
            return v
        end))
    end
end

-- engine: node-level retrieval queries, llm promptTemplate, http-request url/body.
template.engine = renderer(keep_missing)
-- memory-write valueTemplate (same rule as engine).
template.memory_write = template.engine
-- knowledge-retrieve query templates.
template.knowledge_retrieve = renderer(empty_json)
-- knowledge-ingest content/title templates.
template.knowledge_ingest = renderer(empty_json_trim)

-- Renders with a custom converter (e.g. URL-encoding for http-request); conv returns a string or
-- nil to keep the placeholder.
function template.render_with(tpl, data, conv)
    return renderer(conv)(tpl, data)
end

return template
