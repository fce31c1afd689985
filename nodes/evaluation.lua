-- nodes/evaluation.lua: checks a text of the input (required text, min/max length); passes input
-- and adds _evaluation. Edges with condition pass/fail route on _evaluation.passed.
local util = require("rex.util")

local function positive(v)
    local n = util.js_number(v)
    if not util.is_finite(n) then
        return nil
    end
    n = math.floor(n)
    if n < 1 then
        return nil
    end
    return n
end

return {
    type = "evaluation",
    version = 1,
    schema = {
        valuePath = { type = "any", doc = "dot path of the text (default content)" },
        requiredText = { type = "any", doc = "text that must appear (case-insensitive)" },
        minLength = { type = "any", doc = "minimum length" },
        maxLength = { type = "any", doc = "maximum length" },
        requestRetryOnFail = { type = "any", doc = "ask the engine for a retry when failing" },
        strict = { type = "any", doc = "fail the node when the evaluation fails" },
        retryDelayMs = { type = "any", doc = "delay of the requested retry" },
        retryReasonPrefix = { type = "any", doc = "default 'Evaluation failed'" },
    },
    validate = function(config)
        local errs = util.check_strings(config, { "valuePath", "requiredText" })
        for _, k in ipairs({ "minLength", "maxLength" }) do
            if config[k] ~= nil then
                local n = util.js_number(config[k])
                if not util.is_finite(n) or n < 1 then
                    errs[#errs + 1] = k .. " must be a positive number"
                end
            end
        end
        return #errs == 0 or nil, errs
    end,
    execute = function(ctx, input, config)
        local path = type(config.valuePath) == "string" and config.valuePath or "content"
        local v = util.get_path(input, path)
        local text
        if type(v) == "string" then
            text = v
        elseif v == nil or v == util.null then
            text = ""
        elseif type(v) == "number" or type(v) == "boolean" then
            text = util.js_string(v)
        else
            text = util.json_text(v) or ""
        end
        local checks = util.array()
        local len = util.js_len(text)
        local req = type(config.requiredText) == "string" and util.trim(config.requiredText) or ""
        if req ~= "" then
            local ok = text:lower():find(req:lower(), 1, true) ~= nil
            checks[#checks + 1] = { key = "requiredText", passed = ok,
                                    message = ('Required text "%s" %s'):format(req,
                                        ok and "found" or "not found") }
        end
        local mn = config.minLength ~= nil and positive(config.minLength) or nil
        if mn then
            local ok = len >= mn
            checks[#checks + 1] = { key = "minLength", passed = ok,
                                    message = ok and ("Length %d meets minimum %d"):format(len, mn)
                                        or ("Length %d below minimum %d"):format(len, mn) }
        end
        local mx = config.maxLength ~= nil and positive(config.maxLength) or nil
        if mx then
            local ok = len <= mx
            checks[#checks + 1] = { key = "maxLength", passed = ok,
                                    message = ok and ("Length %d within maximum %d"):format(len, mx)
                                        or ("Length %d exceeds maximum %d"):format(len, mx) }
        end
        local passed_n = 0
        local first_fail
        for _, c in ipairs(checks) do
            if c.passed then
                passed_n = passed_n + 1
            elseif not first_fail then
                first_fail = c.message
            end
        end
        local passed, score
        if #checks == 0 then
            passed = text ~= ""
            score = passed and 100 or 0
        else
            passed = passed_n == #checks
            score = math.floor(100 * passed_n / #checks + 0.5)
        end
        if not passed and util.bool_like(config.strict, false) then
            return nil, first_fail or "Evaluation failed"
        end
        local out = util.shallow_copy(input)
        out._evaluation = { valuePath = path, passed = passed, score = score,
                            totalChecks = #checks, passedChecks = passed_n, checks = checks,
                            evaluatedAt = util.now_iso() }
        local meta
        if not passed and util.bool_like(config.requestRetryOnFail, false) then
            local prefix = type(config.retryReasonPrefix) == "string"
                and util.trim(config.retryReasonPrefix) or ""
            if prefix == "" then
                prefix = "Evaluation failed"
            end
            local retry = { requested = true,
                            reason = prefix .. ": " .. (first_fail or "Evaluation failed") }
            local d = util.js_number(config.retryDelayMs)
            if util.is_finite(d) then
                d = math.max(0, math.min(10000, math.floor(d)))
                if d > 0 then
                    retry.delayMs = d
                end
            end
            meta = { retry = retry }
        end
        return out, meta
    end,
}
