-- nodes/llm.lua: one chat completion from an OpenAI-compatible API (groq, openai, any base URL)
-- or Gemini; the output replaces the input: {content, usage, model, provider}. Differences from
-- the original (decisions.md §4): `prompt` is interpolated like `promptTemplate`, the Gemini key
-- travels in the x-goog-api-key header (not the URL), base URLs are configurable (config
-- `baseUrl`, or REX_<PROVIDER>_BASE_URL), and openai / openai-compatible providers exist.
local util = require("rex.util")
local template = require("rex.engine.template")
local http = require("rex.http")
local json = require("rex").json

local PROVIDERS = { "gemini", "groq", "openai", "openai-compatible" }
local VALID = {}
for _, p in ipairs(PROVIDERS) do
    VALID[p] = true
end
local FALLBACK = { "gemini", "groq" }
local DEFAULT_MODEL = { gemini = "gemini-2.0-flash", groq = "llama-3.3-70b-versatile",
                        openai = "gpt-4o-mini", ["openai-compatible"] = "default" }
local DEFAULT_BASE = { gemini = "https://generativelanguage.googleapis.com/v1beta",
                       groq = "https://api.groq.com/openai/v1", openai = "https://api.openai.com/v1" }
local NAME = { gemini = "Gemini", groq = "Groq", openai = "OpenAI",
               ["openai-compatible"] = "OpenAI-compatible" }
local GEMINI_ALIAS = { ["gemini-pro"] = true, ["gemini-pro-vision"] = true,
                       ["gemini-ultra"] = true }

local function base_url(provider, config)
    if util.non_empty_string(config.baseUrl) then
        return (util.trim(config.baseUrl):gsub("/+$", ""))
    end
    local env = os.getenv("REX_" .. provider:upper():gsub("%-", "_") .. "_BASE_URL")
    if env and env ~= "" then
        return (env:gsub("/+$", ""))
    end
    return DEFAULT_BASE[provider]
end

local function attach_file(prompt, input)
    if not util.truthy(input.fileName) or input.data == nil then
        return prompt
    end
    local parts = { prompt, "", "--- Attached File Data ---" }
    local fmt = util.truthy(input.fileFormat) and util.js_string(input.fileFormat):upper() or "unknown"
    parts[#parts + 1] = ("File: %s (%s)"):format(util.js_string(input.fileName), fmt)
    if type(input.rowCount) == "number" and input.rowCount ~= 0 then
        parts[#parts + 1] = "Rows: " .. util.js_string(input.rowCount)
    end
    parts[#parts + 1] = ""
    local data = input.data
    if type(data) == "string" then
        parts[#parts + 1] = data
    elseif util.is_array(data) then
        local first = data[1]
        local keys = util.is_record(first) and util.sorted_keys(first) or {}
        parts[#parts + 1] = table.concat(keys, " | ")
        local dashes = {}
        for i = 1, #keys do
            dashes[i] = "---"
        end
        parts[#parts + 1] = table.concat(dashes, " | ")
        for r = 1, math.min(#data, 200) do
            local row = data[r]
            local cells = {}
            for i, k in ipairs(keys) do
                local v = type(row) == "table" and row[k] or nil
                cells[i] = (v == nil or v == util.null) and "" or util.js_string(v)
            end
            parts[#parts + 1] = table.concat(cells, " | ")
        end
        if #data > 200 then
            parts[#parts + 1] = ("... (%d more rows truncated)"):format(#data - 200)
        end
    else
        parts[#parts + 1] = json.encode(data) or ""
    end
    return table.concat(parts, "\n")
end

local function attach_knowledge(prompt, input)
    local k = input._knowledge
    if not util.is_record(k) or not util.is_array(k.matches) then
        return prompt
    end
    local usable = {}
    for i, m in ipairs(k.matches) do
        if util.is_record(m) and type(m.content) == "string" and m.content ~= "" then
            usable[#usable + 1] = { rank = i, m = m }
        end
    end
    if #usable == 0 then
        return prompt
    end
    local parts = { prompt, "", "--- Retrieved Knowledge Context ---",
                    "Query: " .. (util.non_empty_string(k.query) and k.query or "(unspecified query)") }
    local entries = {}
    for i = 1, math.min(#usable, 12) do
        local u = usable[i]
        local score = util.is_finite(u.m.score) and u.m.score or 0
        entries[#entries + 1] = ("[%d] %s (score=%.4f)\n%s"):format(u.rank,
            util.non_empty_string(u.m.title) and u.m.title or "Untitled", score, u.m.content)
    end
    parts[#parts + 1] = table.concat(entries, "\n\n")
    if #usable > 12 then
        parts[#parts + 1] = ""
        parts[#parts + 1] = ("... %d more retrieved chunks omitted"):format(#usable - 12)
    end
    return table.concat(parts, "\n")
end

local function call_provider(provider, key, model, prompt, config, settings)
    local name = NAME[provider]
    local timeout = util.js_number(config.timeoutMs)
    if not util.is_finite(timeout) or timeout <= 0 then
        timeout = 30000
    end
    local max_tokens = util.is_finite(config.maxTokens) and config.maxTokens or 2048
    local temperature = util.is_finite(config.temperature) and config.temperature or 0.7
    local system = util.non_empty_string(config.systemPrompt) and config.systemPrompt or nil
    local base = base_url(provider, config)
    if not base then
        error(("%s provider needs a baseUrl"):format(name), 0)
    end
    local req
    if provider == "gemini" then
        local body = { contents = { { parts = { { text = prompt } } } },
                       generationConfig = { maxOutputTokens = max_tokens,
                                            temperature = temperature } }
        if system then
            body.systemInstruction = { parts = { { text = system } } }
        end
        req = { url = ("%s/models/%s:generateContent"):format(base, http.encode_component(model)),
                method = "POST", body = json.encode(body),
                headers = { ["Content-Type"] = "application/json", ["x-goog-api-key"] = key } }
    else
        local messages = util.array()
        if system then
            messages[#messages + 1] = { role = "system", content = system }
        end
        messages[#messages + 1] = { role = "user", content = prompt }
        req = { url = base .. "/chat/completions", method = "POST",
                body = json.encode({ model = model, messages = messages, max_tokens = max_tokens,
                                     temperature = temperature }),
                headers = { ["Content-Type"] = "application/json",
                            Authorization = "Bearer " .. key } }
    end
    req.timeout_ms = timeout
    req.allowlist = settings and settings.http_allowlist or nil
    local resp, err, kind = http.request(req)
    if not resp then
        if kind == "timeout" then
            error(("%s API request timed out after %dms"):format(name, timeout), 0)
        end
        error(("%s API request failed: %s"):format(name, tostring(err)), 0)
    end
    if resp.status < 200 or resp.status >= 300 then
        error(("%s API request failed with status %d: %s"):format(name, resp.status,
            util.js_slice(resp.body, 1000)), 0)
    end
    local data = json.decode(resp.body)
    if not util.is_record(data) then
        error(("%s API returned a response that is not a JSON object"):format(name), 0)
    end
    local content, usage = "", {}
    if provider == "gemini" then
        local c = util.get_path(data, "candidates.0.content.parts.0.text")
        content = type(c) == "string" and c or ""
        local u = util.is_record(data.usageMetadata) and data.usageMetadata or {}
        usage = { promptTokens = tonumber(u.promptTokenCount) or 0,
                  completionTokens = tonumber(u.candidatesTokenCount) or 0,
                  totalTokens = tonumber(u.totalTokenCount) or 0 }
    else
        local c = util.get_path(data, "choices.0.message.content")
        content = type(c) == "string" and c or ""
        local u = util.is_record(data.usage) and data.usage or {}
        usage = { promptTokens = tonumber(u.prompt_tokens) or 0,
                  completionTokens = tonumber(u.completion_tokens) or 0,
                  totalTokens = tonumber(u.total_tokens) or 0 }
    end
    return content, usage
end

return {
    type = "llm",
    version = 1,
    schema = {
        provider = { type = "any", doc = table.concat(PROVIDERS, ", ") },
        prompt = { type = "any", doc = "prompt ({{path}} interpolated)" },
        promptTemplate = { type = "any", doc = "prompt template ({{path}})" },
        model = { type = "any", doc = "model name (provider default otherwise)" },
        systemPrompt = { type = "any", doc = "system prompt" },
        maxTokens = { type = "any", doc = "default 2048" },
        temperature = { type = "any", doc = "default 0.7" },
        timeoutMs = { type = "any", doc = "default 30000" },
        baseUrl = { type = "any", doc = "API base URL (required for openai-compatible)" },
        qualityCheckRequiredText = { type = "any", doc = "retry directive when missing" },
        qualityCheckMinLength = { type = "any", doc = "retry directive when shorter" },
    },
    validate = function(config)
        local errs = {}
        if not util.truthy(config.provider) then
            errs[#errs + 1] = "LLMNode requires a 'provider' in config (gemini or groq)"
        elseif not VALID[config.provider] then
            errs[#errs + 1] = ('Invalid LLM provider: "%s". Valid: %s'):format(
                util.js_string(config.provider), table.concat(PROVIDERS, ", "))
        elseif config.provider == "openai-compatible" and not util.non_empty_string(config.baseUrl) then
            errs[#errs + 1] = "LLMNode provider openai-compatible requires a 'baseUrl'"
        end
        if not util.truthy(config.prompt) and not util.truthy(config.promptTemplate) then
            errs[#errs + 1] = "LLMNode requires either 'prompt' or 'promptTemplate' in config"
        end
        return #errs == 0 or nil, errs
    end,
    execute = function(ctx, input, config)
        local tpl = util.truthy(config.promptTemplate) and config.promptTemplate or config.prompt
        local prompt = template.engine(util.js_string(tpl), input)
        prompt = attach_file(prompt, input)
        prompt = attach_knowledge(prompt, input)
        local provider = config.provider
        local model = util.non_empty_string(config.model) or DEFAULT_MODEL[provider]
        local ok, key = pcall(ctx.get_api_key, ctx, provider)
        local fallback
        if not ok then
            local msg = util.error_text(key)
            if not msg:lower():find("no .*api key found for user") then
                return nil, msg
            end
            key = nil
            for _, p in ipairs(FALLBACK) do
                if p ~= provider then
                    local ok2, k2 = pcall(ctx.get_api_key, ctx, p)
                    if ok2 and k2 then
                        fallback = { from = provider, to = p }
                        provider, key, model = p, k2, DEFAULT_MODEL[p]
                        break
                    end
                end
            end
            if not key then
                return nil, ('No API key found for configured provider "%s" or fallback providers. '
                    .. "Please add an API key in settings."):format(config.provider)
            end
        end
        if provider == "gemini" and GEMINI_ALIAS[model] then
            model = "gemini-2.0-flash"
        end
        local t0 = require("rex").monotonic_ms()
        local cok, content, usage = pcall(call_provider, provider, key, model, prompt, config,
            ctx.settings)
        if not cok then
            return nil, "LLM provider error: " .. util.sanitize(content)
        end
        local meta = { durationMs = math.floor(require("rex").monotonic_ms() - t0),
                       providerFallback = fallback }
        local req_text = util.non_empty_string(config.qualityCheckRequiredText)
        local min_len = util.js_number(config.qualityCheckMinLength)
        if req_text and not content:lower():find(req_text:lower(), 1, true) then
            meta.retry = { requested = true, reason = ('Missing required text: "%s"'):format(req_text) }
        elseif util.is_finite(min_len) and min_len >= 1 and min_len == math.floor(min_len)
            and util.js_len(content) < min_len then
            meta.retry = { requested = true, reason = ("Response length %d below minimum %d")
                :format(util.js_len(content), min_len) }
        end
        return { content = content, usage = usage, model = model, provider = provider }, meta
    end,
}
