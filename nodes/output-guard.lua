-- nodes/output-guard.lua: checks a text of the input (default `content`) for toxicity, PII and
-- (optionally) JSON validity; blocks (fails the node) or passes input with <outputKey> and _guard.
local util = require("rex.util")
local guard = require("rex.guard")
local json = require("rex").json

return {
    type = "output-guard",
    version = 1,
    schema = {
        valuePath = { type = "any", doc = "dot path of the text (default content)" },
        outputKey = { type = "any", doc = "default _guardedOutput" },
        blockOnToxicity = { type = "any", doc = "default true" },
        blockOnPII = { type = "any", doc = "default false" },
        requireJson = { type = "any", doc = "default false" },
        redactPII = { type = "any", doc = "default false" },
    },
    validate = function(config)
        local errs = util.check_strings(config, { "valuePath", "outputKey" })
        return #errs == 0 or nil, errs
    end,
    execute = function(ctx, input, config)
        local path = util.non_empty_string(config.valuePath) or "content"
        local v = util.get_path(input, path)
        local text
        if type(v) == "string" then
            text = v
        elseif v == nil or v == util.null then
            text = ""
        else
            text = util.json_text(v) or ""
        end
        local require_json = util.bool_like(config.requireJson, false)
        if require_json and json.decode(text) == nil then
            return nil, "Output guard blocked output: expected valid JSON"
        end
        local tox = guard.first_matches(guard.TOXICITY, text)
        local pii = guard.pii_matches(text)
        if #tox > 0 and util.bool_like(config.blockOnToxicity, true) then
            return nil, "Output guard blocked toxic output"
        end
        if #pii > 0 and util.bool_like(config.blockOnPII, false) then
            return nil, "Output guard blocked PII in output"
        end
        local redact = util.bool_like(config.redactPII, false)
        local out = util.shallow_copy(input)
        local key = util.non_empty_string(config.outputKey) and config.outputKey or "_guardedOutput"
        out[key] = redact and guard.redact(text) or text
        out._guard = { stage = "output", triggered = #tox > 0 or #pii > 0, blocked = false,
                       hasToxicity = #tox > 0, hasPII = #pii > 0, toxicityMatches = tox,
                       piiMatches = pii, redacted = redact and #pii > 0,
                       jsonRequired = require_json, timestamp = util.now_iso() }
        return out
    end,
}
