-- rex.http: the HTTP client of the http-request and llm nodes (libcurl through rex.http_c), with
-- the SSRF guard: private, loopback and link-local targets are refused unless the allow-list
-- (REX_HTTP_ALLOWLIST, or settings.http_allowlist given to the engine) names them.
--
--   local http = require("rex.http")
--   local resp, err, kind = http.request({ url =, method =, headers =, body =, timeout_ms =,
--                                          max_bytes =, allowlist = })
--   resp = { status, status_text, headers = {lower-case name = value}, body }
--   kind = "refused" | "timeout" | "too_large" | "invalid" | "network"
local native = require("rex.native")

local http = {}

local client

-- Replaces the transport (tests, embedding); nil restores libcurl.
function http.set_client(fn)
    client = fn
end

function http.default_allowlist()
    return os.getenv("REX_HTTP_ALLOWLIST")
end

function http.request(opts)
    if client then
        return client(opts)
    end
    local c, err = native.load("rex.http_c")
    if not c then
        return nil, err, "network"
    end
    if opts.allowlist == nil then
        opts.allowlist = http.default_allowlist()
    end
    return c.request(opts)
end

-- encodeURIComponent
function http.encode_component(s)
    return (s:gsub("[^A-Za-z0-9%-_%.!~%*'%(%)]", function(c)
        return ("%%%02X"):format(c:byte())
    end))
end

return http
