-- nodes/http-request.lua: one HTTP request through libcurl; the output replaces the input:
-- {status, statusText, headers, body}. Differences from the original (decisions.md §4): values
-- substituted into the URL are URL-encoded, an object `body` is sent as JSON, and private,
-- loopback and link-local targets are refused unless REX_HTTP_ALLOWLIST names them.
local util = require("rex.util")
local template = require("rex.engine.template")
local http = require("rex.http")
local json = require("rex").json

local METHODS = { "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS" }
local VALID = {}
for _, m in ipairs(METHODS) do
    VALID[m] = true
end

local function url_conv(v)
    if v == nil or v == util.null then
        return nil
    end
    return http.encode_component(type(v) == "string" and v or util.js_string(v))
end

return {
    type = "http-request",
    version = 1,
    schema = {
        url = { type = "any", doc = "http:// or https:// URL; {{path}} values are URL-encoded" },
        method = { type = "any", doc = table.concat(METHODS, ", ") .. " (default GET)" },
        headers = { type = "any", doc = "object of request headers" },
        body = { type = "any", doc = "string (templated) or object (sent as JSON)" },
        timeoutMs = { type = "any", doc = "default 30000" },
        failOnError = { type = "any", doc = "false: non-2xx answers do not fail the node" },
        maxResponseBytes = { type = "any", doc = "response size limit (default 10 MiB)" },
    },
    validate = function(config)
        local errs = {}
        if not util.truthy(config.url) then
            errs[#errs + 1] = "HTTPRequestNode requires a 'url' in config"
        elseif type(config.url) ~= "string" or not (config.url:find("^http://")
            or config.url:find("^https://")) then
            errs[#errs + 1] = "HTTPRequestNode 'url' must start with http:// or https://"
        end
        if config.method ~= nil and (type(config.method) ~= "string"
            or not VALID[config.method:upper()]) then
            errs[#errs + 1] = ('Invalid HTTP method: "%s". Valid: %s'):format(
                util.js_string(config.method), table.concat(METHODS, ", "))
        end
        if config.headers ~= nil and not util.is_record(config.headers)
            and not (type(config.headers) == "table" and next(config.headers) == nil) then
            errs[#errs + 1] = "HTTPRequestNode 'headers' must be an object"
        end
        return #errs == 0 or nil, errs
    end,
    execute = function(ctx, input, config)
        local method = type(config.method) == "string" and config.method:upper() or "GET"
        local url = template.render_with(config.url, input, url_conv)
        local body
        if type(config.body) == "string" then
            body = template.engine(config.body, input)
        elseif type(config.body) == "table" then
            body = json.encode(config.body)
        elseif config.body ~= nil and config.body ~= util.null then
            body = util.js_string(config.body)
        end
        if method == "GET" or method == "HEAD" or body == "" then
            body = nil
        end
        local headers = { ["Content-Type"] = "application/json" }
        if util.is_record(config.headers) then
            for k, v in pairs(config.headers) do
                if type(k) == "string" and k:lower() == "content-type" then
                    headers["Content-Type"] = nil
                end
                headers[k] = util.js_string(v)
            end
        end
        local timeout = util.js_number(config.timeoutMs)
        if not util.is_finite(timeout) or timeout <= 0 then
            timeout = 30000
        end
        local maxb = util.js_number(config.maxResponseBytes)
        local t0 = require("rex").monotonic_ms()
        local resp, err, kind = http.request({
            url = url, method = method, headers = headers, body = body, timeout_ms = timeout,
            max_bytes = util.is_finite(maxb) and maxb > 0 and maxb or nil,
            allowlist = ctx.settings and ctx.settings.http_allowlist or nil,
        })
        local dur = math.floor(require("rex").monotonic_ms() - t0)
        if not resp then
            if kind == "timeout" then
                return nil, ("HTTP request timed out after %dms"):format(timeout)
            end
            return nil, "HTTP request failed: " .. tostring(err)
        end
        local ctype = resp.headers["content-type"] or ""
        local rbody = resp.body
        if ctype:lower():find("application/json", 1, true) then
            local v, perr = json.decode(rbody)
            if v == nil then
                return nil, "HTTP response is not valid JSON: " .. tostring(perr)
            end
            rbody = v
        end
        local ok = resp.status >= 200 and resp.status < 300
        if not ok and config.failOnError ~= false then
            local text = type(rbody) == "string" and rbody or (json.encode(rbody) or "")
            return nil, ("HTTP request failed with status %d: %s"):format(resp.status,
                util.js_slice(text, 200))
        end
        return { status = resp.status, statusText = resp.status_text, headers = resp.headers,
                 body = rbody }, { durationMs = dur }
    end,
}
