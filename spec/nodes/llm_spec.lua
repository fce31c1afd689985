-- llm (rex-behaviour §5.13 with the decisions.md §4 fixes) against a loopback server.
local H = require("spec.support.engine_helper")
local F = require("spec.support.http_fixture")

local function keys(map)
    return function(provider)
        local k = map[provider]
        if not k then
            error(("No %s API key found for user"):format(provider), 0)
        end
        return k
    end
end

describe("llm", function()
    if not require("rex.native").load("rex.http_c") then
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
    local function opts(map)
        return { settings = { http_allowlist = "127.0.0.1" },
                 runtime = { get_api_key = keys(map or { groq = "groq-key", gemini = "gem-key" }) } }
    end

    it("calls an OpenAI-compatible API, interpolating prompt (decision)", function()
        local out, res = H.node("llm", { provider = "groq", prompt = "Hi {{name}}",
                                         baseUrl = srv.base .. "/v1", systemPrompt = "Be brief",
                                         maxTokens = 50 }, { name = "Ann" }, opts())
        assert.equal("completed", res.status)
        assert.equal("echo: Hi Ann", out.content)
        assert.same({ promptTokens = 3, completionTokens = 4, totalTokens = 7 }, out.usage)
        assert.equal("llama-3.3-70b-versatile", out.model)
        assert.equal("groq", out.provider)
        assert.is_nil(out.name)
    end)

    it("calls Gemini with the key in a header, not the URL", function()
        local out = H.node("llm", { provider = "gemini", promptTemplate = "Q: {{q}}",
                                    baseUrl = srv.base .. "/gemini", model = "gemini-pro" },
            { q = "why" }, opts())
        assert.equal("gemini: Q: why", out.content)
        assert.equal("gemini-2.0-flash", out.model)
        assert.equal(3, out.usage.totalTokens)
    end)

    it("appends retrieved knowledge and file data to the prompt", function()
        local out = H.node("llm", { provider = "openai-compatible", prompt = "Answer",
                                    baseUrl = srv.base .. "/v1" },
            { _knowledge = { query = "refund", matches = H.json.decode(
                '[{"title":"Policy","content":"30 days","score":0.5}]') },
              fileName = "a.csv", fileFormat = "csv", rowCount = 1,
              data = H.json.decode('[{"a":1,"b":null}]') },
            opts({ ["openai-compatible"] = "k" }))
        assert.equal("echo: Answer\n\n--- Attached File Data ---\nFile: a.csv (CSV)\nRows: 1\n\n"
            .. "a | b\n--- | ---\n1 | \n\n--- Retrieved Knowledge Context ---\nQuery: refund\n"
            .. "[1] Policy (score=0.5000)\n30 days", out.content)
    end)

    it("falls back to another provider when the key is missing", function()
        local out, res = H.node("llm", { provider = "gemini", prompt = "x", baseUrl = srv.base .. "/v1" },
            {}, opts({ groq = "g" }))
        assert.equal("completed", res.status)
        assert.equal("groq", out.provider)
        local _, r2 = H.node("llm", { provider = "groq", prompt = "x", baseUrl = srv.base .. "/v1" },
            {}, opts({}))
        assert.equal('Node "n" (llm) failed: No API key found for configured provider "groq" or '
            .. "fallback providers. Please add an API key in settings.", r2.errorMessage)
    end)

    it("reports non-2xx, timeouts, malformed JSON and refuses loopback without the allow-list",
        function()
            local _, res = H.node("llm", { provider = "groq", prompt = "x", baseUrl = srv.base .. "/fail" },
                {}, opts())
            assert.matches('^Node "n" %(llm%) failed: LLM provider error: Groq API request failed with '
                .. 'status 500: {"error": "upstream broke"}', res.errorMessage)
            local _, r2 = H.node("llm", { provider = "groq", prompt = "x", timeoutMs = 300,
                                          baseUrl = srv.base .. "/slowllm" }, {}, opts())
            assert.matches("LLM provider error: Groq API request timed out after 300ms", r2.errorMessage)
            local _, r3 = H.node("llm", { provider = "groq", prompt = "x", baseUrl = srv.base .. "/badjson#" },
                {}, opts())
            assert.equal("failed", r3.status)
            local o = opts()
            o.settings.http_allowlist = ""
            local _, r4 = H.node("llm", { provider = "groq", prompt = "x", baseUrl = srv.base .. "/v1" },
                {}, o)
            assert.matches("refused to connect to 127%.0%.0%.1", r4.errorMessage)
        end)

    it("requests a retry when the quality check fails", function()
        local out, res = H.node("llm", { provider = "groq", prompt = "hello",
                                         baseUrl = srv.base .. "/v1", qualityCheckRequiredText = "zebra",
                                         retryPolicy = { enabled = true, maxAttempts = 2 } }, {}, opts())
        assert.equal("failed", res.status)
        assert.matches('Node retry attempts exhausted %(2/2%): Missing required text: "zebra"',
            res.errorMessage)
        local _ = out
    end)

    it("validates provider and prompt", function()
        assert.same({ "LLMNode requires a 'provider' in config (gemini or groq)",
                      "LLMNode requires either 'prompt' or 'promptTemplate' in config" },
            H.problems("llm", {}))
        assert.matches('^Invalid LLM provider: "claude"', H.problems("llm", { provider = "claude",
                                                                             prompt = "x" })[1])
    end)
end)
