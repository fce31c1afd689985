-- rex.knowledge.providers: provider embeddings (OpenAI-compatible, Cohere) and the Cohere
-- reranker for the knowledge runtime (rex-behaviour 6.5 step 7, 6.8; docs/knowledge.md,
-- "Provider embeddings"). Expected failures return nil, err, kind.
--
--   local providers = require("rex.knowledge.providers")
--   local s = assert(providers.settings(retrieval, { get_api_key = f, allowlist = "127.0.0.1" }))
--   local vecs, label = providers.embed(s.embedding, { "text", ... }, "search_document")
--   local scores = providers.rerank(s.reranker, "query", { "doc", ... })
--
-- `retrieval` holds the domain-config keys of rex-behaviour 2.3 (embeddingProvider,
-- embeddingModel, rerankEnabled, rerankerProvider, rerankerModel) plus this port's own:
-- embeddingBaseUrl, embeddingDimensions, embeddingBatchSize, embeddingTimeoutMs,
-- embeddingFallback, rerankerBaseUrl, rerankerTimeoutMs.
--
-- Vectors come back as float[1536] cdata, L2-normalized; a provider vector of fewer dimensions
-- (embeddingDimensions set below 1536) is zero-padded, which leaves every cosine between vectors
-- of that model unchanged. The model label recorded in embedding_model is "<provider>:<model>",
-- with "@<dims>" appended when the dimensions are not 1536 (e.g. "openai:text-embedding-3-small",
-- "cohere:embed-english-v3.0@1024").
local ffi = require("ffi")
local http = require("rex.http")
local json = require("rex").json

local type, tostring, tonumber, ipairs, pcall = type, tostring, tonumber, ipairs, pcall
local floor, sqrt, min = math.floor, math.sqrt, math.min
local format, sub = string.format, string.sub

local providers = {}

local DIMS = 1536
providers.DIMS = DIMS
providers.BATCH_SIZE = 96          -- texts per embedding request (Cohere's documented maximum)
providers.TIMEOUT_MS = 30000
providers.MAX_RESPONSE_BYTES = 64 * 1024 * 1024

local NAME = { openai = "OpenAI", cohere = "Cohere" }
local DEFAULT_MODEL = { openai = "text-embedding-3-small", cohere = "embed-english-v3.0" }
local DEFAULT_BASE = { openai = "https://api.openai.com/v1", cohere = "https://api.cohere.com/v1" }
local BASE_ENV = { openai = "REX_OPENAI_BASE_URL", cohere = "REX_COHERE_BASE_URL" }
local RERANK_MODEL = "rerank-v3.5"
local RERANK_BASE = "https://api.cohere.com/v2"
local RERANK_BASE_ENV = "REX_COHERE_RERANK_BASE_URL"

local vec_t = ffi.typeof("float[1536]")

local function blank(v)
    return v == nil or v == json.null or (type(v) == "string" and not v:find("%S"))
end

local function str(v)
    if type(v) == "string" and v:find("%S") then
        return (v:gsub("^%s+", ""):gsub("%s+$", ""))
    end
    return nil
end

local function strip_slash(s)
    return (s:gsub("/+$", ""))
end

local function base_url(explicit, env_name, default, getenv)
    local b = str(explicit)
    if b then
        return strip_slash(b)
    end
    local e = env_name and getenv(env_name)
    if e and e ~= "" then
        return strip_slash(e)
    end
    return default
end

local function positive_int(v, name, lo, hi, default)
    if blank(v) then
        return default
    end
    local n = tonumber(v)
    if not n or n ~= n or n < lo or n > hi or floor(n) ~= n then
        return nil, format("%s must be an integer from %d to %d, got %s", name, lo, hi,
            tostring(v))
    end
    return n
end

local function truthy(v)
    if v == true then
        return true
    end
    if type(v) == "string" then
        local l = v:lower()
        return l == "true" or l == "1" or l == "yes" or l == "on"
    end
    return type(v) == "number" and v ~= 0
end

-- The "<provider>:<model>[@dims]" label of an embedding spec.
local function label_of(provider, model, dims)
    local l = provider .. ":" .. model
    if dims ~= DIMS then
        l = l .. "@" .. dims
    end
    return l
end

-- provider, model, dims of a provider label, or nil for a deterministic model name.
function providers.parse_label(label)
    if type(label) ~= "string" then
        return nil
    end
    local provider, rest = label:match("^(%a+):(.+)$")
    if not provider or not NAME[provider] then
        return nil
    end
    local model, dims = rest:match("^(.-)@(%d+)$")
    if model and model ~= "" then
        return provider, model, tonumber(dims)
    end
    return provider, rest, DIMS
end

function providers.is_provider_label(label)
    return providers.parse_label(label) ~= nil
end

-- Settings from a retrieval config. opts: get_api_key(provider) (may raise or return nil),
-- allowlist (SSRF allow-list; nil = REX_HTTP_ALLOWLIST), getenv (os.getenv). Returns {embedding =
-- spec or nil (deterministic), reranker = spec or nil (heuristic), rerank = bool}, or nil, err for
-- a bad value.
function providers.settings(retrieval, opts)
    retrieval = type(retrieval) == "table" and retrieval or {}
    opts = opts or {}
    local getenv = opts.getenv or os.getenv
    local out = { rerank = truthy(retrieval.rerankEnabled) }

    local provider = str(retrieval.embeddingProvider) or "deterministic"
    provider = provider:lower()
    if provider ~= "deterministic" then
        if not NAME[provider] then
            return nil, format("embeddingProvider must be one of: deterministic, openai, cohere "
                .. "(got %s)", tostring(retrieval.embeddingProvider))
        end
        local dims, err = positive_int(retrieval.embeddingDimensions, "embeddingDimensions", 1,
            DIMS, DIMS)
        if not dims then
            return nil, err
        end
        local batch
        batch, err = positive_int(retrieval.embeddingBatchSize, "embeddingBatchSize", 1, 2048,
            providers.BATCH_SIZE)
        if not batch then
            return nil, err
        end
        local timeout
        timeout, err = positive_int(retrieval.embeddingTimeoutMs, "embeddingTimeoutMs", 1,
            3600000, providers.TIMEOUT_MS)
        if not timeout then
            return nil, err
        end
        local fallback = str(retrieval.embeddingFallback) or "deterministic"
        if fallback ~= "deterministic" and fallback ~= "fail" then
            return nil, "embeddingFallback must be one of: deterministic, fail"
        end
        local model = str(retrieval.embeddingModel)
        -- the original's job path sent "rex-hash-v1-1536" to the provider when no model was
        -- configured (rex-behaviour 9.24): a deterministic model name means the default here
        if not model or model:match("^rex%-") then
            model = DEFAULT_MODEL[provider]
        end
        out.embedding = {
            provider = provider, model = model, dims = dims,
            dims_explicit = not blank(retrieval.embeddingDimensions),
            base_url = base_url(retrieval.embeddingBaseUrl, BASE_ENV[provider],
                DEFAULT_BASE[provider], getenv),
            batch_size = batch, timeout_ms = timeout, fallback = fallback,
            get_api_key = opts.get_api_key, allowlist = opts.allowlist,
            label = label_of(provider, model, dims),
        }
    end

    local rprov = (str(retrieval.rerankerProvider) or "heuristic"):lower()
    if rprov ~= "heuristic" and rprov ~= "cohere" then
        return nil, "rerankerProvider must be one of: heuristic, cohere"
    end
    if rprov == "cohere" then
        local timeout, err = positive_int(retrieval.rerankerTimeoutMs, "rerankerTimeoutMs", 1,
            3600000, providers.TIMEOUT_MS)
        if not timeout then
            return nil, err
        end
        out.reranker = {
            provider = "cohere", model = str(retrieval.rerankerModel) or RERANK_MODEL,
            base_url = base_url(retrieval.rerankerBaseUrl, RERANK_BASE_ENV, RERANK_BASE, getenv),
            timeout_ms = timeout, get_api_key = opts.get_api_key, allowlist = opts.allowlist,
        }
    end
    return out
end

-- The spec that embeds queries and documents for a corpus holding `label` embeddings: the
-- configured spec when it produces that label, else one built from the label (same key
-- resolver, allow-list; base URL from the environment or the provider's default).
function providers.for_label(label, configured, opts)
    if configured and configured.label == label then
        return configured
    end
    local provider, model, dims = providers.parse_label(label)
    if not provider then
        return nil, "not a provider embedding model: " .. tostring(label)
    end
    opts = opts or {}
    local getenv = opts.getenv or os.getenv
    local same = configured and configured.provider == provider
    return {
        provider = provider, model = model, dims = dims, dims_explicit = dims ~= DIMS,
        base_url = same and configured.base_url
            or base_url(nil, BASE_ENV[provider], DEFAULT_BASE[provider], getenv),
        batch_size = configured and configured.batch_size or providers.BATCH_SIZE,
        timeout_ms = configured and configured.timeout_ms or providers.TIMEOUT_MS,
        fallback = configured and configured.fallback or "deterministic",
        get_api_key = configured and configured.get_api_key or opts.get_api_key,
        allowlist = configured and configured.allowlist or opts.allowlist,
        label = label,
    }
end

local function api_key(spec)
    local f = spec.get_api_key
    local name = spec.provider
    if type(f) ~= "function" then
        local v = os.getenv(name:upper() .. "_API_KEY")
        return v ~= "" and v or nil
    end
    local ok, key = pcall(f, name)
    if ok and type(key) == "string" and key ~= "" then
        return key
    end
    return nil
end

local function post(spec, what, url, key, body)
    local name = NAME[spec.provider]
    local resp, err, kind = http.request({
        url = url, method = "POST", body = json.encode(body),
        headers = { ["Content-Type"] = "application/json", Accept = "application/json",
                    Authorization = "Bearer " .. key },
        timeout_ms = spec.timeout_ms, max_bytes = providers.MAX_RESPONSE_BYTES,
        allowlist = spec.allowlist,
    })
    if not resp then
        if kind == "timeout" then
            return nil, format("%s %s request timed out after %d ms", name, what,
                spec.timeout_ms), "timeout"
        end
        return nil, format("%s %s request failed: %s", name, what, tostring(err)),
            kind or "network"
    end
    if resp.status < 200 or resp.status >= 300 then
        return nil, format("%s %s request failed with status %d: %s", name, what, resp.status,
            sub(resp.body or "", 1, 200)), "status"
    end
    local data = json.decode(resp.body or "")
    if type(data) ~= "table" then
        return nil, format("%s %s response is not a JSON object", name, what), "malformed"
    end
    return data
end

-- One provider vector (a decoded JSON array) -> float[1536], L2-normalized, zero-padded.
local function to_vec(spec, v)
    local name = NAME[spec.provider]
    if type(v) ~= "table" then
        return nil, format("%s embeddings response holds a non-array embedding", name), "malformed"
    end
    local n = #v
    if n ~= spec.dims then
        return nil, format("%s returned a %d-dimensional embedding; expected %d%s", name, n,
            spec.dims, spec.dims_explicit and "" or " (set embeddingDimensions for models of "
            .. "fewer dimensions)"), "dimension"
    end
    local ss = 0
    for i = 1, n do
        local x = v[i]
        if type(x) ~= "number" or x ~= x or x == math.huge or x == -math.huge then
            return nil, format("%s embeddings response holds a non-numeric value", name),
                "malformed"
        end
        ss = ss + x * x
    end
    if ss == 0 then
        return nil, format("%s returned an all-zero embedding", name), "malformed"
    end
    local inv = 1 / sqrt(ss)
    local out = vec_t() -- zero-filled: the padding
    for i = 1, n do
        out[i - 1] = v[i] * inv
    end
    return out
end

local function embed_batch(spec, key, texts, input_type)
    local name = NAME[spec.provider]
    local data, err, kind, list
    if spec.provider == "openai" then
        local body = { model = spec.model, input = json.array(texts) }
        if spec.dims_explicit then
            body.dimensions = spec.dims
        end
        data, err, kind = post(spec, "embeddings", spec.base_url .. "/embeddings", key, body)
        if not data then
            return nil, err, kind
        end
        if type(data.data) ~= "table" then
            return nil, name .. " embeddings response has no data array", "malformed"
        end
        list = {}
        for i, item in ipairs(data.data) do
            if type(item) ~= "table" then
                return nil, name .. " embeddings response has a malformed data item", "malformed"
            end
            local idx = tonumber(item.index)
            idx = idx and idx + 1 or i
            if idx < 1 or idx > #texts or list[idx] ~= nil then
                return nil, name .. " embeddings response has a bad index", "malformed"
            end
            list[idx] = item.embedding
        end
    else
        data, err, kind = post(spec, "embed", spec.base_url .. "/embed", key, {
            model = spec.model, texts = json.array(texts), input_type = input_type,
        })
        if not data then
            return nil, err, kind
        end
        list = data.embeddings
        if type(list) == "table" and type(list.float) == "table" then
            list = list.float -- the v2 response shape
        end
        if type(list) ~= "table" then
            return nil, name .. " embed response has no embeddings array", "malformed"
        end
    end
    local got = 0
    for i = 1, #texts do
        if list[i] ~= nil then
            got = got + 1
        end
    end
    if got ~= #texts or #list ~= #texts then
        return nil, format("%s returned %d embeddings for %d texts", name, #list, #texts),
            "malformed"
    end
    local vecs = {}
    for i = 1, #texts do
        local v, verr, vkind = to_vec(spec, list[i])
        if not v then
            return nil, verr, vkind
        end
        vecs[i] = v
    end
    return vecs
end

-- Embeds texts (an array of strings) in batches of spec.batch_size requests. input_type:
-- "search_document" (ingestion) or "search_query" (queries; Cohere only, the original sent
-- search_document for both). Returns an array of float[1536] in the order of texts and the
-- model label, or nil, err, kind (kind: "key", "refused", "timeout", "network", "status",
-- "malformed", "dimension", "too_large", "invalid").
function providers.embed(spec, texts, input_type)
    if type(spec) ~= "table" or not NAME[spec.provider] then
        return nil, "no embedding provider is configured", "invalid"
    end
    local key = api_key(spec)
    if not key then
        return nil, format("Missing %s API key for embeddings", NAME[spec.provider]), "key"
    end
    local out = {}
    local size = spec.batch_size or providers.BATCH_SIZE
    for first = 1, #texts, size do
        local batch = {}
        for i = first, min(#texts, first + size - 1) do
            batch[#batch + 1] = texts[i]
        end
        local vecs, err, kind = embed_batch(spec, key, batch, input_type or "search_document")
        if not vecs then
            return nil, err, kind
        end
        for i, v in ipairs(vecs) do
            out[first + i - 1] = v
        end
    end
    return out, spec.label
end

-- Cohere rerank (rex-behaviour 6.8): one request with every document, top_n = their count.
-- Returns an array of relevance scores aligned with documents (documents absent from the
-- results score 0), or nil, err, kind.
function providers.rerank(spec, query, documents)
    if type(spec) ~= "table" or spec.provider ~= "cohere" then
        return nil, "no reranker provider is configured", "invalid"
    end
    local key = api_key(spec)
    if not key then
        return nil, "Missing Cohere API key for reranking", "key"
    end
    local data, err, kind = post(spec, "rerank", spec.base_url .. "/rerank", key, {
        model = spec.model, query = query, documents = json.array(documents),
        top_n = #documents,
    })
    if not data then
        return nil, err, kind
    end
    if type(data.results) ~= "table" then
        return nil, "Cohere rerank response has no results array", "malformed"
    end
    local scores = {}
    for i = 1, #documents do
        scores[i] = 0
    end
    for _, r in ipairs(data.results) do
        local idx = type(r) == "table" and tonumber(r.index)
        local s = type(r) == "table" and tonumber(r.relevance_score)
        if not idx or idx < 0 or idx >= #documents or floor(idx) ~= idx then
            return nil, "Cohere rerank response has a bad index", "malformed"
        end
        scores[idx + 1] = (s and s == s and s ~= math.huge and s ~= -math.huge) and s or 0
    end
    return scores
end

return providers
