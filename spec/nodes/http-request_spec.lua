-- http-request (rex-behaviour §5.12 with the decisions.md §4 fixes) against a loopback server
-- started by the spec; the SSRF guard refuses loopback unless the allow-list names it.
local H = require("spec.support.engine_helper")
local F = require("spec.support.http_fixture")
local native = require("rex.native")

local allow = { settings = { http_allowlist = "127.0.0.1" } }

local http_c, http_why = native.load("rex.http_c")

describe("rex.http_c address checks", function()
    if not http_c then
        pending("rex.http_c not built into the rex.core library on package.cpath: " .. tostring(http_why))
        return
    end
    local c = http_c
    it("classifies private, loopback, link-local and public addresses", function()
        for _, a in ipairs({ "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                             "100.64.0.1", "0.0.0.0", "::1", "::", "fe80::1", "fd00::1",
                             "::ffff:127.0.0.1", "224.0.0.1" }) do
            assert.is_true(c.is_private(a), a)
        end
        for _, a in ipairs({ "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8" }) do
            assert.is_false(c.is_private(a), a)
        end
        assert.is_nil(c.is_private("not-an-ip"))
    end)
    it("matches hosts, IPs and CIDRs of the allow-list", function()
        assert.is_true(c.allowlisted("example.internal, 10.0.0.0/8", nil, "10.9.9.9"))
        assert.is_true(c.allowlisted("localhost", "LOCALHOST", nil))
        assert.is_false(c.allowlisted("10.0.0.0/8", nil, "11.0.0.1"))
        assert.is_true(c.allowlisted("fd00::/8", nil, "fd12::1"))
        assert.is_true(c.allowlisted("127.0.0.1", nil, "::ffff:127.0.0.1"))
        assert.is_false(c.allowlisted("", "x", "127.0.0.1"))
    end)
end)

describe("http-request", function()
    if not http_c then
        pending("rex.http_c not available")
        return
    end
    local srv, why = F.start()
    if not srv then
        pending("loopback HTTP server unavailable: " .. tostring(why))
        return
    end
    teardown(function()
        F.stop(srv)
    end)

    it("GETs JSON, URL-encoding substituted values", function()
        local out, res = H.node("http-request", { url = srv.base .. "/json?q={{term}}" },
            { term = "a b&c" }, allow)
        assert.equal("completed", res.status)
        assert.equal(200, out.status)
        assert.equal("OK", out.statusText)
        assert.is_true(out.body.ok)
        assert.equal("q=a%20b%26c", out.body.query)
        assert.equal("yes", out.headers["x-test"])
        assert.is_nil(out.term) -- does not pass input
    end)

    it("POSTs templated strings and JSON-encodes object bodies", function()
        local out = H.node("http-request", { url = srv.base .. "/echo", method = "post",
            body = '{"name":"{{name}}"}', headers = { ["X-Api"] = "k" } }, { name = "Ann" }, allow)
        assert.equal("POST", out.body.method)
        assert.equal('{"name":"Ann"}', out.body.body)
        assert.equal("application/json", out.body.headers["content-type"])
        assert.equal("k", out.body.headers["x-api"])
        local o2 = H.node("http-request", { url = srv.base .. "/echo", method = "PUT",
            body = { a = H.json.decode("[1,2]") } }, {}, allow)
        assert.equal('{"a":[1,2]}', o2.body.body)
        local o3 = H.node("http-request", { url = srv.base .. "/echo", body = "ignored" }, {}, allow)
        assert.equal("", o3.body.body) -- GET sends no body
    end)

    it("fails on non-2xx unless failOnError is false", function()
        local _, res = H.node("http-request", { url = srv.base .. "/status/503" }, {}, allow)
        assert.equal('Node "n" (http-request) failed: HTTP request failed with status 503: status 503 body',
            res.errorMessage)
        local out = H.node("http-request", { url = srv.base .. "/status/404", failOnError = false }, {},
            allow)
        assert.equal(404, out.status)
        assert.equal("status 404 body", out.body)
    end)

    it("times out", function()
        local _, res = H.node("http-request", { url = srv.base .. "/slow", timeoutMs = 300 }, {}, allow)
        assert.equal('Node "n" (http-request) failed: HTTP request timed out after 300ms', res.errorMessage)
    end)

    it("fails on malformed JSON and on responses over the size limit", function()
        local _, res = H.node("http-request", { url = srv.base .. "/badjson" }, {}, allow)
        assert.matches("HTTP response is not valid JSON", res.errorMessage)
        local _, r2 = H.node("http-request", { url = srv.base .. "/big", maxResponseBytes = 1048576 },
            {}, allow)
        assert.matches("response body larger than 1048576 bytes", r2.errorMessage)
    end)

    it("refuses loopback without the allow-list (SSRF guard)", function()
        local _, res = H.node("http-request", { url = srv.base .. "/json" }, {},
            { settings = { http_allowlist = "" } })
        assert.equal("failed", res.status)
        assert.matches("refused to connect to 127%.0%.0%.1 %(127%.0%.0%.1%): private, loopback or "
            .. "link%-local address not in REX_HTTP_ALLOWLIST", res.errorMessage)
        local _, r2 = H.node("http-request", { url = "http://localhost:" .. srv.port .. "/json" }, {},
            { settings = { http_allowlist = "" } })
        assert.matches("refused to connect to localhost", r2.errorMessage)
        local _, r3 = H.node("http-request", { url = "http://[::1]:" .. srv.port .. "/" }, {},
            { settings = { http_allowlist = "" } })
        assert.matches("refused", r3.errorMessage)
        local _, r4 = H.node("http-request", { url = "http://2130706433:" .. srv.port .. "/json" }, {},
            { settings = { http_allowlist = "" } })
        assert.matches("refused", r4.errorMessage)
        local out = H.node("http-request", { url = "http://localhost:" .. srv.port .. "/json" }, {},
            { settings = { http_allowlist = "localhost" } })
        assert.equal(200, out.status)
    end)

    it("validates url and method", function()
        assert.same({ "HTTPRequestNode requires a 'url' in config" }, H.problems("http-request", {}))
        assert.same({ "HTTPRequestNode 'url' must start with http:// or https://" },
            H.problems("http-request", { url = "ftp://x" }))
        assert.matches('^Invalid HTTP method: "FETCH"', H.problems("http-request",
            { url = "http://x", method = "FETCH" })[1])
    end)
end)
