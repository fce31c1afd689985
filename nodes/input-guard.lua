-- nodes/input-guard.lua: looks for prompt injection and PII in the input (or one field of it);
-- blocks (fails the node) or passes input with <outputKey> (redacted text) and _guard.
local util = require("rex.util")
local guard = require("rex.guard")

local function text_of(input, path)
    local v = input
    if path then
        v = util.get_path(input, path)
    end
    if type(v) == "string" then
        return v
    elseif v == nil or v == util.null then
        return ""
    end
    return util.json_text(v) or ""
end

return {
    type = "input-guard",
    version = 1,
    text_of = text_of,
    schema = {
        valuePath = { type = "any", doc = "dot path of the text (default: the whole input)" },
        outputKey = { type = "any", doc = "default _guardedInput" },
        blockOnPromptInjection = { type = "any", doc = "default true" },
        blockOnPII = { type = "any", doc = "default false" },
        redactPII = { type = "any", doc = "default true" },
    },
    validate = function(config)
        local errs = util.check_strings(config, { "valuePath", "outputKey" })
        return #errs == 0 or nil, errs
    end,
    execute = function(ctx, input, config)
        local text = text_of(input, util.non_empty_string(config.valuePath))
        local inj = guard.first_matches(guard.INJECTION, text)
        local pii = guard.pii_matches(text)
        if #inj > 0 and util.bool_like(config.blockOnPromptInjection, true) then
            return nil, "Input guard blocked prompt injection pattern: " .. inj[1].match
        end
        if #pii > 0 and util.bool_like(config.blockOnPII, false) then
            return nil, "Input guard blocked detected PII"
        end
        local redact = util.bool_like(config.redactPII, true)
        local out = util.shallow_copy(input)
        local key = util.non_empty_string(config.outputKey) and config.outputKey or "_guardedInput"
        out[key] = redact and guard.redact(text) or text
        out._guard = { stage = "input", triggered = #inj > 0 or #pii > 0, blocked = false,
                       hasPromptInjection = #inj > 0, hasPII = #pii > 0,
                       promptInjectionMatches = inj, piiMatches = pii,
                       redacted = redact and #pii > 0, timestamp = util.now_iso() }
        return out
    end,
}
